package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/trainers"
)

func cmdCompare(args []string, stdout, stderr io.Writer) error {
	cfg := runner.DefaultConfig()
	fs := newFlagSet("compare", "compare --trainers a,b,... [flags]", stdout)
	list := fs.String("trainers", "labelnoise,sam1,riemannian,penalty,gd", "trainers to run, comma-separated, of "+trainerList())
	params := fs.StringArray("param", nil, "per-trainer setting trainer.key=value, repeatable; keys: "+runner.ParamKeysHelp())
	trainerFlags(fs, &cfg)
	fs.Lookup("trainer").Hidden = true
	problemFlags(fs, &cfg)
	out := fs.String("out", "", "directory to create, new or empty, one subdirectory per trainer (default runs/compare-<time>)")
	quiet := fs.Bool("quiet", false, "print nothing but errors")
	fs.BoolVar(&cfg.TrackSharpness, "track-sharpness", false, "log λ_max and λ_min of D²L (Lanczos) at each log step of every trainer")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkSizes(fs, &cfg); err != nil {
		return err
	}
	var ps []runner.Param
	for _, s := range *params {
		p, err := runner.ParseParam(s)
		if err != nil {
			return runner.Input(err)
		}
		ps = append(ps, p)
	}
	var names []string
	for _, n := range strings.Split(*list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	b, err := backend.Open(cfg.Backend)
	if err != nil {
		return runner.Input(err)
	}
	cfg.Backend = backend.Resolve(cfg.Backend)
	dir := *out
	if dir == "" {
		dir = filepath.Join("runs", "compare-"+time.Now().Format("20060102-150405.000"))
	}
	ctx, _, stop := interruptible()
	defer stop()
	rows, err := runner.Compare(ctx, cfg, names, ps, b, dir, runner.Options{Progress: terminal(stderr, *quiet), Notes: stderr, Quiet: *quiet})
	if len(rows) > 0 && !*quiet {
		printComparison(stdout, rows, dir)
	}
	if err != nil {
		return err
	}
	return failedRows(rows, dir)
}

// failedRows is exit status 1, as a sweep with a failed run, when a trainer
// diverged or stopped with an error: the others ran to the end and
// everything is written, but a script must not read the comparison as clean.
func failedRows(rows []runner.CompareRow, dir string) error {
	var failed []string
	for _, r := range rows {
		if r.StopReason == trainers.StopError || r.StopReason == trainers.StopDiverged {
			failed = append(failed, r.Trainer+" ("+r.StopReason+")")
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return &exitStatus{code: exitFailure, err: fmt.Errorf("%d of %d trainers failed: %s (reasons in %s)",
		len(failed), len(rows), strings.Join(failed, ", "), filepath.Join(dir, runner.CompareFile))}
}

func printComparison(w io.Writer, rows []runner.CompareRow, dir string) {
	fmt.Fprintf(w, "%-11s %9s %9s %12s %14s %12s %10s  %s\n", "trainer", "steps", "wall s", "final loss", "TrD²L_M / F*", "theory gap", "σ2/σ1(Z)", "stop")
	for _, r := range rows {
		fmt.Fprintf(w, "%-11s %9d %9.1f %12.4g %14.10g %12.4g %10.4g  %s", r.Trainer, r.Steps, r.WallSeconds,
			float64(r.Loss), float64(r.TraceRatio), float64(r.TheoryGap), float64(r.Sigma21), r.StopReason)
		if r.Error != "" {
			fmt.Fprintf(w, ": %s", r.Error)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "runs in %s (one subdirectory per trainer; table in %s)\n", dir, runner.CompareFile)
}
