package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/model"
)

// The z_ij the Riemannian flow converges to on Figure 1a's data are the ones
// `flatmin theory` predicts.
func TestTheoryAgreesWithRiemannian(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, stderr, s := flatmin(t, "train", "--trainer", "riemannian", "--nu", "0.5", "--steps", "4000", "--log-every", "4000", "--out", dir); s != 0 {
		t.Fatal(stderr)
	}
	stdout, stderr, s := flatmin(t, "theory", "--nu", "0.5", "--json")
	if s != 0 {
		t.Fatal(stderr)
	}
	var th runner.TheoryReport
	if err := json.Unmarshal([]byte(stdout), &th); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !th.Assumption1 || !th.Assumption2 || !th.Assumption3 || len(th.Points) != 3 {
		t.Fatalf("Figure 1a with ν=0.5 satisfies the assumptions: %+v", th)
	}
	x, n, d, err := model.ReadMatrix(filepath.Join(dir, "x.npy"), "x")
	if err != nil {
		t.Fatal(err)
	}
	theta, m, _, err := model.ReadMatrix(filepath.Join(dir, "theta.npy"), "theta")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for j := range m {
			z := 0.0
			for c := range d {
				z += x[i*d+c] * theta[j*d+c]
			}
			if want := float64(th.Points[i].ZStar); math.Abs(z-want) > 1e-8 {
				t.Errorf("z_%d%d = %.12g, theory φ⁻¹(y_i/m) = %.12g", i, j, z, want)
			}
		}
	}
	sum := readJSON(t, filepath.Join(dir, "summary.json"))
	final := sum["final"].(map[string]any)
	if tm := final["trace_min"].(float64); math.Abs(tm-float64(th.TraceMin)) > 1e-12*tm {
		t.Errorf("trace_min %v, theory's F* %v", tm, th.TraceMin)
	}
}

func TestTheoryReportsWhatFails(t *testing.T) {
	out := func(args ...string) runner.TheoryReport {
		stdout, stderr, s := flatmin(t, append([]string{"theory", "--json"}, args...)...)
		if s != 0 {
			t.Fatalf("%v: %s", args, stderr)
		}
		var r runner.TheoryReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := out("--n", "6", "--d", "5", "--nu", "0.2"); r.Assumption2 || !strings.Contains(strings.Join(r.Why, " "), "n = 6 > d = 5") || r.Note == "" {
		t.Errorf("n > d: %+v", r)
	}
	if r := out("--nu", "0"); r.Assumption1 || r.Assumption3 || !math.IsNaN(float64(r.TimeBound)) {
		t.Errorf("the cube: %+v", r)
	}
	if r := out("--nu", "0.5"); !(float64(r.TimeBound) > 0) || !(float64(r.F0) > float64(r.TraceMin)) {
		t.Errorf("ν=0.5: time bound %v, F(0) %v, F* %v", r.TimeBound, r.F0, r.TraceMin)
	}
	dir := t.TempDir()
	writeNpy(t, filepath.Join(dir, "w.npy"), []float64{1, 2, 1, 1}, 4)
	if r := out("--w", filepath.Join(dir, "w.npy"), "--nu", "0.5"); r.Optimum == "defined" || !strings.Contains(r.Note, "φ''(Z)") {
		t.Errorf("general w: optimum %q, note %q", r.Optimum, r.Note)
	}
	var text bytes.Buffer
	if s := run([]string{"theory", "--nu", "0.1"}, &text, &text); s != 0 || !strings.Contains(text.String(), "F* =") || !strings.Contains(text.String(), "ϱ1") {
		t.Errorf("table output: %s", text.String())
	}
}

func TestCompareSameDataSameStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cmp")
	stdout, stderr, s := flatmin(t, "compare", "--trainers", "labelnoise,sam1,riemannian,penalty,gd", "--nu", "0.1",
		"--steps", "400", "--log-every", "200", "--param", "riemannian.steps=50", "--param", "sam1.rho=0.1", "--out", dir)
	if s != 0 {
		t.Fatalf("status %d: %s", s, stderr)
	}
	names := []string{"labelnoise", "sam1", "riemannian", "penalty", "gd"}
	ref := map[string][]byte{}
	for _, n := range names {
		if !strings.Contains(stdout, n) {
			t.Errorf("table lacks %s:\n%s", n, stdout)
		}
		for _, f := range []string{"theta0.npy", "x.npy", "y.npy"} {
			data, err := os.ReadFile(filepath.Join(dir, n, f))
			if err != nil {
				t.Fatal(err)
			}
			if ref[f] == nil {
				ref[f] = data
			} else if !bytes.Equal(ref[f], data) {
				t.Errorf("%s/%s differs from the first trainer's", n, f)
			}
		}
	}
	var rows []runner.CompareRow
	data, _ := os.ReadFile(filepath.Join(dir, "compare.json"))
	if err := json.Unmarshal(data, &rows); err != nil || len(rows) != 5 {
		t.Fatalf("compare.json: %v, %d rows", err, len(rows))
	}
	for _, r := range rows {
		want := int64(400)
		if r.Trainer == "riemannian" {
			want = 50
		}
		if r.Steps != want {
			t.Errorf("%s ran %d steps, want %d", r.Trainer, r.Steps, want)
		}
	}
	sam := readJSON(t, filepath.Join(dir, "sam1", "summary.json"))
	if rho := sam["config"].(map[string]any)["rho"].(float64); rho != 0.1 {
		t.Errorf("sam1 ran with ρ = %v, want the --param 0.1", rho)
	}
}

