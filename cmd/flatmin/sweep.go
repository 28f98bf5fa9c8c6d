package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/plotting"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/sweep"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
	"github.com/spf13/pflag"
)

// sweepRequest is `flatmin sweep`'s command line, parsed and checked.
type sweepRequest struct {
	spec    sweep.Spec
	tol     sweep.Tolerances
	out     string
	jobs    int
	task    int
	collect bool
	slurm   bool
	submit  bool
	sbatch  sweep.Slurm
	quiet   bool
	args    []string // the flags that define the sweep, for workers and the array job
	// logSteps draws the figures on a log step axis.
	logSteps bool
	// retry runs failed runs again, their directories kept (SetAsideFailed).
	retry bool
}

// driverFlags are the flags that say how to run a sweep, not what it is:
// they are left out of the workers' command lines.
var driverFlags = []string{"jobs", "task", "collect", "slurm", "submit", "partition", "time", "mem", "quiet", "log-steps"}

const sweepSynopsis = `sweep --out DIR --trainers a,b --param trainer.key=v1,v2 --seeds N [flags]

Runs every trainer × every combination of its --param values × every seed on
the same data, each seed's runs from the same Θ₀, in --jobs local worker
processes; each run is an ordinary run directory under DIR/runs. DIR/sweep.json
gets every run's status and final metrics and, per trainer × setting, the
median, quartiles (linear interpolation, NumPy's default), min and max of each
metric over the seeds, with the first step and wall time at which σ2/σ1 of Z <
--rank-tol, theory gap < --gap-tol and |Tr D²L_M/F* − 1| < --trace-tol.
DIR/figures draws, per trainer × setting, the median over seeds with an
interquartile band of σ2/σ1 of Z, Tr D²L_M/F*, the theory gap and the loss
(--log-steps: on a log step axis).
Rerunning the same command on DIR starts nothing finished (failed runs too,
unless --retry-failed) and resumes what was interrupted; a different sweep on
DIR is refused. --slurm writes
DIR/sweep.sbatch, an array job of one task per run (--submit also submits it);
a plain rerun or --collect then builds sweep.json from the run directories.`

