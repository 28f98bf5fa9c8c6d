package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/trainers"
)

// badInput checks the house rule for bad input: status 2, one line on
// stderr that mentions want, no trace.
func badInput(t *testing.T, args []string, want string) {
	t.Helper()
	stdout, stderr, status := flatmin(t, args...)
	if status != 2 {
		t.Errorf("%q: status %d, want 2 (stdout %.200q, stderr %q)", args, status, stdout, stderr)
	}
	if stderr == "" || strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 {
		t.Errorf("%q: want one line on stderr, got %q", args, stderr)
	}
	if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") || strings.Contains(stderr, "reflect") {
		t.Errorf("%q: Go internals in the message: %s", args, stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("%q: message %q does not mention %q", args, stderr, want)
	}
}

// An explicitly empty value (an unset shell variable) is refused for every
// string flag instead of silently meaning "not given": `--resume ""` used to
// start a new 1M-step run.
func TestEmptyFlagValues(t *testing.T) {
	t.Chdir(t.TempDir()) // a run started by mistake would land under ./runs
	cases := [][]string{
		{"train", "--resume", ""},
		{"train", "--out", ""},
		{"train", "--x", "", "--y", "y.npy"},
		{"train", "--y", ""},
		{"train", "--data", ""},
		{"train", "--w", ""},
		{"train", "--theta0", ""},
		{"train", "--backend", ""},
		{"train", "--engine", ""},
		{"train", "--labels", ""},
		{"compare", "--out", ""},
		{"inspect", "--theta", ""},
		{"inspect", "--run", ""},
		{"theory", "--theta0", ""},
		{"repro", "fig1a", "--out", ""},
		{"bench", "--only", ""},
	}
	for _, args := range cases {
		flag := ""
		for _, a := range args {
			if strings.HasPrefix(a, "--") {
				flag = a
				break
			}
		}
		t.Run(strings.Join(args, " "), func(t *testing.T) { badInput(t, args, flag) })
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("refused commands left %v behind", entries)
	}
}

// Every numeric setting is checked before anything is written, also those
// the chosen trainer does not use: NaN used to surface as "--out: json:
// unsupported value: NaN" after the run directory was half made.
func TestNumericSettingsChecked(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"train", "--lambda", "NaN"}, "--lambda"},
		{[]string{"train", "--lambda", "-1"}, "--lambda"},
		{[]string{"train", "--rho", "NaN"}, "--rho"},
		{[]string{"train", "--rho", "-1"}, "--rho"},
		{[]string{"train", "--rho", "+Inf"}, "--rho"},
		{[]string{"train", "--trainer", "gd", "--sigma", "NaN"}, "--sigma"},
		{[]string{"train", "--trainer", "gd", "--sigma", "-Inf"}, "--sigma"},
		{[]string{"train", "--retract-tol", "NaN"}, "--retract-tol"},
		{[]string{"train", "--retract-tol", "2"}, "--retract-tol"},
		{[]string{"train", "--sam-batch", "0"}, "--sam-batch"},
		{[]string{"train", "--max-loss", "Inf"}, "--max-loss"},
		{[]string{"train", "--max-loss", "NaN"}, "--max-loss"},
		{[]string{"train", "--init-scale", "-Inf"}, "--init-scale"},
		{[]string{"train", "--eta", "Inf"}, "--eta"},
		{[]string{"train", "--k", "0"}, "--k"},
		{[]string{"train", "--nu", "Inf"}, "--nu"},
		{[]string{"compare", "--lambda", "NaN"}, "--lambda"},
		{[]string{"compare", "--trainers", "gd", "--param", "gd.sigma=NaN"}, "--param"},
		{[]string{"compare", "--trainers", "gd", "--param", "gd.lambda=Inf"}, "--param"},
		{[]string{"compare", "--trainers", "gd,sam1", "--param", "gd.rho=-1"}, "--param"},
		{[]string{"compare", "--trainers", "gd", "--param", "gd.retract_tol=NaN"}, "--param"},
		{[]string{"compare", "--trainers", "gd", "--param", "gd.eta=Inf"}, "--param"},
		{[]string{"theory", "--eps", "Inf"}, "--eps"},
		{[]string{"theory", "--eps", "NaN"}, "--eps"},
		{[]string{"theory", "--init-scale", "NaN"}, "--init-scale"},
		{[]string{"theory", "--k", "-1"}, "--k"},
		{[]string{"inspect", "--k", "-1", "--theta", "t.npy"}, "--k"},
		{[]string{"bench", "--fuse", "5000"}, "--fuse"},
		{[]string{"bench", "--min-time", "-1s"}, "--min-time"},
	}
	for _, c := range cases {
		dir := filepath.Join(t.TempDir(), "run")
		args := c.args
		if args[0] == "train" || args[0] == "compare" {
			args = append(append([]string(nil), args...), "--steps", "2", "--out", dir)
		}
		badInput(t, args, c.want)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%q: the run directory was created", args)
		}
	}
}

