package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/plotting"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/spf13/pflag"
)

// cmdPlot renders a run directory's figures (singular values, trace, theory
// gap, neurons, sharpness) or a comparison directory's overlays as PNG and
// SVG, into that directory, or the spectral density of an inspect report
// beside it, and prints the files written.
func cmdPlot(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plot", "plot DIR | FILE.json   (a run directory, a comparison directory with compare.json, or the output of inspect --density: FILE.png/.svg)", stdout)
	// parse would refuse DIR, the one positional argument. On --help,
	// pflag has already printed the usage.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return runner.Input(fmt.Errorf("%v (see flatmin plot --help)", err))
	}
	if fs.NArg() != 1 {
		return runner.Input(fmt.Errorf("want one directory or .json file, got %d arguments: flatmin plot DIR", fs.NArg()))
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
