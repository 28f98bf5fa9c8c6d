package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/repro"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/spf13/pflag"
)

func cmdRepro(args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("repro", "repro fig1a|fig2|fig1b|all [--quick] [--out DIR]", stdout)
	quick := fs.Bool("quick", false, "short runs (README.md gives run times): trends, not final values")
	out := fs.String("out", "", "directory to create, new or empty (default runs/repro-<time>)")
	spec := fs.String("backend", "", "GoMLX backend (default from $GOMLX_BACKEND, else go)")
	quiet := fs.Bool("quiet", false, "print nothing but errors")
	// One positional argument, the figure: parse would refuse it.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return runner.Input(fmt.Errorf("%v (see flatmin repro --help)", err))
	}
	if err := refuseEmpty(fs); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return runner.Input(fmt.Errorf("name one figure: flatmin repro fig1a|fig2|fig1b|all"))
	}
	figs, err := repro.Lookup(fs.Arg(0))
	if err != nil {
		return runner.Input(err)
	}
	b, err := backend.Open(*spec)
	if err != nil {
		return runner.Input(err)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join("runs", "repro-"+time.Now().Format("20060102-150405"))
	}
	// The directory is new or empty, and locked until the report is written.
	claim, err := runner.ClaimOutDir(dir, "--out")
	if err != nil {
		return runner.Input(err)
	}
	defer func() {
		if err != nil && claim.Empty() {
			claim.Discard()
		} else {
			claim.Close()
		}
	}()
	ctx, _, stop := interruptible()
	defer stop()
	start := time.Now()
	results, err := repro.Run(ctx, b, backend.Resolve(*spec), figs, *quick, dir, runner.Options{Progress: terminal(stderr, *quiet)})
	if err != nil {
		return err
	}
	if err = repro.WriteReport(dir, results, *quick, time.Since(start), b.Name()); err != nil {
		return err
	}
	if !*quiet {
		for _, r := range results {
			fmt.Fprintf(stdout, "%s:", r.Figure.Name)
			for _, t := range repro.Trainers {
				if tr := r.Trainers[t]; tr != nil {
					fmt.Fprintf(stdout, "  %s σ2/σ1 %.3g σ3/σ1 %.3g", t, tr.Sigma21[2], tr.Sigma31[2])
				}
			}
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "report: %s (%.0f s)\n", filepath.Join(dir, repro.ReportFile), time.Since(start).Seconds())
	}
	return nil
}
