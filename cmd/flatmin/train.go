package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
	"github.com/spf13/pflag"
)

func trainerList() string { return strings.Join(trainers.Names(), ", ") }

// trainRequest is `flatmin train`'s command line, parsed and checked.
type trainRequest struct {
	cfg     runner.Config
	out     string
	resume  string
	quiet   bool
	changed []string // flags given, for a resume's conflict check
}

// parseTrain parses and checks train's flags without touching files or backends.
func parseTrain(args []string, stdout io.Writer) (*trainRequest, error) {
	r := &trainRequest{cfg: runner.DefaultConfig()}
	cfg := &r.cfg
	fs := newFlagSet("train", "train [flags] | train --resume DIR [--steps N]", stdout)
	trainerFlags(fs, cfg)
	problemFlags(fs, cfg)
	fs.StringVar(&r.out, "out", "", "run directory to create, new or empty (default runs/<trainer>-<time>)")
	fs.StringVar(&r.resume, "resume", "", "continue the run in DIR from its newest valid checkpoint (--steps may raise its budget)")
	fs.Int64Var(&cfg.CheckpointEvery, "checkpoint-every", cfg.CheckpointEvery, "checkpoint every this many steps (and at the end; 0: only at the end)")
	fs.IntVar(&cfg.Snapshots, "snapshots", 0, "save this many snapshots of Z and Θ, spread over the run, in DIR/snapshots")
	fs.BoolVar(&cfg.TrackSharpness, "track-sharpness", false, "log λ_max and λ_min of D²L (Lanczos) at each log step: metrics.csv columns lambda_max, lambda_min")
	fs.BoolVar(&r.quiet, "quiet", false, "print nothing but errors")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := checkSizes(fs, cfg); err != nil {
		return nil, err
	}
	if r.resume != "" && r.out != "" {
		return nil, runner.Input(fmt.Errorf("--resume DIR continues DIR: give no --out"))
	}
	fs.Visit(func(f *pflag.Flag) {
		if f.Name != "resume" && f.Name != "quiet" {
			r.changed = append(r.changed, f.Name)
		}
	})
	// Checked also when resuming: a flag given then must be valid too.
	if err := cfg.Check(); err != nil {
		return nil, runner.Input(err)
	}
	return r, nil
}