func TestTrainerBadInput(t *testing.T) {
	dir := t.TempDir()
	dup := writeFile(t, dir, "dup.csv", "0.2,0.4,0.1,1\n0.2,0.4,0.1,1\n0.5,0.1,0.3,2\n")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"rho zero", []string{"train", "--trainer", "sam1", "--rho", "0"}, "--rho"},
		{"rho negative", []string{"train", "--trainer", "sam1", "--rho", "-1"}, "--rho"},
		{"sam batch", []string{"train", "--trainer", "sam1", "--sam-batch", "0"}, "--sam-batch"},
		{"sam rho zero", []string{"train", "--trainer", "sam", "--rho", "0"}, "--rho"},
		{"sam rho NaN", []string{"train", "--trainer", "sam", "--rho", "NaN"}, "--rho"},
		{"compare sam param", []string{"compare", "--trainers", "gd,sam", "--param", "sam.rho=-1"}, "--rho"},
		{"eta zero", []string{"train", "--trainer", "riemannian", "--eta", "0"}, "--eta"},
		{"eta negative", []string{"train", "--trainer", "penalty", "--eta", "-0.1"}, "--eta"},
		{"lambda negative", []string{"train", "--trainer", "penalty", "--lambda", "-1"}, "--lambda"},
		{"singular JJT", []string{"train", "--trainer", "riemannian", "--data", dup, "--nu", "0.5"}, "singular"},
		{"vanishing phi'", []string{"train", "--trainer", "riemannian", "--nu", "-0.3"}, "φ'"},
		{"compare unknown trainer", []string{"compare", "--trainers", "gd,adam"}, "adam"},
		{"compare twice", []string{"compare", "--trainers", "gd,gd"}, "twice"},
		{"compare param not listed", []string{"compare", "--trainers", "gd", "--param", "sam1.rho=1"}, "sam1"},
		{"compare param key", []string{"compare", "--trainers", "gd", "--param", "gd.momentum=1"}, "momentum"},
		{"compare param syntax", []string{"compare", "--trainers", "gd", "--param", "eta=1"}, "trainer.key=value"},
		{"theory eps", []string{"theory", "--eps", "0"}, "--eps"},
		{"unknown engine", []string{"train", "--engine", "sparse"}, "--engine"},
		{"fuse negative", []string{"train", "--fuse", "-3"}, "--fuse"},
		{"fuse too large", []string{"train", "--fuse", "5000"}, "--fuse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := c.args
			if args[0] != "theory" {
				args = append(args, "--steps", "20", "--out", out)
			}
			_, stderr, status := flatmin(t, args...)
			if status != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, c.want) {
				t.Errorf("status %d, stderr %q (want exit 2 and a line with %q)", status, stderr, c.want)
			}
			if args[0] == "compare" {
				if _, err := os.Stat(out); err == nil {
					t.Errorf("a refused comparison created %s", out)
				}
			}
		})
	}
}

// `flatmin train --trainer sam` at the default flags (η, ρ and the initial
// scale auto) fits the data at two widths, and `compare` runs it beside 1-SAM
// with its own --param sam.rho.
func TestSAMFromTheCommandLine(t *testing.T) {
	stdout, _, _ := flatmin(t, "train", "--help")
	if !strings.Contains(stdout, "riemannian, sam, sam1") {
		t.Errorf("train --help does not list sam:\n%s", stdout)
	}
	for _, m := range []string{"10", "64"} {
		dir := filepath.Join(t.TempDir(), "run")
		if _, stderr, s := flatmin(t, "train", "--trainer", "sam", "--m", m, "--steps", "2000", "--log-every", "1000", "--out", dir, "--quiet"); s != 0 {
			t.Fatalf("m=%s: status %d: %s", m, s, stderr)
		}
		sum := readJSON(t, filepath.Join(dir, "summary.json"))
		cfg := sum["config"].(map[string]any)
		if !strings.HasPrefix(cfg["rho_rule"].(string), "auto: ") || !strings.HasPrefix(cfg["eta_rule"].(string), "auto: ") {
			t.Errorf("m=%s: ρ by %q, η by %q: want both chosen automatically", m, cfg["rho_rule"], cfg["eta_rule"])
		}
		_, rows, err := runio.ReadCSVLog(filepath.Join(dir, "metrics.csv"))
		if err != nil {
			t.Fatal(err)
		}
		var first, last float64
		fmt.Sscan(rows[0][1], &first)
		fmt.Sscan(rows[len(rows)-1][1], &last)
		if sum["diverged"] != false || !(last < 1e-3*first) {
			t.Errorf("m=%s: loss %g → %g (diverged %v)", m, first, last, sum["diverged"])
		}
	}
	dir := filepath.Join(t.TempDir(), "cmp")
	if _, stderr, s := flatmin(t, "compare", "--trainers", "sam1,sam", "--steps", "200", "--log-every", "100",
		"--param", "sam.rho=0.02", "--out", dir); s != 0 {
		t.Fatalf("compare: status %d: %s", s, stderr)
	}
	for trainer, want := range map[string]float64{"sam": 0.02} {
		cfg := readJSON(t, filepath.Join(dir, trainer, "summary.json"))["config"].(map[string]any)
		if cfg["rho"].(float64) != want || cfg["trainer"] != trainer {
			t.Errorf("%s ran as %v with ρ = %v, want ρ = %v", trainer, cfg["trainer"], cfg["rho"], want)
		}
	}
}
