package plotting

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bruteQuantile is the type-7 quantile read off its definition: the
// piecewise-linear curve through the points (k/(N−1), x_(k)), evaluated at p.
func bruteQuantile(values []float64, p float64) float64 {
	x := append([]float64(nil), values...)
	slices.Sort(x)
	if len(x) == 1 {
		return x[0]
	}
	n := float64(len(x) - 1)
	for k := 0; k+1 < len(x); k++ {
		a, b := float64(k)/n, float64(k+1)/n
		if p >= a && p <= b {
			return x[k] + (p-a)/(b-a)*(x[k+1]-x[k])
		}
	}
	return x[len(x)-1]
}

// bruteValueAt is a run's value at step s by scanning all its rows: the
// latest finite value logged at or before s, if the run has a finite value
// at s or later (else it has stopped).
func bruteValueAt(r runSeries, s float64) (float64, bool) {
	bestStep, value, lastStep := math.Inf(-1), math.NaN(), math.Inf(-1)
	for i := range r.steps {
		if !finite(r.values[i]) || !finite(r.steps[i]) {
			continue
		}
		lastStep = math.Max(lastStep, r.steps[i])
		if r.steps[i] <= s && r.steps[i] >= bestStep {
			bestStep, value = r.steps[i], r.values[i]
		}
	}
	return value, finite(bestStep) && s <= lastStep
}

func TestAggregateMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 30 {
		var runs []runSeries
		for range 1 + rng.IntN(6) {
			var r runSeries
			every := float64(1 + rng.IntN(4))
			start, stop := rng.IntN(3), 3+rng.IntN(12)
			for k := start; k < stop; k++ {
				v := rng.ExpFloat64()
				if rng.IntN(8) == 0 {
					v = math.NaN()
				}
				r.steps, r.values = append(r.steps, every*float64(k)), append(r.values, v)
			}
			runs = append(runs, r)
		}
		got := aggregate(runs)
		var union []float64
		for _, r := range runs {
			for i, s := range r.steps {
				if finite(r.values[i]) && !slices.Contains(union, s) {
					union = append(union, s)
				}
			}
		}
		slices.Sort(union)
		if len(got) != len(union) {
			t.Fatalf("trial %d: %d points, union of steps has %d", trial, len(got), len(union))
		}
		for i, s := range union {
			var vals []float64
			for _, r := range runs {
				if v, ok := bruteValueAt(r, s); ok {
					vals = append(vals, v)
				}
			}
			g := got[i]
			if g.step != s || g.runs != len(vals) {
				t.Fatalf("trial %d: point %d at step %g with %d runs, want step %g with %d", trial, i, g.step, g.runs, s, len(vals))
			}
			for _, q := range []struct {
				p, got float64
			}{{0.5, g.median}, {0.25, g.q1}, {0.75, g.q3}} {
				if want := bruteQuantile(vals, q.p); math.Abs(q.got-want) > 1e-12*math.Abs(want) {
					t.Errorf("trial %d step %g: quantile %g = %g, brute force %g (values %v)", trial, s, q.p, q.got, want, vals)
				}
			}
		}
	}
}

// writeSweepRun writes a run directory logging every `every` steps up to
// `stop`, with the sweep's columns.
func writeSweepRun(t *testing.T, dir string, every, stop int, scale float64) {
	var b strings.Builder
	b.WriteString("step,loss,trace_hessian_manifold,trace_min,theory_gap,sv_z_1,sv_z_2\n")
	for s := 0; s <= stop; s += every {
		decay := math.Exp(-float64(s) / 500)
		fmt.Fprintf(&b, "%d,%g,%g,%g,%g,%g,%g\n", s, scale*decay, 2+scale*decay, 2.0, scale*decay, 1.0, 0.01+scale*decay)
	}
	mustWrite(t, filepath.Join(dir, "metrics.csv"), b.String())
}

func TestSweepFiguresWritesEveryFigure(t *testing.T) {
	root := t.TempDir()
	var groups []RunGroup
	for g, name := range []string{"gd", "sam"} {
		grp := RunGroup{Label: name}
		for seed := range 3 {
			dir := filepath.Join(root, fmt.Sprintf("%s-%d", name, seed))
			if err := mkdir(dir); err != nil {
				t.Fatal(err)
			}
			// different cadences and lengths within a group
			writeSweepRun(t, dir, 100*(seed+1), 2000-300*seed, float64(1+g+seed))
			grp.Dirs = append(grp.Dirs, dir)
		}
		groups = append(groups, grp)
	}
	for _, logSteps := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "figs") // not there yet
		paths, err := SweepFigures(out, groups, logSteps)
		if err != nil {
			t.Fatal(err)
		}
		checkFigures(t, out, paths, "sweep_sigma_ratio", "sweep_trace_ratio", "sweep_theory_gap", "sweep_loss")
	}
	if _, err := SweepFigures(t.TempDir(), nil, false); err == nil {
		t.Error("no groups accepted")
	}
	if _, err := SweepFigures(t.TempDir(), []RunGroup{{Label: "x", Dirs: []string{filepath.Join(root, "absent")}}}, false); err == nil {
		t.Error("a missing run directory accepted")
	}
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o755) }