// Zero-size arrays and data files without rows are refused in our words.
func TestEmptyArraysAndData(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	writeNpy(t, p("x03.npy"), nil, 0, 3)
	writeNpy(t, p("x00.npy"), nil, 0, 0)
	writeNpy(t, p("x30.npy"), nil, 3, 0)
	writeNpy(t, p("y0.npy"), nil, 0)
	writeNpy(t, p("y3.npy"), []float64{1, 2, 3}, 3)
	writeNpy(t, p("x33.npy"), []float64{1, 0, 0, 0, 1, 0, 0, 0, 1}, 3, 3)
	writeFile(t, dir, "empty.csv", "")
	writeFile(t, dir, "header.csv", "a,b,y\n")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"train", "--x", p("x03.npy"), "--y", p("y0.npy")}, "no rows"},
		{[]string{"train", "--x", p("x00.npy"), "--y", p("y0.npy")}, "no rows"},
		{[]string{"train", "--x", p("x30.npy"), "--y", p("y3.npy")}, "no columns"},
		{[]string{"train", "--x", p("x33.npy"), "--y", p("y0.npy")}, "--y"},
		{[]string{"train", "--w", p("y0.npy")}, "--w"},
		{[]string{"train", "--theta0", p("x00.npy")}, "--theta0"},
		{[]string{"inspect", "--theta", p("x03.npy")}, "--theta"},
		{[]string{"train", "--data", p("empty.csv")}, "empty"},
		{[]string{"train", "--data", p("header.csv")}, "only a header"},
	}
	for _, c := range cases {
		args := c.args
		if args[0] == "train" {
			args = append(append([]string(nil), args...), "--steps", "2", "--out", filepath.Join(t.TempDir(), "run"))
		}
		badInput(t, args, c.want)
	}
	// The zero-size arrays are named as empty, and by the flag that read them.
	badInput(t, []string{"train", "--w", p("y0.npy"), "--out", filepath.Join(t.TempDir(), "r")}, "empty")
}

// Device files are refused after a few bytes, not read up to 4 GiB.
func TestDeviceFiles(t *testing.T) {
	for _, dev := range []string{"/dev/zero", "/dev/urandom"} {
		if _, err := os.Stat(dev); err != nil {
			t.Skip(dev, "is missing")
		}
	}
	dir := t.TempDir()
	writeNpy(t, filepath.Join(dir, "x.npy"), []float64{1, 0, 0, 1}, 2, 2)
	writeNpy(t, filepath.Join(dir, "y.npy"), []float64{1, 2}, 2)
	x, y := filepath.Join(dir, "x.npy"), filepath.Join(dir, "y.npy")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--x", "/dev/zero", "--y", y}, "--x"},
		{[]string{"train", "--x", "/dev/urandom", "--y", y}, "--x"},
		{[]string{"train", "--x", x, "--y", "/dev/zero"}, "--y"},
		{[]string{"train", "--data", "/dev/zero"}, "--data"},
		{[]string{"train", "--data", "/dev/urandom"}, "--data"},
		{[]string{"train", "--w", "/dev/zero"}, "--w"},
		{[]string{"train", "--theta0", "/dev/urandom"}, "--theta0"},
		{[]string{"inspect", "--theta", "/dev/zero"}, "--theta"},
	} {
		args := c.args
		if args[0] == "train" {
			args = append(append([]string(nil), args...), "--steps", "2", "--out", filepath.Join(t.TempDir(), "run"))
		}
		badInput(t, args, c.want)
	}
}

