package plotting

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// inspectReport is the part of `flatmin inspect --density` output the
// spectrum figure draws.
type inspectReport struct {
	TraceHessian   *float64  `json:"trace_hessian"`
	TopEigenvalue  *float64  `json:"top_eigenvalue"`
	TopEigenvalues []float64 `json:"top_eigenvalues"`
	Density        *struct {
		Grid      []float64 `json:"grid"`
		Density   []float64 `json:"density"`
		Probes    int       `json:"probes"`
		Steps     int       `json:"lanczos_steps"`
		Sigma     float64   `json:"sigma"`
		Dimension int       `json:"dimension"`
	} `json:"spectral_density"`
}

// densityFloor is how far below its peak the density's log axis reaches:
// the Gaussians' tails fall to 1e-300 and would squash the figure.
const densityFloor = 1e-8

// PlotSpectrum renders the spectral density in an inspect report (a JSON file
// from `flatmin inspect --density`) as <name>.png and <name>.svg beside it,
// <name> the file's name less ".json": the density on a log axis, with Tr D²L/N
// (its mean) and λ_max marked.
func PlotSpectrum(path string) ([]string, error) {
	data, err := runio.ReadFile(path)
	if err != nil {
		return nil, badInput(err)
	}
	var r inspectReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, badInput(fmt.Errorf("%s: %w", path, err))
	}
	d := r.Density
	if d == nil || len(d.Grid) < 2 || len(d.Grid) != len(d.Density) {
		return nil, badInput(fmt.Errorf("%s has no spectral_density (write it with flatmin inspect --density)", path))
	}
	name := strings.TrimSuffix(filepath.Base(path), ".json")
	return emit(filepath.Dir(path), name, func() (*plot.Plot, error) {
		title := fmt.Sprintf("spectral density of D²L (SLQ: %d probes, %d Lanczos steps, σ = %.3g)", d.Probes, d.Steps, d.Sigma)
		p := newPlot(title, "eigenvalue", "density (log scale)")
		peak := 0.0
		for _, v := range d.Density {
			peak = math.Max(peak, v)
		}
		if !(peak > 0) {
			return nil, errors.New("the density is zero everywhere")
		}
		floor := peak * densityFloor
		var xy plotter.XYs
		for i, v := range d.Density {
			xy = append(xy, plotter.XY{X: d.Grid[i], Y: math.Max(v, floor)})
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(0)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add("density", l)
		lambdaMax := math.NaN()
		if len(r.TopEigenvalues) > 0 {
			lambdaMax = r.TopEigenvalues[0]
		} else if r.TopEigenvalue != nil {
			lambdaMax = *r.TopEigenvalue
		}
		marks := []struct {
			label  string
			x      float64
			colour int
		}{{fmt.Sprintf("λ_max = %.4g", lambdaMax), lambdaMax, 1}}
		if r.TraceHessian != nil && d.Dimension > 0 {
			mean := *r.TraceHessian / float64(d.Dimension)
			marks = append(marks, struct {
				label  string
				x      float64
				colour int
			}{fmt.Sprintf("Tr D²L/N = %.4g", mean), mean, 2})
		}
		for _, m := range marks {
			if !finite(m.x) {
				continue
			}
			v, err := plotter.NewLine(plotter.XYs{{X: m.x, Y: floor}, {X: m.x, Y: peak}})
			if err != nil {
				return nil, err
			}
			v.Color = plotutil.Color(m.colour)
			v.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			v.Width = vg.Points(1.2)
			p.Add(v)
			p.Legend.Add(m.label, v)
		}
		p.X.Min, p.X.Max = d.Grid[0], d.Grid[len(d.Grid)-1]
		setLogY(p, span{lo: floor, hi: peak * 1.5})
		return p, nil
	})
}