func parseSweep(args []string, stdout io.Writer) (*sweepRequest, error) {
	r := &sweepRequest{spec: sweep.Spec{Base: runner.DefaultConfig()}}
	cfg := &r.spec.Base
	fs := newFlagSet("sweep", sweepSynopsis, stdout)
	list := fs.String("trainers", "labelnoise,sam1,riemannian,penalty,gd", "trainers to run, comma-separated")
	params := fs.StringArray("param", nil, "swept setting trainer.key=v1,v2,..., repeatable, one per trainer and key; keys: "+sweepKeysHelp())
	seeds := fs.Int("seeds", 1, "seeds 1..N (each seed's runs share Θ₀ and the label noise's seed)")
	seedList := fs.String("seed-list", "", "seeds as a comma-separated list, instead of --seeds")
	fs.IntVar(&r.jobs, "jobs", runtime.NumCPU(), "worker processes at once, by default one per core")
	fs.StringVar(&r.out, "out", "", "sweep directory (required): new, empty, or this sweep's own to resume or collect it")
	fs.Float64Var(&r.tol.Rank, "rank-tol", sweep.DefaultRankTol, "time to threshold: first step with σ2/σ1 of Z below this")
	fs.Float64Var(&r.tol.Gap, "gap-tol", sweep.DefaultGapTol, "time to threshold: first step with theory gap below this")
	fs.Float64Var(&r.tol.Trace, "trace-tol", sweep.DefaultTraceTol, "time to threshold: first step with |Tr D²L_M / F* − 1| below this")
	fs.BoolVar(&r.collect, "collect", false, "start nothing: build sweep.json (and the figures) from the run directories and print the table")
	fs.BoolVar(&r.logSteps, "log-steps", false, "figures: a log-scaled step axis (so that short and long runs both show; step 0 is left out)")
	fs.BoolVar(&r.slurm, "slurm", false, "write DIR/sweep.sbatch, a Slurm array job with one task per run, instead of running locally")
	fs.BoolVar(&r.submit, "submit", false, "with --slurm: submit the array job with sbatch")
	fs.StringVar(&r.sbatch.Partition, "partition", "", "Slurm partition (#SBATCH --partition)")
	fs.StringVar(&r.sbatch.Time, "time", "", "Slurm time limit per run (#SBATCH --time), e.g. 1:00:00")
	fs.StringVar(&r.sbatch.Mem, "mem", "", "Slurm memory per run (#SBATCH --mem), e.g. 4G")
	fs.IntVar(&r.task, "task", -1, "run only run TASK (0-based; what each array task and local worker does)")
	trainerFlags(fs, cfg)
	fs.Lookup("trainer").Hidden = true
	fs.Lookup("seed").Hidden = true
	problemFlags(fs, cfg)
	fs.Int64Var(&cfg.CheckpointEvery, "checkpoint-every", cfg.CheckpointEvery, "checkpoint every this many steps (and at the end; 0: only at the end)")
	fs.BoolVar(&cfg.TrackSharpness, "track-sharpness", false, "log λ_max and λ_min of D²L (Lanczos) at each log step of every run")
	fs.BoolVar(&r.quiet, "quiet", false, "print nothing but errors")
	fs.BoolVar(&r.retry, "retry-failed", false, "run failed runs again from the start, each failed directory kept as RUN.failed-K (for a failure from outside the run: a killed worker, a full disk; a diverged run diverges again)")
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if err := checkSizes(fs, cfg); err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) (*sweepRequest, error) {
		return nil, runner.Input(fmt.Errorf(format, a...))
	}
	switch {
	case r.out == "":
		return bad("--out DIR is required: the sweep's directory, to rerun or collect it later")
	case fs.Changed("trainer") || fs.Changed("seed"):
		return bad("a sweep takes --trainers and --seeds (or --seed-list), not --trainer or --seed")
	case fs.Changed("seeds") && fs.Changed("seed-list"):
		return bad("give --seeds or --seed-list, not both")
	case *seeds < 1:
		return bad("--seeds must be at least 1, got %d", *seeds)
	case r.jobs < 1:
		return bad("--jobs must be at least 1, got %d", r.jobs)
	case fs.Changed("task") && r.task < 0:
		return bad("--task must be ≥ 0, got %d", r.task)
	case r.submit && !r.slurm:
		return bad("--submit goes with --slurm")
	case r.slurm && (r.collect || r.task >= 0):
		return bad("--slurm writes the array job: give no --collect or --task")
	case r.collect && r.task >= 0:
		return bad("give --collect or --task, not both")
	case !r.slurm && (r.sbatch != sweep.Slurm{}):
		return bad("--partition, --time and --mem go with --slurm")
	}
	for _, tol := range []struct {
		name string
		v    float64
	}{{"rank-tol", r.tol.Rank}, {"gap-tol", r.tol.Gap}, {"trace-tol", r.tol.Trace}} {
		if !(tol.v > 0) || math.IsInf(tol.v, 0) {
			return bad("--%s must be positive and finite, got %v", tol.name, tol.v)
		}
	}
	for _, n := range strings.Split(*list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			r.spec.Trainers = append(r.spec.Trainers, n)
		}
	}
	if fs.Changed("seed-list") {
		for _, f := range strings.Split(*seedList, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return bad("--seed-list: %q is not a seed (a non-negative integer)", f)
			}
			r.spec.Seeds = append(r.spec.Seeds, v)
		}
	} else {
		for s := 1; s <= *seeds; s++ {
			r.spec.Seeds = append(r.spec.Seeds, uint64(s))
		}
	}
	for _, p := range *params {
		a, err := sweep.ParseAxis(p)
		if err != nil {
			return nil, runner.Input(err)
		}
		r.spec.Axes = append(r.spec.Axes, a)
	}
	if err := r.spec.Check(); err != nil {
		return nil, runner.Input(err)
	}
	fs.Visit(func(f *pflag.Flag) {
		switch {
		case slices.Contains(driverFlags, f.Name):
		case f.Value.Type() == "stringArray":
			vs, _ := fs.GetStringArray(f.Name)
			for _, v := range vs {
				r.args = append(r.args, "--"+f.Name+"="+v)
			}
		default:
			r.args = append(r.args, "--"+f.Name+"="+f.Value.String())
		}
	})
	return r, nil
}

