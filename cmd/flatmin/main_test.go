package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/trainers"
)

// flatmin runs one command line in-process.
func flatmin(t *testing.T, args ...string) (stdout, stderr string, status int) {
	t.Helper()
	var out, errb bytes.Buffer
	status = run(args, &out, &errb)
	return out.String(), errb.String(), status
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func TestTrainWritesRunAndInspectReproducesIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	stdout, stderr, status := flatmin(t, "train", "--steps", "3000", "--log-every", "1000", "--out", dir)
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	for _, want := range []string{"labelnoise", "F* =", "singular values of Z", "theory gap", dir} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	header, rows, err := runio.ReadCSVLog(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[0][0] != "0" || rows[3][0] != "3000" {
		t.Errorf("metrics.csv rows %v", rows)
	}
	for _, col := range append(trainers.MetricNames, "sv_z_1", "sv_theta_1", "wall_seconds") {
		if !slices.Contains(header, col) {
			t.Errorf("metrics.csv lacks column %q", col)
		}
	}
	sum := readJSON(t, filepath.Join(dir, "summary.json"))
	for _, key := range []string{"trainer", "steps", "wall_seconds", "config", "final"} {
		if _, ok := sum[key]; !ok {
			t.Errorf("summary.json lacks %q", key)
		}
	}
	final := sum["final"].(map[string]any)
	for _, key := range append(trainers.MetricNames, "singular_values_Z", "singular_values_theta", "wall_seconds") {
		if _, ok := final[key]; !ok {
			t.Errorf("summary.json final lacks %q", key)
		}
	}
	// inspect on theta.npy with the same (default) flags, and with --run.
	for _, args := range [][]string{{"inspect", "--theta", filepath.Join(dir, "theta.npy")}, {"inspect", "--run", dir}} {
		out, stderr, status := flatmin(t, args...)
		if status != 0 {
			t.Fatalf("%v: status %d: %s", args, status, stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: output is not one JSON object: %v\n%s", args, err, out)
		}
		for _, key := range []string{"loss", "trace_hessian", "trace_hessian_manifold", "grad_norm", "trace_min", "theory_gap", "riemannian_grad_norm"} {
			a, b := got[key].(float64), final[key].(float64)
			if math.Abs(a-b) > 1e-12*math.Abs(b) {
				t.Errorf("%v: %s = %v, the run's final %v", args, key, a, b)
			}
		}
		sv, want := got["singular_values_Z"].([]any), final["singular_values_Z"].([]any)
		for i := range want {
			if math.Abs(sv[i].(float64)-want[i].(float64)) > 1e-12*want[0].(float64) {
				t.Errorf("%v: singular value %d = %v, run %v", args, i, sv[i], want[i])
			}
		}
		if ev, ok := got["top_eigenvalue"].(float64); !ok || !(ev > 0) {
			t.Errorf("%v: top_eigenvalue %v", args, got["top_eigenvalue"])
		}
		if got["hutchinson"] != nil {
			t.Errorf("hutchinson without --probes: %v", got["hutchinson"])
		}
	}
	out, _, status := flatmin(t, "inspect", "--run", dir, "--probes", "64")
	var got map[string]any
	if status != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("inspect --probes: status %d\n%s", status, out)
	}
	h := got["hutchinson"].(map[string]any)
	if h["probes"].(float64) != 64 || h["stderr"].(float64) <= 0 {
		t.Errorf("hutchinson %v", h)
	}
	if est, tr := h["estimate"].(float64), got["trace_hessian"].(float64); math.Abs(est-tr) > 5*h["stderr"].(float64) {
		t.Errorf("Hutchinson %v ± %v is far from the exact trace %v", est, h["stderr"], tr)
	}
	// --graphs: the compiled graphs instead of the host, the same probes and estimate.
	out, _, status = flatmin(t, "inspect", "--run", dir, "--probes", "64", "--graphs")
	var graphs map[string]any
	if status != 0 || json.Unmarshal([]byte(out), &graphs) != nil {
		t.Fatalf("inspect --probes --graphs: status %d\n%s", status, out)
	}
	g := graphs["hutchinson"].(map[string]any)
	for _, k := range []string{"estimate", "stderr"} {
		if a, b := h[k].(float64), g[k].(float64); math.Abs(a-b) > 1e-12*math.Abs(h["estimate"].(float64)) {
			t.Errorf("Hutchinson %s %v, with --graphs %v", k, a, b)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Bad input: exit status 2, one line naming the problem, no panic trace.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	out := func() string { return filepath.Join(t.TempDir(), "run") }
	good := writeFile(t, dir, "good.csv", "0.1,0.2,1\n0.3,0.5,2\n")
	nan := writeFile(t, dir, "nan.csv", "0.1,0.2,1\n0.3,NaN,2\n")
	zero := writeFile(t, dir, "zero.csv", "0.1,0.2,1\n0,0,2\n")
	ragged := writeFile(t, dir, "ragged.csv", "0.1,0.2,1\n0.3,2\n")
	file := writeFile(t, dir, "plainfile", "x")
	x3, _ := npy.Encode([]float64{1, 0, 0, 0, 1, 0}, 2, 3)
	os.WriteFile(filepath.Join(dir, "x.npy"), x3, 0o644)
	y2, _ := npy.Encode([]float64{1, 2}, 2)
	os.WriteFile(filepath.Join(dir, "y.npy"), y2, 0o644)
	y3, _ := npy.Encode([]float64{1, 2, 3}, 3)
	os.WriteFile(filepath.Join(dir, "y3.npy"), y3, 0o644)
	th, _ := npy.Encode(make([]float64, 8), 4, 2)
	os.WriteFile(filepath.Join(dir, "theta.npy"), th, 0o644)
	existing := filepath.Join(t.TempDir(), "run")
	if _, _, s := flatmin(t, "train", "--steps", "5", "--out", existing); s != 0 {
		t.Fatal("could not make a run to collide with")
	}
	cases := []struct {
		name string
		args []string
		want string // a word the message must contain
	}{
		{"unknown trainer", []string{"train", "--trainer", "adam"}, "adam"},
		{"unknown activation", []string{"train", "--activation", "relu"}, "relu"},
		{"unknown backend", []string{"train", "--backend", "tpu"}, "tpu"},
		{"zero neurons", []string{"train", "--m", "0", "--steps", "1"}, ""},
		{"negative n", []string{"train", "--n", "-3"}, "positive"},
		{"zero steps", []string{"train", "--steps", "0"}, "--steps"},
		{"negative steps", []string{"train", "--steps", "-5"}, "--steps"},
		{"zero eta", []string{"train", "--eta", "0"}, "--eta"},
		{"negative sigma", []string{"train", "--sigma", "-1"}, "--sigma"},
		{"zero log-every", []string{"train", "--log-every", "0"}, "--log-every"},
		{"bad labels", []string{"train", "--labels", "uniform:2,1"}, "labels"},
		{"unknown flag", []string{"train", "--lr", "0.1"}, "lr"},
		{"stray argument", []string{"train", "oops"}, "oops"},
		{"missing npy", []string{"train", "--x", filepath.Join(dir, "none.npy"), "--y", filepath.Join(dir, "y.npy")}, "none.npy"},
		{"x without y", []string{"train", "--x", filepath.Join(dir, "x.npy")}, "--y"},
		{"label count", []string{"train", "--x", filepath.Join(dir, "x.npy"), "--y", filepath.Join(dir, "y3.npy")}, "labels"},
		{"d mismatch", []string{"train", "--x", filepath.Join(dir, "x.npy"), "--y", filepath.Join(dir, "y.npy"), "--d", "4"}, "--d"},
		{"NaN in data", []string{"train", "--data", nan}, "NaN"},
		{"zero row", []string{"train", "--data", zero}, "row 1"},
		{"ragged csv", []string{"train", "--data", ragged}, "columns"},
		{"npy as csv and npy", []string{"train", "--data", good, "--x", filepath.Join(dir, "x.npy")}, "either"},
		{"theta0 shape", []string{"train", "--theta0", filepath.Join(dir, "theta.npy"), "--m", "10"}, "--theta0"},
		{"out under a file", []string{"train", "--steps", "5", "--out", filepath.Join(file, "run")}, "--out"},
		{"existing run", []string{"train", "--steps", "5", "--out", existing}, "already"},
		{"inspect without theta", []string{"inspect"}, "--theta"},
		{"inspect wrong shape", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--m", "10"}, "--m"},
		{"inspect negative probes", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--probes", "-1"}, "--probes"},
		{"inspect zero top-k", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--top-k", "0"}, "--top-k"},
		{"inspect top-k above m·d", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--top-k", "9"}, "--top-k"},
		{"inspect zero density probes", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--density", "--density-probes", "0"}, "--density-probes"},
		{"inspect zero lanczos steps", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--density", "--lanczos-steps", "0"}, "--lanczos-steps"},
		{"inspect zero width", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--density", "--density-sigma", "0"}, "--density-sigma"},
		{"inspect negative width", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--density-sigma=-1"}, "--density-sigma"},
		{"inspect unknown estimator", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--probes", "4", "--trace-estimator", "hutch"}, "--trace-estimator"},
		{"inspect hutchpp too few probes", []string{"inspect", "--theta", filepath.Join(dir, "theta.npy"), "--probes", "2", "--trace-estimator", "hutchpp"}, "--probes"},
		{"unknown command", []string{"fly"}, "fly"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if args[0] == "train" && !slices.Contains(args, "--out") {
				args = append(args, "--out", out())
			}
			stdout, stderr, status := flatmin(t, args...)
			if status != 2 {
				t.Errorf("status %d, want 2 (stdout %q, stderr %q)", status, stdout, stderr)
			}
			if strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || stderr == "" {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("panic trace: %s", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("message %q does not mention %q", stderr, c.want)
			}
		})
	}
}

func TestDivergenceKeepsMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	_, stderr, status := flatmin(t, "train", "--trainer", "gd", "--eta", "2", "--labels", "uniform:5,10", "--steps", "1000", "--log-every", "1", "--out", dir)
	if status != 1 || !strings.Contains(stderr, "diverged at step") || !strings.Contains(stderr, "--eta") {
		t.Fatalf("status %d, stderr %q", status, stderr)
	}
	_, rows, err := runio.ReadCSVLog(filepath.Join(dir, "metrics.csv"))
	if err != nil || len(rows) < 2 {
		t.Fatalf("metrics kept: %d rows, %v", len(rows), err)
	}
	if sum := readJSON(t, filepath.Join(dir, "summary.json")); sum["diverged"] != true {
		t.Errorf("summary diverged = %v", sum["diverged"])
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{}, {"help"}, {"train", "--help"}, {"inspect", "--help"}, {"version"}} {
		stdout, stderr, status := flatmin(t, args...)
		if status != 0 || stdout == "" || stderr != "" {
			t.Errorf("%v: status %d, stdout %q, stderr %q", args, status, stdout, stderr)
		}
	}
	stdout, _, _ := flatmin(t, "train", "--help")
	for _, flag := range []string{"--trainer", "--m", "--eta", "--sigma", "--steps", "--seed", "--init-scale", "--theta0", "--w", "--x", "--data", "--log-every", "--backend", "--out"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("train --help lacks %s", flag)
		}
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// pureGoBinary builds flatmin once with CGO_ENABLED=0 and -tags noxla, the
// pure-Go build, for the tests that need a real process (signals, SIGKILL).
func pureGoBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flatmin-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "flatmin")
		build := exec.Command("go", "build", "-tags", "noxla", "-o", binPath, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("CGO_ENABLED=0 go build -tags noxla: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cliEnv makes the test binary act as flatmin (for `flatmin sweep`'s worker
// processes, which re-execute os.Executable()).
const cliEnv = "FLATMIN_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	benchInProcess = true
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// The pure-Go build: CGO_ENABLED=0 with -tags noxla must build and run.
func TestPureGoBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := pureGoBinary(t)
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, "train", "--steps", "200", "--out", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pure-Go binary: %v\n%s", err, out)
	}
	cmd = exec.Command(bin, "train", "--backend", "xla:cpu", "--out", filepath.Join(t.TempDir(), "x"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "noxla") {
		t.Errorf("xla in a noxla build: %v, %s", err, out)
	}
}

func writeNpy(t *testing.T, path string, values []float64, dims ...int) {
	data, err := npy.Encode(values, dims...)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// `flatmin train` with no flags (but --out) runs Figure 1a's setting to the
// end without diverging, and the label noise lowers σ2/σ1 of Z once the data
// is fitted.
func TestDefaultTrainRuns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, stderr, s := flatmin(t, "train", "--out", dir); s != 0 {
		t.Fatalf("status %d: %s", s, stderr)
	}
	sum := readJSON(t, filepath.Join(dir, "summary.json"))
	cfg := sum["config"].(map[string]any)
	for key, want := range map[string]float64{"m": 10, "n": 3, "d": 3, "sigma": 0.03} {
		if cfg[key].(float64) != want {
			t.Errorf("default %s = %v, the paper's Figure 1a has %v", key, cfg[key], want)
		}
	}
	// η and the initial scale are chosen, and say by which rule.
	for _, key := range []string{"eta", "init_scale"} {
		if v, rule := cfg[key].(float64), cfg[key+"_rule"]; !(v > 0) || !strings.HasPrefix(fmt.Sprint(rule), "auto: ") {
			t.Errorf("default %s = %v by rule %q: want a positive value chosen automatically", key, v, rule)
		}
	}
	if sum["diverged"] != false || sum["steps"].(float64) != 1e6 {
		t.Fatalf("diverged %v after %v steps", sum["diverged"], sum["steps"])
	}
	header, rows, err := runio.ReadCSVLog(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	ratio := func(r []string) float64 {
		var s1, s2 float64
		fmt.Sscan(r[slices.Index(header, "sv_z_1")], &s1)
		fmt.Sscan(r[slices.Index(header, "sv_z_2")], &s2)
		return s2 / s1
	}
	fitted, last := rows[len(rows)/10], rows[len(rows)-1]
	if !(ratio(last) < ratio(fitted)) {
		t.Errorf("σ2/σ1 of Z went from %g (step %s) to %g: no move toward rank one", ratio(fitted), fitted[0], ratio(last))
	}
}
