package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/internal/runner"
	"github.com/flatmin/flatmin/trainers"
)

func trainerList() string { return strings.Join(trainers.Names(), ", ") }

func cmdTrain(args []string, stdout, stderr io.Writer) error {
	cfg := runner.DefaultConfig()
	fs := newFlagSet("train", "train [flags]", stdout)
	trainerFlags(fs, &cfg)
	problemFlags(fs, &cfg)
	out := fs.String("out", "", "run directory to create (default runs/<trainer>-<time>)")
	quiet := fs.Bool("quiet", false, "print nothing but errors")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkSizes(fs, &cfg); err != nil {
		return err
	}
	b, err := backend.Open(cfg.Backend)
	if err != nil {
		return runner.Input(err)
	}
	cfg.Backend = backend.Resolve(cfg.Backend)
	dir := *out
	if dir == "" {
		dir = runner.DefaultOutDir(cfg.Trainer)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := runner.Train(ctx, cfg, b, dir, runner.Options{Progress: terminal(stderr, *quiet)})
	if sum != nil && !*quiet {
		printSummary(stdout, sum, dir)
	}
	return err
}

// terminal returns w for a progress bar when it is a terminal.
func terminal(w io.Writer, quiet bool) io.Writer {
	if quiet {
		return nil
	}
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return w
}

// printSummary is the short human summary of a run: what the paper predicts
// against where the run ended.
func printSummary(w io.Writer, s *runner.Summary, dir string) {
	c, f := s.Config, s.Final
	fmt.Fprintf(w, "%s on %s data, m=%d n=%d d=%d, activation %s: %d steps in %.1f s (%s)\n",
		s.Trainer, dataName(c), c.M, c.N, c.D, activationName(c), s.Steps, s.WallSeconds, s.Backend)
	fmt.Fprintf(w, "  loss                     %.4g\n", f.Loss)
	if !math.IsNaN(f.TraceMin) {
		fmt.Fprintf(w, "  Tr D²L on the manifold   %.6g   (theory's minimum F* = %.6g, ratio %.6g)\n",
			f.TraceHessianManifold, f.TraceMin, f.TraceHessianManifold/f.TraceMin)
	} else {
		fmt.Fprintf(w, "  Tr D²L on the manifold   %.6g   (no F*: needs w = 1 and φ⁻¹(y_i/m))\n", f.TraceHessianManifold)
	}
	fmt.Fprintf(w, "  singular values of Z     %s\n", formatList(f.SingularValuesZ))
	if len(f.SingularValuesZ) > 1 && f.SingularValuesZ[0] > 0 {
		fmt.Fprintf(w, "  σ2/σ1 of Z               %.3g   (rank one: → 0)\n", f.SingularValuesZ[1]/f.SingularValuesZ[0])
	}
	if !math.IsNaN(f.TheoryGap) {
		fmt.Fprintf(w, "  theory gap               %.3g   (max_ij |θ_j·x_i − φ⁻¹(y_i/m)|: → 0)\n", f.TheoryGap)
	}
	switch {
	case s.Diverged:
		fmt.Fprintf(w, "  DIVERGED: %s\n", s.Error)
	case s.Interrupted:
		fmt.Fprintf(w, "  interrupted at step %d\n", s.Steps)
	}
	fmt.Fprintf(w, "  run directory            %s\n", dir)
}

func formatList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.4g", x)
	}
	return strings.Join(parts, " ")
}

func dataName(c runner.Config) string {
	switch {
	case c.DataPath != "":
		return c.DataPath
	case c.XPath != "":
		return c.XPath
	default:
		return "synthetic (" + c.Labels + ")"
	}
}

func activationName(c runner.Config) string {
	switch c.Activation {
	case "tanh":
		return "tanh"
	case "odd":
		return fmt.Sprintf("z^%d%+gz", 2*c.K+1, c.Nu)
	default:
		if c.Nu == 0 {
			return "z³"
		}
		return fmt.Sprintf("z³%+gz", c.Nu)
	}
}
