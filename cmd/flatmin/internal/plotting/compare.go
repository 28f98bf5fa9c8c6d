package plotting

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"gonum.org/v1/plot"
)

// compareFile is the comparison's table (runner.CompareFile).
const compareFile = "compare.json"

// compareRow is what plotting needs of a compare.json row.
type compareRow struct {
	Trainer string `json:"trainer"`
	Dir     string `json:"dir"`
}

// comparedRun is one trainer's metrics.
type comparedRun struct {
	trainer string
	t       *table
}

// PlotCompare renders a comparison directory's overlay figures into it, one
// curve per trainer: compare_trace_ratio, compare_theory_gap,
// compare_sigma_ratio and compare_loss, each as PNG and SVG. A figure with
// nothing to draw (e.g. no trainer has F*) is skipped.
func PlotCompare(dir string) ([]string, error) {
	runs, err := readComparison(dir)
	if err != nil {
		return nil, err
	}
	figures := []struct {
		name string
		f    *lineFigure
	}{
		{"compare_trace_ratio", compareFigure(runs, "Tr D²L / F* by trainer (1 is the optimum)", "Tr D²L / F* (log scale)", traceRatio)},
		{"compare_theory_gap", compareFigure(runs, "theory gap max_ij |z_ij − φ^-1(y_i/m)| by trainer", "theory gap (log scale)", column("theory_gap"))},
		{"compare_sigma_ratio", compareFigure(runs, "σ2(Z) / σ1(Z) by trainer (0 is rank one)", "σ2/σ1 of Z (log scale)", sigmaRatio)},
		{"compare_loss", compareFigure(runs, "training loss by trainer", "loss (log scale)", column("loss"))},
		{"compare_lambda_max", compareFigure(runs, "sharpness λ_max(D²L) by trainer (--track-sharpness)", "λ_max (log scale)", column("lambda_max"))},
	}
	figures[0].f.refs = []hline{{label: "optimum", y: 1}}
	var written []string
	for _, fig := range figures {
		paths, err := emit(dir, fig.name, func() (*plot.Plot, error) { return fig.f.build() })
		written = append(written, paths...)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// readComparison reads compare.json and each trainer's metrics.csv.
func readComparison(dir string) ([]comparedRun, error) {
	path := filepath.Join(dir, compareFile)
	data, err := runio.ReadFile(path)
	if err != nil {
		return nil, badInput(err)
	}
	var rows []compareRow
	if err := json.Unmarshal(data, &rows); err != nil {
		return nil, badInput(fmt.Errorf("%s: %w", path, err))
	}
	if len(rows) == 0 {
		return nil, badInput(fmt.Errorf("%s: no trainers", path))
	}
	var runs []comparedRun
	for i, row := range rows {
		if row.Trainer == "" {
			return nil, badInput(fmt.Errorf("%s: row %d has no trainer", path, i+1))
		}
		t, err := readMetrics(runDir(dir, row))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", row.Trainer, err)
		}
		runs = append(runs, comparedRun{trainer: row.Trainer, t: t})
	}
	return runs, nil
}

// runDir finds a trainer's run: dir/<trainer> (where compare writes it, and
// still right after the comparison is moved), else the row's "dir" as given.
func runDir(dir string, row compareRow) string {
	local := filepath.Join(dir, filepath.Base(row.Trainer))
	if _, err := os.Stat(filepath.Join(local, metricsFile)); err == nil || row.Dir == "" {
		return local
	}
	if _, err := os.Stat(row.Dir); errors.Is(err, os.ErrNotExist) {
		return local // report the expected place, not a stale path
	}
	return row.Dir
}

// compareFigure draws metric(run) for every run on a log axis, each in its
// own colour and dash pattern so that coinciding curves stay visible.
func compareFigure(runs []comparedRun, title, ylabel string, metric func(*table) []float64) *lineFigure {
	f := &lineFigure{title: title, ylabel: ylabel, logY: true}
	for i, r := range runs {
		f.lines = append(f.lines, series{label: r.trainer, xs: r.t.steps(), ys: metric(r.t), colour: i, dashes: i})
	}
	return f
}

func column(name string) func(*table) []float64 {
	return func(t *table) []float64 { return t.col(name) }
}

// traceRatio is trace_hessian_manifold / trace_min per row (NaN without F*).
func traceRatio(t *table) []float64 {
	return ratio(t.col("trace_hessian_manifold"), t.col("trace_min"))
}

// sigmaRatio is σ2/σ1 of Z per row: how far Z is from rank one.
func sigmaRatio(t *table) []float64 {
	return ratio(t.col("sv_z_2"), t.col("sv_z_1"))
}

// ratio divides elementwise; a missing column gives nil (nothing to draw).
func ratio(num, den []float64) []float64 {
	if num == nil || den == nil {
		return nil
	}
	out := make([]float64, min(len(num), len(den)))
	for i := range out {
		out[i] = num[i] / den[i]
	}
	return out
}
