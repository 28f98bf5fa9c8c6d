package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
)

// asCLI makes the worker processes a sweep starts (os.Executable(), the
// test binary here) run flatmin (see TestMain).
func asCLI(t *testing.T) { t.Setenv(cliEnv, "1") }

// sweepRun is what the tests read of a run in sweep.json.
type sweepRun struct {
	Index      int
	Trainer    string
	Seed       uint64
	Params     map[string]any
	Dir        string
	Status     string
	StopReason string `json:"stop_reason"`
	Error      string
	Final      map[string]*float64
	TimeTo     map[string]*struct {
		Step        int64
		WallSeconds float64 `json:"wall_seconds"`
	} `json:"time_to"`
}

// sweepJSON is what the tests read of sweep.json.
type sweepJSON struct {
	Runs    []sweepRun
	Summary []struct {
		Trainer string
		Params  map[string]any
		Runs    int
		Failed  int
		Total   int
		Metrics map[string]struct {
			Median, Q1, Q3, Min, Max *float64
			N, Null                  int
		}
	}
}

func readSweep(t *testing.T, dir string) sweepJSON {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "sweep.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s sweepJSON
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot maps every file under root to its size, mode time and digest.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[path] = fmt.Sprintf("%d %v %x", info.Size(), info.ModTime().UnixNano(), sha256.Sum256(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pct is numpy.percentile's default (linear) from its definition, written
// apart from the package's: the order statistics at ⌊h⌋ and ⌈h⌉, h = p(n−1).
func pct(values []float64, p float64) float64 {
	x := append([]float64(nil), values...)
	sort.Float64s(x)
	h := p * float64(len(x)-1)
	lo, hi := math.Floor(h), math.Ceil(h)
	return x[int(lo)] + (h-lo)*(x[int(hi)]-x[int(lo)])
}

func closeTo(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-12*math.Max(math.Abs(a), math.Abs(b))
}

// Bad input: one line naming the problem, exit status 2, nothing written.
func TestSweepBadInput(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sw")
	csv := writeFile(t, root, "data.csv", "0.6,0.8,0.5\n0.8,0.6,0.9\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--param", "gd.eta="}, "empty grid"},
		{[]string{"--trainers", ","}, "empty grid"},
		{[]string{"--param", "gd.sigma=0.1,0.2"}, `gd has no setting "sigma"`},
		{[]string{"--param", "gd.eta=0.1", "--param", "gd.eta=0.2"}, "given twice"},
		{[]string{"--param", "gd.eta=0.1,x"}, "gd.eta=x"},
		{[]string{"--seeds", "0"}, "--seeds must be at least 1"},
		{[]string{"--seed-list", "1,x"}, "--seed-list"},
		{[]string{"--seeds", "2", "--seed-list", "1"}, "not both"},
		{[]string{"--jobs", "0"}, "--jobs must be at least 1"},
		{[]string{"--task", "4"}, "--task 4 is out of range: the sweep has 4 runs"},
		{[]string{"--task", "-2"}, "--task must be ≥ 0"},
		{[]string{"--trainer", "gd"}, "--trainers"},
		{[]string{"--seed", "3"}, "--seeds"},
		{[]string{"--rank-tol", "0"}, "--rank-tol must be positive"},
		{[]string{"--partition", "x"}, "go with --slurm"},
		{[]string{"--submit"}, "--submit goes with --slurm"},
		{[]string{"--collect"}, "holds no sweep"},
		{[]string{"--data", csv, "--d", "3"}, "--d 3 does not match"},
		{[]string{"--steps", "0"}, "--steps must be positive"},
	} {
		args := append([]string{"sweep", "--out", dir, "--trainers", "gd,riemannian", "--seeds", "2"}, c.args...)
		if c.args[0] == "--trainers" || slices.Contains(c.args, "--seed-list") {
			args = append([]string{"sweep", "--out", dir, "--trainers", "gd,riemannian"}, c.args...)
		}
		_, stderr, status := flatmin(t, args...)
		if status != 2 || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: status %d, stderr %q; want 2 and one line with %q", c.args, status, stderr, c.want)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("%v: %s was created", c.args, dir)
		}
	}
	if _, stderr, status := flatmin(t, "sweep", "--trainers", "gd"); status != 2 || !strings.Contains(stderr, "--out DIR is required") {
		t.Errorf("no --out: %d %s", status, stderr)
	}
}

