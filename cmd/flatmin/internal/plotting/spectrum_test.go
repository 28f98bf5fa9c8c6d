package plotting

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
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

// A run with lambda_max gets the sharpness figure, with 2/η from config.json
// (not for riemannian); a run without the column does not.
func TestPlotRunSharpness(t *testing.T) {
	for _, trainer := range []string{"gd", "riemannian"} {
		dir := t.TempDir()
		mustWrite(t, filepath.Join(dir, "config.json"), `{"trainer": "`+trainer+`", "eta": 0.05}`)
		mustWrite(t, filepath.Join(dir, "metrics.csv"), "step,loss,trace_hessian,lambda_max,lambda_min,wall_seconds\n"+
			"0,1,30,20,-1,0\n100,0.1,25,15,-0.1,0.1\n200,0.01,24,14,0,0.2\n")
		paths, err := PlotRun(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(paths, filepath.Join(dir, "sharpness.png")) {
			t.Fatalf("%s: no sharpness figure in %v", trainer, paths)
		}
		svg, _ := os.ReadFile(filepath.Join(dir, "sharpness.svg"))
		if has := strings.Contains(string(svg), "2/η = 40"); has != (trainer == "gd") {
			t.Errorf("%s: 2/η = 40 drawn: %v", trainer, has)
		}
	}
	dir := t.TempDir()
	writeRun(t, dir, runOptions{rows: 3})
	paths, err := PlotRun(dir)
	if err != nil || slices.Contains(paths, filepath.Join(dir, "sharpness.png")) {
		t.Errorf("without lambda_max: %v, %v", paths, err)
	}
}