func cmdSweep(args []string, stdout, stderr io.Writer) error {
	r, err := parseSweep(args, stdout)
	if err != nil {
		return err
	}
	s := &r.spec
	runs := s.Runs()
	if r.task >= len(runs) {
		return runner.Input(fmt.Errorf("--task %d is out of range: the sweep has %d runs (0 to %d)", r.task, len(runs), len(runs)-1))
	}
	// The data and model are checked once here, before anything is written.
	probe := s.Base
	if _, err := probe.Problem(); err != nil {
		return runner.Input(err)
	}
	b, err := backend.Open(s.Base.Backend)
	if err != nil {
		return runner.Input(err)
	}
	s.Base.Backend = backend.Resolve(s.Base.Backend)
	if r.submit {
		if _, err := exec.LookPath("sbatch"); err != nil {
			return runner.Input(errors.New("--submit: sbatch is not on PATH (write the job with --slurm alone and submit it where Slurm is)"))
		}
	}
	dir := r.out
	if r.collect {
		return collectSweep(r, dir, stdout)
	}
	if err := sweep.Claim(dir, s); err != nil {
		return runner.Input(err)
	}
	switch {
	case r.task >= 0:
		return sweepTask(r, dir, runs[r.task], b, stderr)
	case r.slurm:
		return writeSbatch(r, dir, len(runs), stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, sweep.SbatchFile)); err == nil {
		// The runs belong to the array job: collect what it has done.
		if !r.quiet {
			fmt.Fprintf(stderr, "flatmin sweep: %s has an array job (%s): collecting, starting nothing\n", dir, sweep.SbatchFile)
		}
		return collectSweep(r, dir, stdout)
	}
	lock, err := runio.TryLock(dir)
	if err != nil {
		return runner.Input(fmt.Errorf("--out: %w", err))
	}
	defer lock.Unlock()
	return driveSweep(r, dir, runs, stdout, stderr)
}

// collectSweep writes sweep.json from the run directories and prints the table.
func collectSweep(r *sweepRequest, dir string, stdout io.Writer) error {
	saved, err := sweep.LoadSpec(dir)
	if errors.Is(err, os.ErrNotExist) {
		return runner.Input(fmt.Errorf("--out %s holds no sweep (no %s)", dir, sweep.SpecFile))
	}
	if err != nil {
		return runner.Input(err)
	}
	if d := sweep.Difference(saved, &r.spec); d != "" {
		return runner.Input(fmt.Errorf("--out %s holds a different sweep: %s", dir, d))
	}
	res, err := sweep.Write(dir, &r.spec, r.tol)
	if err != nil {
		return err
	}
	if !r.quiet {
		printSweep(stdout, res, dir)
	}
	return drawSweep(res, dir, r.logSteps, stdout, r.quiet)
}

// sweepTask runs one run in this process (a local worker or an array task).
func sweepTask(r *sweepRequest, dir string, run sweep.Run, b backends.Backend, stderr io.Writer) error {
	if err := retryFailed(r, dir, run, stderr); err != nil {
		return err
	}
	ctx, interrupted, stop := interruptible()
	defer stop()
	out, err := sweep.Execute(ctx, dir, &r.spec, run, b)
	if out.Summary != nil && out.Summary.Interrupted {
		_, code := interrupted()
		return &exitStatus{code: code, err: fmt.Errorf("run %d interrupted at step %d; rerun to resume it", run.Index, out.Summary.Steps)}
	}
	if err != nil {
		return err
	}
	switch {
	case out.Action == "busy" && !r.quiet:
		fmt.Fprintf(stderr, "flatmin sweep: run %d (%s) is running in another process\n", run.Index, run.Dir)
	case out.State.Status == sweep.StatusFailed:
		return fmt.Errorf("run %d (%s) failed: %s", run.Index, run.Dir, out.State.Error)
	}
	return nil
}