// A sweep in parallel workers: every run exactly once, each seed's runs from
// one Θ₀, the statistics equal to those of the runs' own summary.json and
// metrics.csv; a rerun starts nothing and rewrites nothing; another sweep on
// the same directory is refused, naming the difference.
func TestSweepParallelIdempotentAndAggregated(t *testing.T) {
	asCLI(t)
	dir := filepath.Join(t.TempDir(), "sw")
	args := []string{"sweep", "--out", dir, "--trainers", "gd,riemannian", "--param", "gd.eta=0.02,0.05", "--seeds", "3",
		"--steps", "3000", "--log-every", "250", "--jobs", "3", "--m", "8", "--d", "4", "--n", "3", "--gap-tol", "1e-8"}
	stdout, stderr, status := flatmin(t, args...)
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	if !strings.Contains(stderr, "[9/9]") || !strings.Contains(stdout, "median [q1, q3]") {
		t.Errorf("no progress to 9/9 or no table:\n%s\n%s", stderr, stdout)
	}
	res := readSweep(t, dir)
	if len(res.Runs) != 9 || len(res.Summary) != 3 {
		t.Fatalf("%d runs, %d summary rows; want 9 and 3", len(res.Runs), len(res.Summary))
	}
	entries, err := os.ReadDir(filepath.Join(dir, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 9 {
		t.Errorf("%d run directories, want 9", len(entries))
	}
	theta0 := map[uint64][]byte{}
	type runData struct {
		summary map[string]any
		header  []string
		rows    [][]string
	}
	data := make([]runData, len(res.Runs))
	for k, r := range res.Runs {
		rd := filepath.Join(dir, r.Dir)
		if r.Status != "done" || r.Index != k {
			t.Errorf("run %d: index %d status %s (%s)", k, r.Index, r.Status, r.Error)
		}
		cfg := readJSON(t, filepath.Join(rd, "config.json"))
		if cfg["trainer"] != r.Trainer || uint64(cfg["seed"].(float64)) != r.Seed {
			t.Errorf("%s: config says %v seed %v", r.Dir, cfg["trainer"], cfg["seed"])
		}
		if eta, ok := r.Params["eta"]; ok && cfg["eta"].(float64) != eta.(float64) {
			t.Errorf("%s: eta %v in config.json", r.Dir, cfg["eta"])
		}
		th, err := os.ReadFile(filepath.Join(rd, "theta0.npy"))
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := theta0[r.Seed]; ok && !bytes.Equal(prev, th) {
			t.Errorf("%s: Θ₀ differs from another run of seed %d", r.Dir, r.Seed)
		}
		theta0[r.Seed] = th
		header, rows, err := runio.ReadCSVLog(filepath.Join(rd, "metrics.csv"))
		if err != nil {
			t.Fatal(err)
		}
		sum := readJSON(t, filepath.Join(rd, "summary.json"))
		// No row written twice: steps strictly increase to the last one.
		for i := 1; i < len(rows); i++ {
			a, _ := strconv.Atoi(rows[i-1][0])
			b, _ := strconv.Atoi(rows[i][0])
			if b <= a {
				t.Errorf("%s: metrics.csv step %d after %d", r.Dir, b, a)
			}
		}
		if last := rows[len(rows)-1][0]; last != fmt.Sprint(sum["steps"]) {
			t.Errorf("%s: last row at step %s, summary steps %v", r.Dir, last, sum["steps"])
		}
		data[k] = runData{sum, header, rows}
		// Time to threshold, by brute force over the rows.
		col := func(name string) int { return slices.Index(header, name) }
		val := func(row []string, name string) float64 {
			v, _ := strconv.ParseFloat(row[col(name)], 64)
			return v
		}
		first := func(ok func(row []string) bool) (int64, float64, bool) {
			for _, row := range rows {
				if ok(row) {
					s, _ := strconv.ParseInt(row[0], 10, 64)
					return s, val(row, "wall_seconds"), true
				}
			}
			return 0, 0, false
		}
		for name, ok := range map[string]func([]string) bool{
			"rank": func(row []string) bool { return val(row, "sv_z_2")/val(row, "sv_z_1") < 1e-2 },
			"gap":  func(row []string) bool { return val(row, "theory_gap") < 1e-8 },
			"trace": func(row []string) bool {
				return math.Abs(val(row, "trace_hessian_manifold")/val(row, "trace_min")-1) < 1e-4
			},
		} {
			step, wall, reached := first(ok)
			got := r.TimeTo[name]
			switch {
			case reached != (got != nil):
				t.Errorf("%s: %s reached %v, sweep.json %v", r.Dir, name, reached, got)
			case reached && (got.Step != step || got.WallSeconds != wall):
				t.Errorf("%s: %s first at step %d (%g s), sweep.json %+v", r.Dir, name, step, wall, *got)
			}
		}
	}
	if len(theta0) != 3 || bytes.Equal(theta0[1], theta0[2]) {
		t.Errorf("Θ₀ should be one per seed, three seeds")
	}
	// riemannian converges to rank one; gd does not (the thresholds are not vacuous).
	if res.Runs[6].TimeTo["rank"] == nil || res.Runs[0].TimeTo["rank"] != nil {
		t.Errorf("rank threshold: riemannian %v, gd %v", res.Runs[6].TimeTo["rank"], res.Runs[0].TimeTo["rank"])
	}
	// The summary against the runs' own summary.json.
	final := func(d runData, name string) float64 {
		f := d.summary["final"].(map[string]any)
		switch name {
		case "sigma2_over_sigma1":
			sv := f["singular_values_Z"].([]any)
			return sv[1].(float64) / sv[0].(float64)
		case "trace_ratio":
			return f["trace_hessian_manifold"].(float64) / f["trace_min"].(float64)
		case "steps", "wall_seconds":
			return d.summary[name].(float64)
		}
		return f[name].(float64)
	}
	for g, row := range res.Summary {
		if row.Runs != 3 || row.Total != 3 || row.Failed != 0 {
			t.Errorf("row %d: runs %d of %d", g, row.Runs, row.Total)
		}
		for _, m := range []string{"loss", "sigma2_over_sigma1", "theory_gap", "trace_ratio", "effective_rank", "steps", "wall_seconds"} {
			var vs []float64
			for k := 3 * g; k < 3*g+3; k++ {
				vs = append(vs, final(data[k], m))
			}
			st := row.Metrics[m]
			if st.N != 3 || st.Median == nil {
				t.Errorf("row %d %s: %+v", g, m, st)
				continue
			}
			for _, c := range []struct {
				got  float64
				p    float64
				name string
			}{{*st.Median, 0.5, "median"}, {*st.Q1, 0.25, "q1"}, {*st.Q3, 0.75, "q3"}, {*st.Min, 0, "min"}, {*st.Max, 1, "max"}} {
				if want := pct(vs, c.p); !closeTo(c.got, want) {
					t.Errorf("row %d (%s %v) %s %s = %v, from the runs' summaries %v (%v)", g, row.Trainer, row.Params, m, c.name, c.got, want, vs)
				}
			}
		}
		// Time to threshold: the reached runs' statistics, the others counted as null.
		var steps []float64
		for k := 3 * g; k < 3*g+3; k++ {
			if h := res.Runs[k].TimeTo["rank"]; h != nil {
				steps = append(steps, float64(h.Step))
			}
		}
		st := row.Metrics["steps_to_rank"]
		if st.N != len(steps) || st.Null != 3-len(steps) || (len(steps) > 0 && *st.Median != pct(steps, 0.5)) || (len(steps) == 0 && st.Median != nil) {
			t.Errorf("row %d steps_to_rank %+v, reached at %v", g, st, steps)
		}
	}

	// The figures: one per metric and format, drawn from the finished runs.
	for _, name := range []string{"sweep_sigma_ratio", "sweep_trace_ratio", "sweep_theory_gap", "sweep_loss"} {
		for _, ext := range []string{".png", ".svg"} {
			if info, err := os.Stat(filepath.Join(dir, FiguresDir, name+ext)); err != nil || info.Size() == 0 {
				t.Errorf("figure %s%s: %v", name, ext, err)
			}
		}
	}

	// Rerun: nothing starts, nothing in the run directories is rewritten.
	before := snapshot(t, filepath.Join(dir, "runs"))
	_, stderr, status = flatmin(t, args...)
	if status != 0 || !strings.Contains(stderr, "9 finished before, 0 to run") {
		t.Errorf("rerun: status %d: %s", status, stderr)
	}
	if after := snapshot(t, filepath.Join(dir, "runs")); !maps_equal(before, after) {
		t.Errorf("a rerun changed the run directories")
	}
	// Another sweep on the same directory: refused, naming the difference.
	other := slices.Clone(args)
	other[slices.Index(other, "3000")] = "4000"
	_, stderr, status = flatmin(t, other...)
	if status != 2 || !strings.Contains(stderr, "steps is 3000 there, 4000 here") {
		t.Errorf("another sweep: status %d: %s", status, stderr)
	}
	other = slices.Clone(args)
	other[slices.Index(other, "gd.eta=0.02,0.05")] = "gd.eta=0.02"
	if _, stderr, status = flatmin(t, other...); status != 2 || !strings.Contains(stderr, "grid is") {
		t.Errorf("another grid: status %d: %s", status, stderr)
	}
	// Other thresholds only change sweep.json.
	if _, stderr, status = flatmin(t, append(slices.Clone(args), "--collect", "--rank-tol", "0.5")...); status != 0 {
		t.Errorf("--collect --rank-tol 0.5: %d %s", status, stderr)
	}
	if res := readSweep(t, dir); res.Runs[0].TimeTo["rank"] == nil || res.Runs[0].TimeTo["rank"].Step != 0 {
		t.Errorf("σ2/σ1 < 0.5 from the start: %+v", res.Runs[0].TimeTo["rank"])
	}
	if after := snapshot(t, filepath.Join(dir, "runs")); !maps_equal(before, after) {
		t.Errorf("--collect changed the run directories")
	}
}

func maps_equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A run that fails (diverges, or cannot start) is recorded with its reason
// and the others run; a rerun does not start the failed ones again.
func TestSweepRecordsFailedRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("worker processes")
	}
	asCLI(t)
	root := t.TempDir()
	dir := filepath.Join(root, "sw")
	// Two equal points: J Jᵀ is singular, the Riemannian flow cannot start.
	csv := writeFile(t, root, "dup.csv", "0.6,0.8,0.5\n0.6,0.8,0.5\n0.8,0.6,0.9\n")
	args := []string{"sweep", "--out", dir, "--trainers", "gd,riemannian", "--param", "gd.eta=0.02,1000", "--data", csv,
		"--steps", "500", "--log-every", "100", "--jobs", "2"}
	_, stderr, status := flatmin(t, args...)
	if status != 1 || !strings.Contains(stderr, "2 of 3 runs failed") {
		t.Fatalf("status %d: %s", status, stderr)
	}
	res := readSweep(t, dir)
	want := []struct{ status, reason, err string }{{"done", "steps", ""}, {"failed", "diverged", "diverged at step"}, {"failed", "error", "J Jᵀ is singular"}}
	for k, w := range want {
		r := res.Runs[k]
		if r.Status != w.status || r.StopReason != w.reason || !strings.Contains(r.Error, w.err) {
			t.Errorf("run %d: %s %s %q; want %s %s %q", k, r.Status, r.StopReason, r.Error, w.status, w.reason, w.err)
		}
	}
	if res.Summary[1].Failed != 1 || res.Summary[1].Runs != 0 || res.Summary[1].Metrics["loss"].Median != nil {
		t.Errorf("summary of the diverged setting: %+v", res.Summary[1])
	}
	before := snapshot(t, filepath.Join(dir, "runs"))
	if _, stderr, status = flatmin(t, args...); status != 1 || !strings.Contains(stderr, "3 finished before, 0 to run") {
		t.Errorf("rerun: %d %s", status, stderr)
	}
	if !maps_equal(before, snapshot(t, filepath.Join(dir, "runs"))) {
		t.Error("a rerun touched failed runs")
	}

	// --retry-failed keeps each failed directory, unchanged, as DIR.failed-1
	// and runs the run again (these fail again: they are deterministic); the
	// done run is left alone. An array task does the same, to DIR.failed-2.
	_, stderr, status = flatmin(t, append(args, "--retry-failed")...)
	if status != 1 || !strings.Contains(stderr, "1 finished before, 2 to run") || strings.Count(stderr, "failed before: kept as") != 2 {
		t.Fatalf("--retry-failed: %d %s", status, stderr)
	}
	after := snapshot(t, filepath.Join(dir, "runs"))
	for k, r := range res.Runs {
		for path, sum := range before {
			rel, err := filepath.Rel(filepath.Join(dir, r.Dir), path)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			kept := path
			if k > 0 {
				kept = filepath.Join(dir, r.Dir+".failed-1", rel)
			}
			if after[kept] != sum {
				t.Errorf("run %d: %s is not kept unchanged as %s", k, path, kept)
			}
		}
	}
	again := readSweep(t, dir)
	for k, w := range want {
		if r := again.Runs[k]; r.Status != w.status || r.StopReason != w.reason {
			t.Errorf("after --retry-failed, run %d: %s %s; want %s %s", k, r.Status, r.StopReason, w.status, w.reason)
		}
	}
	_, stderr, status = flatmin(t, append(args, "--retry-failed", "--task", "2")...)
	if _, err := os.Stat(filepath.Join(dir, res.Runs[2].Dir+".failed-2")); status == 0 || err != nil {
		t.Errorf("--task 2 --retry-failed: %d %v %s", status, err, stderr)
	}
}

