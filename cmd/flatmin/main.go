// Command flatmin trains two-layer networks with sharpness-minimizing
// dynamics and measures where they go: the trace of the loss Hessian, the
// rank of the feature matrix, the distance to the paper's predicted optimum.
//
// Usage:
//
//	flatmin train   [flags]   train one run into a run directory
//	flatmin inspect [flags]   metrics of a saved Θ, as JSON
//	flatmin compare [flags]   several trainers side by side
//	flatmin sweep   [flags]   trainers × settings × seeds, in parallel or on Slurm
//	flatmin theory  [flags]   the paper's predictions for a problem
//	flatmin repro   FIG       the paper's experiments, figures and report
//	flatmin plot    DIR       a run's (or comparison's) figures as PNG and SVG
//	flatmin bench   [flags]   time steps against PyTorch's figures
//	flatmin version           versions and backends
//
// `flatmin <command> --help` (or `flatmin help <command>`) lists a command's flags.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	_ "github.com/flatmin/flatmin/internal/backend/xlaplugin" // XLA, where compiled in
	"github.com/flatmin/flatmin/trainers"
	"github.com/spf13/pflag"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK       = 0
	exitFailure  = 1 // the run failed (diverged, or an internal error)
	exitBadInput = 2 // flags or files are wrong
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"train", "train one run and write metrics.csv, summary.json and theta.npy", cmdTrain},
		{"inspect", "print the metrics of a saved Θ as one JSON object", cmdInspect},
		{"compare", "run several trainers on the same data from the same Θ₀ and print one table", cmdCompare},
		{"sweep", "trainers × a grid of settings × seeds in parallel workers (or a Slurm array job), medians and quartiles in sweep.json", cmdSweep},
		{"theory", "the paper's predictions for a problem: φ⁻¹(y_i/m), F*, constants, assumptions, time bound", cmdTheory},
		{"repro", "rerun the paper's experiments (fig1a, fig2, fig1b) with plots and report.md", cmdRepro},
		{"plot", "render a run's (or a comparison's) metrics to PNG and SVG", cmdPlot},
		{"bench", "time training steps and whole runs beside PyTorch's figures", cmdBench},
		{"version", "print flatmin's version and the backends it can use", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "flatmin: sharpness minimization on two-layer networks\n\nUsage: flatmin <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `flatmin <command> --help` (or `flatmin help <command>`) for a command's flags.")
}

// run executes one command line and returns the exit status. Errors become
// one line on stderr; no panic trace reaches the user.
func run(args []string, stdout, stderr io.Writer) (status int) {
	defer func() {
		if r := recover(); r != nil {
			if os.Getenv("FLATMIN_TRACE") != "" {
				panic(r) // a developer asked for the trace
			}
			fmt.Fprintf(stderr, "flatmin: internal error: %s\n", oneLine(fmt.Sprint(r)))
			status = exitFailure
		}
	}()
	if len(args) == 2 && args[0] == "help" {
		args = []string{args[1], "--help"} // `flatmin help CMD` is `flatmin CMD --help`
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return report(c.run(args[1:], stdout, stderr), c.name, stderr)
		}
	}
	fmt.Fprintf(stderr, "flatmin: unknown command %q (try flatmin help)\n", args[0])
	return exitBadInput
}

// report prints err on one line and chooses the exit status.
func report(err error, cmd string, stderr io.Writer) int {
	if err == nil || errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	var ie *runner.InputError
	var div *trainers.DivergedError
	var ex *exitStatus
	switch {
	case errors.As(err, &ex):
		if ex.err != nil {
			fmt.Fprintf(stderr, "flatmin %s: %s\n", cmd, oneLine(ex.err.Error()))
		}
		return ex.code
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "flatmin %s: %s\n", cmd, oneLine(err.Error()))
		return exitBadInput
	case errors.As(err, &div):
		fmt.Fprintf(stderr, "flatmin %s: %s; %s\n", cmd, oneLine(err.Error()), divergedHint(div))
		return exitFailure
	default:
		fmt.Fprintf(stderr, "flatmin %s: %s\n", cmd, oneLine(err.Error()))
		return exitFailure
	}
}

// divergedHint says what to try after a divergence: --eta auto's step size
// when the run took a larger one, and a smaller one than that when the run
// already took it (the curvature met later exceeded the bound at Θ₀ and at
// the predicted optimum).
func divergedHint(div *trainers.DivergedError) string {
	switch {
	case div.StableEta <= 0:
		return "try a smaller --eta (or --eta auto, smaller labels or --init-scale)"
	case div.StableEta < div.Eta*(1-1e-9):
		return fmt.Sprintf("try --eta %.3g, what --eta auto picks here from the curvature at Θ₀ and at the predicted optimum", div.StableEta)
	case div.StableEta <= div.Eta*(1+1e-9):
		return fmt.Sprintf("that is already what --eta auto picks from the curvature at Θ₀ and at the predicted optimum, and the run met more: try a smaller one, e.g. --eta %.3g", div.Eta/4)
	default:
		return fmt.Sprintf("that is already below what --eta auto picks (%.3g) from the curvature at Θ₀ and at the predicted optimum, and the run met more: try a smaller one, e.g. --eta %.3g", div.StableEta, div.Eta/4)
	}
}

// exitStatus carries a specific exit status (and optionally a message).
type exitStatus struct {
	code int
	err  error
}

func (e *exitStatus) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
