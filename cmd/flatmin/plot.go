package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/flatmin/flatmin/internal/plotting"
	"github.com/flatmin/flatmin/internal/runner"
	"github.com/spf13/pflag"
)

// cmdPlot renders a run directory's figures (singular values, trace, theory
// gap, neurons) or a comparison directory's overlays as PNG and SVG, into
// that directory, and prints the files written.
func cmdPlot(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plot", "plot DIR   (a run directory, or a comparison directory with compare.json)", stdout)
	// parse would refuse DIR, the one positional argument. On --help,
	// pflag has already printed the usage.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return runner.Input(fmt.Errorf("%v (see flatmin plot --help)", err))
	}
	if fs.NArg() != 1 {
		return runner.Input(fmt.Errorf("want one directory, got %d arguments: flatmin plot DIR", fs.NArg()))
	}
	paths, err := plotting.Plot(fs.Arg(0))
	for _, p := range paths {
		fmt.Fprintln(stdout, p)
	}
	if errors.Is(err, plotting.ErrBadInput) {
		return runner.Input(err)
	}
	return err
}