func cmdTrain(args []string, stdout, stderr io.Writer) error {
	r, err := parseTrain(args, stdout)
	if err != nil {
		return err
	}
	cfg := r.cfg
	if r.resume != "" && !slices.Contains(r.changed, "backend") {
		saved, err := runner.LoadConfig(r.resume)
		if err != nil {
			return runner.Input(fmt.Errorf("--resume: %w", err))
		}
		cfg.Backend = saved.Backend
	}
	b, err := backend.Open(cfg.Backend)
	if err != nil {
		return runner.Input(err)
	}
	cfg.Backend = backend.Resolve(cfg.Backend)
	dir := r.out
	if dir == "" {
		dir = runner.DefaultOutDir(cfg.Trainer)
	}
	ctx, interrupted, stop := interruptible()
	defer stop()
	opt := runner.Options{Progress: terminal(stderr, r.quiet), Notes: stderr, Quiet: r.quiet}
	var sum *runner.Summary
	if r.resume != "" {
		dir = r.resume
		var warnings []string
		sum, warnings, err = runner.Resume(ctx, dir, cfg, r.changed, b, opt)
		for _, w := range warnings {
			fmt.Fprintf(stderr, "flatmin train: warning: %s\n", w)
		}
	} else {
		sum, err = runner.Train(ctx, cfg, b, dir, opt)
	}
	if sum != nil && !r.quiet {
		printSummary(stdout, sum, dir)
	}
	if err == nil && sum != nil && sum.Interrupted {
		sig, code := interrupted()
		return &exitStatus{code: code, err: fmt.Errorf("interrupted by %s at step %d; checkpoint, metrics and summary written; continue with: flatmin train --resume %s", sig, sum.Steps, dir)}
	}
	return err
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM,
// a function telling which signal came and the exit status it calls for (130
// or 143), and a function that stops listening. After the first signal a
// second one gets the default behaviour: immediate exit.
func interruptible() (ctx context.Context, which func() (string, int), stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	var got atomic.Value
	go func() {
		select {
		case s := <-sigs:
			got.Store(s)
			signal.Stop(sigs)
			cancel()
		case <-done:
		}
	}()
	which = func() (string, int) {
		if s, ok := got.Load().(os.Signal); ok && s == syscall.SIGTERM {
			return "SIGTERM", 143
		}
		return "SIGINT", 130
	}
	stop = func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
	return ctx, which, stop
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

// printSummary is the short human summary of a run: where it started and
// ended against what the paper predicts.
func printSummary(w io.Writer, s *runner.Summary, dir string) {
	c, f := s.Config, s.Final
	start := f
	if s.Initial != nil {
		start = *s.Initial
	}
	fmt.Fprintf(w, "%s on %s data, m=%d n=%d d=%d, activation %s: %d steps in %.1f s (%s)\n",
		s.Trainer, dataName(c), c.M, c.N, c.D, activationName(c), s.Steps, s.WallSeconds, s.Backend)
	fmt.Fprintf(w, "  %-26s %-24s %s\n", "", "start (step "+fmt.Sprint(start.Step)+")", "end")
	row := func(name, format string, a, b float64, note string) {
		line := fmt.Sprintf("  %-26s %-24s %-14s %s", name, fmt.Sprintf(format, a), fmt.Sprintf(format, b), note)
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	row("loss", "%.4g", start.Loss, f.Loss, "")
	if s.StopReason == trainers.StopDiverged {
		// A blown-up state's trace and singular values say nothing about rank one.
		fmt.Fprintf(w, "  DIVERGED: %s\n", s.Error)
		fmt.Fprintf(w, "  theta.npy holds step %d, the last finite state\n", s.ThetaStep)
		printChosen(w, c)
		fmt.Fprintf(w, "  run directory: %s\n", dir)
		return
	}
	row("Tr D²L", "%.6g", start.TraceHessian, f.TraceHessian, traceNote(s, dir))
	if len(f.SingularValuesZ) > 1 {
		row("σ2/σ1 of Z", "%.3g", ratio(start.SingularValuesZ, 1), ratio(f.SingularValuesZ, 1), "(rank one: → 0)")
	}
	if len(f.SingularValuesZ) > 2 {
		row("σ3/σ1 of Z", "%.3g", ratio(start.SingularValuesZ, 2), ratio(f.SingularValuesZ, 2), "")
	}
	if !math.IsNaN(f.TheoryGap) {
		row("theory gap", "%.3g", start.TheoryGap, f.TheoryGap, "(max_ij |θ_j·x_i − φ⁻¹(y_i/m)|: → 0)")
	}
	fmt.Fprintf(w, "  singular values of Z at the end: %s\n", formatList(f.SingularValuesZ))
	switch s.StopReason {
	case trainers.StopConverged:
		fmt.Fprintf(w, "  converged at step %d: ‖grad_M Tr D²L‖ = %.3g, stationary to rounding (or --gtol)\n", s.Steps, f.RiemannianGradNorm)
	case trainers.StopError:
		fmt.Fprintf(w, "  stopped by an error at step %d: %s\n", s.Steps, s.Error)
	case trainers.StopInterrupted:
		fmt.Fprintf(w, "  interrupted at step %d\n", s.Steps)
	}
	printChosen(w, c)
	fmt.Fprintf(w, "  run directory: %s\n", dir)
}

// printChosen prints the settings flatmin chose (--eta auto, --init-scale auto).
func printChosen(w io.Writer, c runner.Config) {
	var parts []string
	if strings.HasPrefix(c.EtaRule, runner.Auto) {
		parts = append(parts, fmt.Sprintf("η = %.4g (%s)", c.Eta, c.EtaRule))
	}
	if strings.HasPrefix(c.InitScaleRule, runner.Auto) {
		parts = append(parts, fmt.Sprintf("init scale = %.4g (%s)", c.InitScale, c.InitScaleRule))
	}
	for _, p := range parts {
		fmt.Fprintf(w, "  chosen: %s\n", p)
	}
}

// traceNote sets the final Tr D²L against F* where F* is the minimum it
// could reach (on the manifold of zero loss, within Theorem 2's scope) and
// says why not elsewhere.
func traceNote(s *runner.Summary, dir string) string {
	c, f := s.Config, s.Final
	if math.IsNaN(f.TraceMin) {
		return "(no F*: it needs w = 1 and φ⁻¹(y_i/m))"
	}
	if act, err := model.NewActivation(c.Activation, c.Nu, c.K); err == nil {
		if why := runner.TraceMinScope(act, c.N, c.D); why != "" {
			return fmt.Sprintf("(F* = %.6g; %s)", f.TraceMin, why)
		}
	}
	y, err := model.ReadVector(filepath.Join(dir, runner.YFile), "y")
	if err != nil {
		y = []float64{1} // the labels cannot be read: compare the loss itself
	}
	if rel, off := runner.OffManifold(f.Loss, y); off {
		return fmt.Sprintf("(off the manifold, ‖f−y‖/‖y‖ = %.2g: F* = %.6g is the minimum at zero loss only)", rel, f.TraceMin)
	}
	return fmt.Sprintf("(on the manifold: Theorem 2's minimum F* = %.6g)", f.TraceMin)
}

func ratio(sv []float64, k int) float64 {
	if len(sv) <= k || sv[0] == 0 {
		return math.NaN()
	}
	return sv[k] / sv[0]
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
