package plotting

import (
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestPlotSpectrum(t *testing.T) {
	dir := t.TempDir()
	var grid, dens []string
	for i := range 50 {
		x := -1 + 0.1*float64(i)
		grid = append(grid, trim(x))
		dens = append(dens, trim(math.Exp(-x*x)/math.Sqrt(math.Pi)))
	}
	path := filepath.Join(dir, "spec.json")
	mustWrite(t, path, `{"trace_hessian": 3, "top_eigenvalue": 2, "spectral_density": {"grid": [`+strings.Join(grid, ",")+
		`], "density": [`+strings.Join(dens, ",")+`], "method": "slq", "probes": 3, "lanczos_steps": 5, "sigma": 0.5, "dimension": 6}}`)
	paths, err := Plot(path)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, dir, paths, "spec")

	for name, text := range map[string]string{"no density": `{"trace_hessian": 3}`, "not json": `{`,
		"short grid": `{"spectral_density": {"grid": [1], "density": [1]}}`} {
		p := filepath.Join(t.TempDir(), "x.json")
		mustWrite(t, p, text)
		if _, err := Plot(p); !errors.Is(err, ErrBadInput) {
			t.Errorf("%s: %v, want bad input", name, err)
		}
	}
}

func trim(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