// inspect takes m and d from Θ's shape, as its help says, and checks them
// against --m and --d when those are given.
func TestInspectTakesShapeFromTheta(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, stderr, s := flatmin(t, "train", "--m", "5", "--d", "4", "--steps", "300", "--log-every", "100", "--out", dir); s != 0 {
		t.Fatalf("train: status %d: %s", s, stderr)
	}
	theta := filepath.Join(dir, "theta.npy")
	final := readJSON(t, filepath.Join(dir, "summary.json"))["final"].(map[string]any)
	out, stderr, s := flatmin(t, "inspect", "--theta", theta)
	if s != 0 {
		t.Fatalf("inspect --theta (5×4) without --m/--d: status %d: %s", s, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"loss", "trace_hessian"} {
		if a, b := got[key].(float64), final[key].(float64); math.Abs(a-b) > 1e-12*math.Abs(b) {
			t.Errorf("%s = %v, the run's final %v", key, a, b)
		}
	}
	badInput(t, []string{"inspect", "--theta", theta, "--m", "6"}, "--m")
	badInput(t, []string{"inspect", "--theta", theta, "--d", "3"}, "--d")
}

// theory gives no Theorem 3 time bound outside its scope (w ≠ 1).
func TestTheoryTimeBoundNeedsUnitWeights(t *testing.T) {
	w := filepath.Join(t.TempDir(), "w.npy")
	writeNpy(t, w, []float64{1, 2, 1, 2, 1, 2, 1, 2, 1, 2}, 10)
	out, stderr, s := flatmin(t, "theory", "--w", w, "--json")
	if s != 0 {
		t.Fatalf("status %d: %s", s, stderr)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r["time_bound"] != nil {
		t.Errorf("time_bound = %v with w ≠ 1, want null", r["time_bound"])
	}
	out, _, _ = flatmin(t, "theory", "--w", w)
	_, thm3, _ := strings.Cut(out, "Theorem 3")
	if strings.Contains(thm3, "ε-stationary") || !strings.Contains(thm3, "w = 1") {
		t.Errorf("theory prints a time bound (or no reason for none) with w ≠ 1:\n%s", out)
	}
	// With w = 1 the bound is there.
	out, _, _ = flatmin(t, "theory", "--json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || r["time_bound"] == nil {
		t.Errorf("no time bound on the default problem: %v", r["time_bound"])
	}
}

// inspect says when trace_min cannot be reached (n > d).
func TestInspectNotesTraceMinScope(t *testing.T) {
	th := filepath.Join(t.TempDir(), "theta.npy")
	values := make([]float64, 10*5)
	for i := range values {
		values[i] = 0.1 * float64(i%7+1)
	}
	writeNpy(t, th, values, 10, 5)
	for _, c := range []struct {
		args []string
		note bool
	}{
		{[]string{"inspect", "--theta", th, "--n", "6"}, true},
		{[]string{"inspect", "--theta", th, "--n", "3"}, false},
	} {
		out, stderr, s := flatmin(t, c.args...)
		if s != 0 {
			t.Fatalf("%q: status %d: %s", c.args, s, stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		note, _ := got["note"].(string)
		if c.note != strings.Contains(note, "> d =") {
			t.Errorf("%q: note %q", c.args, note)
		}
		if got["trace_min"] == nil {
			t.Errorf("%q: trace_min is gone", c.args)
		}
	}
}

// The printed summary compares Tr D²L with F* only where F* is the minimum
// of the manifold the run ended on.
func TestSummaryComparesWithFStarOnlyWhereItApplies(t *testing.T) {
	sv := []float64{2, 1, 0.5}
	summary := func(act string, loss, tr, trM float64) *runner.Summary {
		c := runner.DefaultConfig()
		c.Activation, c.M, c.N, c.D = act, 10, 3, 3
		f := trainers.Metrics{Loss: loss, TraceHessian: tr, TraceHessianManifold: trM, TraceMin: 10.65, TheoryGap: 0.1, SingularValuesZ: sv}
		return &runner.Summary{Trainer: "x", Config: c, Final: f, Initial: &f, Backend: "go"}
	}
	// The run directory's labels: Σy² = 1.37.
	dir := t.TempDir()
	writeNpy(t, filepath.Join(dir, "y.npy"), []float64{1, 0.6, 0.1}, 3)
	for _, c := range []struct {
		name    string
		s       *runner.Summary
		compare bool   // Tr D²L is set against F* as its minimum
		want    string // words the trace line must contain
	}{
		{"on the manifold", summary("cubic", 1e-30, 10.7, 10.7), true, "F* = 10.65"},
		{"off the manifold (penalty)", summary("cubic", 0.09, -10.5, 6.9), false, "off the manifold"},
		{"tanh", summary("tanh", 1e-30, 10.7, 10.7), false, "Assumption 1"},
	} {
		var b strings.Builder
		printSummary(&b, c.s, dir)
		out := b.String()
		line := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "Tr D²L") {
				line = l
			}
		}
		if line == "" {
			t.Errorf("%s: no Tr D²L line:\n%s", c.name, out)
			continue
		}
		if strings.Contains(line, "on the manifold") && !c.compare {
			t.Errorf("%s: labelled on the manifold: %s", c.name, line)
		}
		if c.compare != strings.Contains(line, "minimum F*") {
			t.Errorf("%s: compare with F* = %v, line %q", c.name, !c.compare, line)
		}
		if !strings.Contains(line, c.want) {
			t.Errorf("%s: line %q lacks %q", c.name, line, c.want)
		}
	}
}

// `flatmin help CMD` prints CMD's help, and every default shows.
func TestHelpCommand(t *testing.T) {
	for _, c := range commands() {
		want, _, s1 := flatmin(t, c.name, "--help")
		got, stderr, s2 := flatmin(t, "help", c.name)
		if s1 != 0 || s2 != 0 || got != want || !strings.Contains(got, "Usage: flatmin "+c.name) {
			t.Errorf("help %s: status %d (%s), output %.100q, want %s --help's %.100q", c.name, s2, stderr, got, c.name, want)
		}
	}
	badInput(t, []string{"help", "fly"}, "fly")
	out, _, _ := flatmin(t, "train", "--help")
	if !regexp.MustCompile(`--engine[^\n]*\(default "auto"\)`).MatchString(out) {
		t.Errorf("train --help shows no default for --engine")
	}
}

// Run times live in README.md only (measured on a stated machine); help
// texts, seen on any machine, state none.
func TestHelpStatesNoRunTimes(t *testing.T) {
	seconds := regexp.MustCompile(`(?i)about [\d.]+\s*(s|ms|min|minutes?|seconds?|hours?)\b`)
	for _, c := range commands() {
		out, _, _ := flatmin(t, c.name, "--help")
		if m := seconds.FindString(out); m != "" {
			t.Errorf("%s --help states a run time %q", c.name, m)
		}
	}
}

// README's Outputs section names every key of summary.json.
func TestReadmeNamesSummaryKeys(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	outputs := string(readme)
	if i := strings.Index(outputs, "### Outputs"); i >= 0 {
		outputs = outputs[i:]
	}
	data, err := json.Marshal(runner.Summary{Initial: &trainers.Metrics{}, Error: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(data, &keys); err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if !strings.Contains(outputs, "`"+k+"`") {
			t.Errorf("README's Outputs do not name summary.json's %q", k)
		}
	}
}