// writeSbatch writes DIR/sweep.sbatch (under the sweep's lock) and submits it with --submit.
func writeSbatch(r *sweepRequest, dir string, n int, stdout io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	logDir := filepath.Join(absDir, "slurm")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	script := sweep.Sbatch(n, exe, wd, logDir, r.args, r.sbatch)
	path := filepath.Join(dir, sweep.SbatchFile)
	if err := sweep.WithLock(dir, func() error { return runio.WriteFileAtomic(path, []byte(script)) }); err != nil {
		return err
	}
	if !r.submit {
		if !r.quiet {
			fmt.Fprintf(stdout, "wrote %s: an array job of %d runs; submit it with: sbatch %s\nthen rerun this command (or add --collect) to build %s\n",
				path, n, path, filepath.Join(dir, sweep.ResultFile))
		}
		return nil
	}
	cmd := exec.Command("sbatch", "--parsable", path)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	got, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("sbatch %s: %v: %s", path, err, oneLine(errb.String()))
	}
	id := strings.TrimSpace(string(got))
	if err := sweep.WithLock(dir, func() error {
		return runio.WriteFileAtomic(filepath.Join(dir, "slurm-job-id"), []byte(id+"\n"))
	}); err != nil {
		return err
	}
	if !r.quiet {
		fmt.Fprintf(stdout, "submitted %s: job %s, %d array tasks; rerun this command (or add --collect) to build %s\n",
			path, id, n, filepath.Join(dir, sweep.ResultFile))
	}
	return nil
}

// retryFailed sets a failed run's directory aside under --retry-failed, so
// that the run starts again.
func retryFailed(r *sweepRequest, dir string, run sweep.Run, stderr io.Writer) error {
	if !r.retry {
		return nil
	}
	kept, err := sweep.SetAsideFailed(dir, run)
	if err != nil {
		return fmt.Errorf("--retry-failed: run %d (%s): %w", run.Index, run.Dir, err)
	}
	if kept != "" && !r.quiet {
		if rel, err := filepath.Rel(dir, kept); err == nil {
			kept = rel
		}
		fmt.Fprintf(stderr, "flatmin sweep: run %d (%s) failed before: kept as %s, running it again\n", run.Index, run.Dir, kept)
	}
	return nil
}

