package plotting

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/stats"

	"gonum.org/v1/plot"
)

// RunGroup is the runs of one trainer and setting, over seeds.
type RunGroup struct {
	Label string   // legend entry, e.g. "sam1 ρ=0.05"
	Dirs  []string // run directories (each with metrics.csv)
}

// SweepFigures draws, per metric, the median over each group's runs with an
// interquartile band over steps, into outDir (PNG + SVG, as every figure),
// (created if need be) and returns the files written. The metrics are σ2/σ1 of Z
// (sweep_sigma_ratio), Tr D²L on the manifold / F* (sweep_trace_ratio), the
// theory gap (sweep_theory_gap) and the loss (sweep_loss), all on log y
// axes; a metric no run has is skipped. logSteps puts the steps on a log
// axis too, where step 0 has no place and is left out (the axis label says
// so).
//
// Alignment: the runs of a group may log at different steps and stop at
// different steps. The group's curve is drawn at the union of its runs'
// logged steps; at each such step s, a run that has logged a finite value at
// or before s and has not stopped (s ≤ its last finite value's step) counts
// with its latest value (carried forward, not interpolated); a run that has
// stopped is dropped, not carried. Non-finite values (NaN, ±Inf) are not
// values: a run counts at s only through a finite one. The legend gives the
// number of runs, and how many still count at the group's last step when
// fewer do. Median and quartiles interpolate linearly between order
// statistics (type 7, numpy's default).
func SweepFigures(outDir string, groups []RunGroup, logSteps bool) ([]string, error) {
	if len(groups) == 0 {
		return nil, badInput(errors.New("sweep figures: no groups"))
	}
	tables := make([][]*table, len(groups))
	for g, grp := range groups {
		if len(grp.Dirs) == 0 {
			return nil, badInput(fmt.Errorf("sweep figures: group %q has no runs", grp.Label))
		}
		for _, dir := range grp.Dirs {
			t, err := readMetrics(dir)
			if err != nil {
				return nil, fmt.Errorf("group %q: %w", grp.Label, err)
			}
			tables[g] = append(tables[g], t)
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	xlabel := "step"
	if logSteps {
		xlabel = "step (log scale; step 0 not shown)"
	}
	metrics := []struct {
		name, title, ylabel string
		metric              func(*table) []float64
		ref                 *hline
	}{
		{"sweep_sigma_ratio", "σ2(Z) / σ1(Z) (0 is rank one)", "σ2/σ1 of Z (log scale)", sigmaRatio, nil},
		{"sweep_trace_ratio", "Tr D²L / F* (1 is the optimum)", "Tr D²L / F* (log scale)", traceRatio, &hline{label: "optimum", y: 1}},
		{"sweep_theory_gap", "theory gap max_ij |z_ij − φ^-1(y_i/m)|", "theory gap (log scale)", column("theory_gap"), nil},
		{"sweep_loss", "training loss", "loss (log scale)", column("loss"), nil},
	}
	var written []string
	for _, mt := range metrics {
		f := &lineFigure{
			title:  mt.title + ": median over seeds, interquartile band",
			ylabel: mt.ylabel, xlabel: xlabel, logX: logSteps, logY: true,
		}
		if mt.ref != nil {
			f.refs = []hline{*mt.ref}
		}
		for g, grp := range groups {
			var runs []runSeries
			for _, t := range tables[g] {
				runs = append(runs, runSeries{steps: t.steps(), values: mt.metric(t)})
			}
			agg := aggregate(runs)
			if len(agg) == 0 {
				continue
			}
			xs := make([]float64, len(agg))
			med, q1, q3 := make([]float64, len(agg)), make([]float64, len(agg)), make([]float64, len(agg))
			for i, a := range agg {
				xs[i], med[i], q1[i], q3[i] = a.step, a.median, a.q1, a.q3
			}
			label := fmt.Sprintf("%s: %d runs", grp.Label, len(runs))
			if last := agg[len(agg)-1]; last.runs < len(runs) {
				label += fmt.Sprintf(" (%d at step %s)", last.runs, strconv.FormatFloat(last.step, 'g', -1, 64))
			}
			f.lines = append(f.lines, series{label: label, xs: xs, ys: med, colour: g, dashes: g})
			f.bands = append(f.bands, band{xs: xs, lo: q1, hi: q3, colour: g})
		}
		paths, err := emit(outDir, mt.name, func() (*plot.Plot, error) { return f.build() })
		written = append(written, paths...)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// runSeries is one run's metric against its logged steps.
type runSeries struct{ steps, values []float64 }

// bandPoint is a group's statistics at one step over the runs counting there.
type bandPoint struct {
	step, median, q1, q3 float64
	runs                 int
}

// aggregate aligns runs as SweepFigures describes and returns the median and
// quartiles at each step of the union, in step order.
func aggregate(runs []runSeries) []bandPoint {
	type obs struct{ step, value float64 }
	clean := make([][]obs, len(runs))
	var union []float64
	for r, run := range runs {
		for i := range min(len(run.steps), len(run.values)) {
			s, v := run.steps[i], run.values[i]
			if finite(s) && finite(v) {
				clean[r] = append(clean[r], obs{s, v})
				union = append(union, s)
			}
		}
		slices.SortStableFunc(clean[r], func(a, b obs) int {
			switch {
			case a.step < b.step:
				return -1
			case a.step > b.step:
				return 1
			}
			return 0
		})
	}
	slices.Sort(union)
	union = slices.Compact(union)
	out := make([]bandPoint, 0, len(union))
	next := make([]int, len(runs)) // per run, its first observation after the step
	vals := make([]float64, 0, len(runs))
	for _, s := range union {
		vals = vals[:0]
		for r, c := range clean {
			for next[r] < len(c) && c[next[r]].step <= s {
				next[r]++
			}
			if next[r] == 0 || s > c[len(c)-1].step {
				continue // not started or stopped
			}
			vals = append(vals, c[next[r]-1].value)
		}
		if len(vals) == 0 {
			continue
		}
		slices.Sort(vals)
		out = append(out, bandPoint{step: s, median: stats.QuantileSorted(vals, 0.5), q1: stats.QuantileSorted(vals, 0.25), q3: stats.QuantileSorted(vals, 0.75), runs: len(vals)})
	}
	return out
}
