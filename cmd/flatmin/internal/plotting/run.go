package plotting

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"

	"gonum.org/v1/plot"
)

// PlotRun renders a run directory's figures into it: singular_values, trace,
// theory_gap (unless the run has no theory gap) and neurons (when
// dir/snapshots holds z_<step>.npy files), each as PNG and SVG. It returns the
// paths written, also when a later figure fails.
func PlotRun(dir string) ([]string, error) {
	t, err := readMetrics(dir)
	if err != nil {
		return nil, err
	}
	prefix := ""
	if name := trainerName(dir); name != "" {
		prefix = name + ": "
	}
	figures := []struct {
		name  string
		build func() (*plot.Plot, error)
	}{
		{"singular_values", singularValuesFigure(t, prefix).build},
		{"trace", traceFigure(t, prefix).build},
		{"theory_gap", theoryGapFigure(t, prefix).build},
		{"neurons", func() (*plot.Plot, error) { return neuronsFigure(dir, prefix) }},
		{"sharpness", sharpnessFigure(t, prefix, configEta(dir)).build},
	}
	var written []string
	for _, f := range figures {
		paths, err := emit(dir, f.name, f.build)
		written = append(written, paths...)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// maxSingularLines is how many singular values of Z (and of Θ) the figure
// draws: the top ones, each in its own colour. Thirty lines in a palette of
// seven repeat colours and cannot be told apart, and rank collapse shows in
// the top few.
const maxSingularLines = 5

// singularValuesFigure is the paper's Figure 1a / Figure 2: σ_k(Z) solid and
// σ_k(Θ) dashed in the same colour, on a log axis where rank collapse shows;
// the top maxSingularLines of each.
func singularValuesFigure(t *table, prefix string) *lineFigure {
	z, th := t.numbered("sv_z_"), t.numbered("sv_theta_")
	title := prefix + "singular values of Z = XΘᵀ (solid) and of Θ (dashed)"
	if len(z) > maxSingularLines || len(th) > maxSingularLines {
		title += fmt.Sprintf(", top %d of %d and %d", maxSingularLines, len(z), len(th))
	}
	f := &lineFigure{title: title, ylabel: "singular value (log scale)", logY: true}
	for k, ys := range z[:min(len(z), maxSingularLines)] {
		f.lines = append(f.lines, series{label: fmt.Sprintf("σ%d(Z)", k+1), xs: t.steps(), ys: ys, colour: k})
	}
	for k, ys := range th[:min(len(th), maxSingularLines)] {
		f.lines = append(f.lines, series{label: fmt.Sprintf("σ%d(Θ)", k+1), xs: t.steps(), ys: ys, colour: k, dashes: 1})
	}
	return f
}

// traceFigure shows Tr D²L on the manifold approaching its minimum F*; a log
// axis keeps both the early large values and the approach to F* readable.
func traceFigure(t *table, prefix string) *lineFigure {
	f := &lineFigure{
		title:  prefix + "Tr D²L on the manifold (2Σ‖Df_i‖²) and its minimum F*",
		ylabel: "trace (log scale)",
		logY:   true,
		lines:  []series{{label: "Tr D²L", xs: t.steps(), ys: t.col("trace_hessian_manifold")}},
	}
	if fstar := lastFinite(t.col("trace_min")); finite(fstar) {
		f.refs = []hline{{label: fmt.Sprintf("F* = %.4g", fstar), y: fstar}}
	}
	return f
}

// theoryGapFigure shows max_ij |z_ij − φ⁻¹(y_i/m)|, the distance to the
// predicted optimum; the figure is skipped when the column is all NaN.
// Titles write φ^-1: gonum/plot's default font has no superscript minus.
func theoryGapFigure(t *table, prefix string) *lineFigure {
	return &lineFigure{
		title:  prefix + "theory gap max_ij |z_ij − φ^-1(y_i/m)|",
		ylabel: "theory gap (log scale)",
		logY:   true,
		lines:  []series{{label: "theory gap", xs: t.steps(), ys: t.col("theory_gap")}},
	}
}

// sharpnessFigure shows λ_max of D²L (logged with --track-sharpness) against
// the stability bound 2/η of a gradient step (the edge of stability), beside
// Tr D²L. The bound is drawn for trainers that step on L with a fixed η
// (configEta); without a lambda_max column the figure is skipped.
func sharpnessFigure(t *table, prefix string, eta float64) *lineFigure {
	f := &lineFigure{
		title:  prefix + "sharpness λ_max(D²L), the stability bound 2/η, and Tr D²L",
		ylabel: "log scale",
		logY:   true,
	}
	lmax := t.col("lambda_max")
	if lmax == nil {
		return f
	}
	f.lines = append(f.lines, series{label: "λ_max", xs: t.steps(), ys: lmax},
		series{label: "Tr D²L", xs: t.steps(), ys: t.col("trace_hessian"), colour: 2, dashes: 2})
	if eta > 0 {
		f.refs = []hline{{label: fmt.Sprintf("2/η = %.4g", 2/eta), y: 2 / eta}}
	}
	return f
}

// configEta reads config.json's "eta"; 0 when it cannot be read, and for
// riemannian, whose η is a step on Tr D²L along the manifold, not on L.
func configEta(dir string) float64 {
	data, err := runio.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return 0
	}
	var c struct {
		Eta     float64 `json:"eta"`
		Trainer string  `json:"trainer"`
	}
	if json.Unmarshal(data, &c) != nil || c.Trainer == "riemannian" {
		return 0
	}
	return c.Eta
}

// lastFinite returns the last finite value of vs, NaN when there is none.
func lastFinite(vs []float64) float64 {
	for i := len(vs) - 1; i >= 0; i-- {
		if finite(vs[i]) {
			return vs[i]
		}
	}
	return math.NaN()
}