// driveSweep runs the unfinished runs in up to --jobs worker processes
// (`flatmin sweep ARGS --task i`), updating sweep.json as each ends.
func driveSweep(r *sweepRequest, dir string, runs []sweep.Run, stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var todo []sweep.Run
	finished := 0
	for _, run := range runs {
		if err := retryFailed(r, dir, run, stderr); err != nil {
			return err
		}
		if sweep.State(filepath.Join(dir, run.Dir)).Finished() {
			finished++
		} else {
			todo = append(todo, run)
		}
	}
	jobs := min(r.jobs, max(1, len(todo)))
	if !r.quiet {
		fmt.Fprintf(stderr, "flatmin sweep: %d runs in %s: %d finished before, %d to run in %d worker processes\n",
			len(runs), dir, finished, len(todo), jobs)
	}
	env := os.Environ()
	if os.Getenv("GOMAXPROCS") == "" {
		// Workers share the cores rather than each taking all of them.
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", max(1, runtime.NumCPU()/jobs)))
	}
	ctx, interrupted, stop := interruptible()
	defer stop()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		procs   = map[int]*os.Process{}
		sem     = make(chan struct{}, jobs)
		writeMu sync.Mutex
	)
	report := func(run sweep.Run, code int, errText string) {
		rd := filepath.Join(dir, run.Dir)
		st := sweep.State(rd)
		if code != 0 && !st.Finished() && st.Status != sweep.StatusRunning && code != 130 && code != 143 && ctx.Err() == nil {
			// The worker died without saying how the run ended.
			msg := errText
			if msg == "" {
				msg = fmt.Sprintf("worker exited with status %d", code)
			}
			if err := sweep.RecordFailure(rd, msg); err != nil {
				fmt.Fprintf(stderr, "flatmin sweep: %v\n", err)
			}
			st = sweep.State(rd)
		}
		mu.Lock()
		if st.Finished() {
			finished++
		}
		n := finished
		mu.Unlock()
		if !r.quiet {
			line := fmt.Sprintf("flatmin sweep: [%d/%d] run %d %s: %s", n, len(runs), run.Index, run.Dir, st.Status)
			if st.StopReason != "" && st.Status != sweep.StatusFailed {
				line += " (" + st.StopReason + ")"
			}
			if st.Error != "" {
				line += ": " + oneLine(st.Error)
			}
			fmt.Fprintln(stderr, line)
		}
		writeMu.Lock()
		defer writeMu.Unlock()
		if _, err := sweep.Write(dir, &r.spec, r.tol); err != nil {
			fmt.Fprintf(stderr, "flatmin sweep: writing %s: %v\n", sweep.ResultFile, err)
		}
	}
	for _, run := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		cmd := exec.Command(exe, append(append([]string{"sweep"}, r.args...), "--task", strconv.Itoa(run.Index), "--quiet")...)
		cmd.Env = env
		cmd.Stdout = io.Discard
		var errb bytes.Buffer
		cmd.Stderr = &errb
		cmd.SysProcAttr = workerAttr()
		mu.Lock()
		err := cmd.Start()
		if err == nil {
			procs[run.Index] = cmd.Process
		}
		mu.Unlock()
		if err != nil {
			<-sem
			return fmt.Errorf("starting a worker: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := cmd.Wait()
			mu.Lock()
			delete(procs, run.Index)
			mu.Unlock()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					code = 128 + int(ws.Signal())
				}
			} else if err != nil {
				code = 1
			}
			report(run, code, workerError(errb.String()))
			<-sem
		}()
	}
	// Forward an interruption to the workers: each checkpoints and stops.
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			mu.Lock()
			for _, p := range procs {
				_ = p.Signal(syscall.SIGTERM)
			}
			mu.Unlock()
		case <-done:
		}
	}()
	wg.Wait()
	close(done)
	res, err := sweep.Write(dir, &r.spec, r.tol)
	if err != nil {
		return err
	}
	if !r.quiet {
		printSweep(stdout, res, dir)
	}
	if err := drawSweep(res, dir, r.logSteps, stdout, r.quiet); err != nil {
		return err
	}
	c := res.Counts()
	if ctx.Err() != nil {
		sig, code := interrupted()
		return &exitStatus{code: code, err: fmt.Errorf("interrupted by %s with %d of %d runs finished; rerun the same command to resume", sig, c[sweep.StatusDone]+c[sweep.StatusFailed], len(runs))}
	}
	if c[sweep.StatusFailed] > 0 {
		return &exitStatus{code: exitFailure, err: fmt.Errorf("%d of %d runs failed (reasons in %s)", c[sweep.StatusFailed], len(runs), filepath.Join(dir, sweep.ResultFile))}
	}
	if c[sweep.StatusRunning]+c[sweep.StatusPending] > 0 {
		return &exitStatus{code: exitFailure, err: fmt.Errorf("%d runs are still running in other processes or pending: rerun to collect them", c[sweep.StatusRunning]+c[sweep.StatusPending])}
	}
	return nil
}

// workerError is the worker's message, without its "flatmin sweep: " prefix.
func workerError(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	return strings.TrimPrefix(last, "flatmin sweep: ")
}