// Two workers given the same run at once: one runs it, the other finds it
// busy (or finished); the run is written once.
func TestSweepTaskRunsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("worker processes")
	}
	dir := filepath.Join(t.TempDir(), "sw")
	args := []string{"sweep", "--out", dir, "--trainers", "labelnoise", "--steps", "200000", "--log-every", "10000", "--task", "0"}
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 3 {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), cliEnv+"=1")
		var b bytes.Buffer
		cmd.Stderr = &b
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &b)
	}
	for k, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v: %s", k, err, outs[k])
		}
	}
	rd := filepath.Join(dir, "runs", "0000-labelnoise-seed1")
	_, rows, err := runio.ReadCSVLog(filepath.Join(rd, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 21 {
		t.Errorf("%d metrics rows, want 21 (steps 0..200000 every 10000)", len(rows))
	}
	sum := readJSON(t, filepath.Join(rd, "summary.json"))
	if sum["stop_reason"] != "steps" {
		t.Errorf("stop_reason %v", sum["stop_reason"])
	}
}

// --slurm writes an array job whose task i runs run i; run by hand here (bash
// with SLURM_ARRAY_TASK_ID), then a plain rerun collects and starts nothing.
// scripts/slurm-e2e.sh runs it under a real Slurm.
func TestSweepSlurmArrayScript(t *testing.T) {
	if testing.Short() {
		t.Skip("worker processes")
	}
	asCLI(t)
	root := t.TempDir()
	dir := filepath.Join(root, "sw")
	args := []string{"sweep", "--out", dir, "--trainers", "gd,riemannian", "--seeds", "2", "--steps", "1000", "--log-every", "250"}
	stdout, stderr, status := flatmin(t, append(slices.Clone(args), "--slurm", "--partition", "short", "--time", "0:10:00", "--mem", "1G")...)
	if status != 0 || !strings.Contains(stdout, "sbatch "+filepath.Join(dir, "sweep.sbatch")) {
		t.Fatalf("--slurm: status %d: %s %s", status, stdout, stderr)
	}
	script, err := os.ReadFile(filepath.Join(dir, "sweep.sbatch"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#SBATCH --array=0-3\n", "#SBATCH --partition=short\n", "#SBATCH --time=0:10:00\n", "#SBATCH --mem=1G\n",
		`--task "$SLURM_ARRAY_TASK_ID"`, "--trainers=gd,riemannian"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("sweep.sbatch lacks %q:\n%s", want, script)
		}
	}
	for i := range 4 {
		cmd := exec.Command("bash", filepath.Join(dir, "sweep.sbatch"))
		cmd.Env = append(os.Environ(), fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", i))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("task %d: %v\n%s", i, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "sweep.json")); err == nil {
		t.Error("tasks wrote sweep.json: collecting is the rerun's job")
	}
	_, stderr, status = flatmin(t, args...)
	if status != 0 || !strings.Contains(stderr, "collecting, starting nothing") {
		t.Errorf("plain rerun: status %d: %s", status, stderr)
	}
	res := readSweep(t, dir)
	for _, r := range res.Runs {
		if r.Status != "done" {
			t.Errorf("%s: %s", r.Dir, r.Status)
		}
	}
	// --submit without sbatch: status 2, before anything is written.
	t.Setenv("PATH", root)
	if _, stderr, status = flatmin(t, "sweep", "--out", filepath.Join(root, "new"), "--trainers", "gd", "--slurm", "--submit"); status != 2 || !strings.Contains(stderr, "sbatch is not on PATH") {
		t.Errorf("--submit without sbatch: %d %s", status, stderr)
	}
}

// An interrupted sweep: SIGTERM to the driver reaches its workers, which
// checkpoint and stop; a rerun leaves the finished runs as they are and
// resumes the others to the same Θ as uninterrupted runs. SIGKILL of the
// driver stops the workers too (parent-death signal), and a rerun resumes.
func TestSweepResumesInterruptedSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("long: runs of a few seconds, interrupted twice")
	}
	root := t.TempDir()
	dir := filepath.Join(root, "sw")
	flags := []string{"--trainers", "labelnoise", "--seeds", "3", "--steps", "3000000", "--log-every", "100000",
		"--checkpoint-every", "100000", "--quiet"}
	args := append([]string{"sweep", "--out", dir, "--jobs", "2"}, flags...)
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), cliEnv+"=1")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// waitCheckpoint waits until some unfinished run has a checkpoint.
	waitCheckpoint := func() {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			ms, _ := filepath.Glob(filepath.Join(dir, "runs", "*", "checkpoints", "*"))
			for _, m := range ms {
				rd := filepath.Dir(filepath.Dir(m))
				if data, err := os.ReadFile(filepath.Join(rd, "summary.json")); err == nil && strings.Contains(string(data), `"stop_reason": "running"`) {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no run reached a checkpoint in 60 s")
	}
	cmd := start()
	waitCheckpoint()
	// Meanwhile a second sweep on DIR is refused, and --collect sees the runs going on.
	if _, stderr, status := flatmin(t, args...); status != 2 || !strings.Contains(stderr, "in use by another flatmin process") {
		t.Errorf("a second driver: status %d: %s", status, stderr)
	}
	if _, stderr, status := flatmin(t, append(slices.Clone(args), "--collect")...); status != 0 {
		t.Errorf("--collect during the sweep: status %d: %s", status, stderr)
	}
	if c := readSweep(t, dir); !slices.ContainsFunc(c.Runs, func(r sweepRun) bool {
		return r.Status == "running" && r.StopReason == "running"
	}) {
		t.Errorf("--collect during the sweep shows no run running: %+v", c.Runs)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 143 {
		t.Fatalf("driver after SIGTERM: %v, want exit status 143", err)
	}
	res := readSweep(t, dir)
	interrupted := 0
	for _, r := range res.Runs {
		if r.Status == "pending" && r.StopReason == "interrupted" {
			interrupted++
		}
	}
	if interrupted == 0 {
		t.Fatalf("no run recorded as interrupted: %+v", res.Runs)
	}
	// Again, killed outright this time.
	cmd = start()
	waitCheckpoint()
	cmd.Process.Kill()
	cmd.Wait()
	// The workers notice their parent's death and stop; wait for their locks.
	deadline := time.Now().Add(30 * time.Second)
	for {
		// A worker killed before its handlers were set leaves its lock file,
		// unheld: ask flock, not the file's presence.
		locks, _ := filepath.Glob(filepath.Join(dir, "runs", "*", ".lock"))
		locks = slices.DeleteFunc(locks, func(path string) bool {
			f, err := os.Open(path)
			if err != nil {
				return true
			}
			defer f.Close()
			return syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil
		})
		if len(locks) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers still hold %v 30 s after the driver was killed", locks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	finished := map[string]map[string]string{}
	for _, r := range readSweep(t, dir).Runs {
		if r.Status == "done" {
			finished[r.Dir] = snapshot(t, filepath.Join(dir, r.Dir))
		}
	}
	asCLI(t)
	if _, stderr, status := flatmin(t, args...); status != 0 {
		t.Fatalf("rerun: status %d: %s", status, stderr)
	}
	res = readSweep(t, dir)
	for _, r := range res.Runs {
		if r.Status != "done" {
			t.Errorf("%s: %s after the rerun", r.Dir, r.Status)
			continue
		}
		if snap, ok := finished[r.Dir]; ok && !maps_equal(snap, snapshot(t, filepath.Join(dir, r.Dir))) {
			t.Errorf("%s was finished but the rerun changed it", r.Dir)
		}
		// The same Θ as an uninterrupted run (a resumed run is bit-identical).
		ref := filepath.Join(root, fmt.Sprintf("ref%d", r.Seed))
		if _, stderr, status := flatmin(t, "train", "--out", ref, "--trainer", "labelnoise", "--seed", fmt.Sprint(r.Seed), "--steps", "3000000",
			"--log-every", "100000", "--quiet"); status != 0 {
			t.Fatalf("reference run: %s", stderr)
		}
		a, _ := os.ReadFile(filepath.Join(dir, r.Dir, "theta.npy"))
		b, _ := os.ReadFile(filepath.Join(ref, "theta.npy"))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: Θ differs from an uninterrupted run's", r.Dir)
		}
		_, rows, _ := runio.ReadCSVLog(filepath.Join(dir, r.Dir, "metrics.csv"))
		if len(rows) != 31 {
			t.Errorf("%s: %d metrics rows, want 31", r.Dir, len(rows))
		}
	}
	if len(finished) == 3 {
		t.Log("every run had finished before the rerun: the resume was not exercised")
	}
}