// printSweep prints one line per trainer × setting: median [q1, q3] of the
// main metrics over the finished runs, and the time to σ2/σ1 < τ.
func printSweep(w io.Writer, res *sweep.Result, dir string) {
	cell := func(s sweep.Stat, never bool) string {
		if s.N == 0 {
			if never && s.Null > 0 {
				return "never"
			}
			return "—"
		}
		c := fmt.Sprintf("%.3g [%.3g, %.3g]", float64(s.Median), float64(s.Q1), float64(s.Q3))
		if never && s.Null > 0 {
			c += fmt.Sprintf(" (never: %d)", s.Null)
		}
		return c
	}
	fmt.Fprintf(w, "%-11s %-24s %-14s %-28s %-28s %-28s %-28s %s\n", "trainer", "settings", "runs", "final loss", "σ2/σ1 of Z", "theory gap", "Tr D²L_M / F*",
		fmt.Sprintf("steps to σ2/σ1 < %g", res.Tolerances.Rank))
	for _, row := range res.Summary {
		var ps []string
		for _, k := range slices.Sorted(maps.Keys(row.Params)) {
			ps = append(ps, fmt.Sprintf("%s=%v", k, row.Params[k]))
		}
		set := strings.Join(ps, ",")
		if set == "" {
			set = "defaults"
		}
		runs := fmt.Sprintf("%d/%d", row.Runs, row.Total)
		if row.Failed > 0 {
			runs += fmt.Sprintf(" (%d failed)", row.Failed)
		}
		m := row.Metrics
		fmt.Fprintf(w, "%-11s %-24s %-14s %-28s %-28s %-28s %-28s %s\n", row.Trainer, set, runs, cell(m["loss"], false), cell(m["sigma2_over_sigma1"], false),
			cell(m["theory_gap"], false), cell(m["trace_ratio"], false), cell(m["steps_to_rank"], true))
	}
	fmt.Fprintf(w, "median [q1, q3] over each setting's finished runs; every run in %s, all statistics in %s\n",
		filepath.Join(dir, sweep.RunsDir), filepath.Join(dir, sweep.ResultFile))
}

// FiguresDir is where a sweep's figures go, under its directory.
const FiguresDir = "figures"

// drawSweep draws DIR/figures: per trainer × setting, the median over its
// finished runs with an interquartile band, for σ2/σ1 of Z, Tr D²L_M/F*,
// the theory gap and the loss (plotting.SweepFigures). Nothing is drawn
// before a run has finished.
func drawSweep(res *sweep.Result, dir string, logSteps bool, stdout io.Writer, quiet bool) error {
	var groups []plotting.RunGroup
	index := map[string]int{}
	for _, run := range res.Runs {
		if run.Status != sweep.StatusDone {
			continue
		}
		label := run.Trainer + paramsLabel(run.Params)
		g, ok := index[label]
		if !ok {
			g = len(groups)
			index[label] = g
			groups = append(groups, plotting.RunGroup{Label: label})
		}
		groups[g].Dirs = append(groups[g].Dirs, filepath.Join(dir, run.Dir))
	}
	if len(groups) == 0 {
		return nil
	}
	files, err := plotting.SweepFigures(filepath.Join(dir, FiguresDir), groups, logSteps)
	if err != nil {
		return fmt.Errorf("sweep figures: %w", err)
	}
	if !quiet {
		fmt.Fprintf(stdout, "figures: %d files in %s\n", len(files), filepath.Join(dir, FiguresDir))
	}
	return nil
}

// paramsLabel writes a run's swept settings as " k=v,k=v" (sorted; "" for none).
func paramsLabel(params map[string]any) string {
	if len(params) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, params[k]))
	}
	return " " + strings.Join(parts, ",")
}

// sweepKeysHelp lists each trainer's sweep keys, for --help.
func sweepKeysHelp() string {
	var parts []string
	for _, name := range trainers.Names() {
		parts = append(parts, name+": "+strings.Join(sweep.Keys(name), ", "))
	}
	return strings.Join(parts, "; ")
}
