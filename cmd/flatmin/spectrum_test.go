package main

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/internal/npy"
)

// inspect's spectrum fields on a short run: Lanczos' λ_max agrees with power
// iteration's top_eigenvalue, the K values descend to at least λ_min, the
// density integrates to 1 over its grid, and Hutch++ is near the exact trace.
func TestInspectSpectrum(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, stderr, s := flatmin(t, "train", "--steps", "2000", "--log-every", "1000", "--out", dir); s != 0 {
		t.Fatalf("train: %s", stderr)
	}
	out, stderr, s := flatmin(t, "inspect", "--run", dir, "--top-k", "4", "--density", "--density-probes", "4",
		"--lanczos-steps", "12", "--probes", "30", "--trace-estimator", "hutchpp")
	if s != 0 {
		t.Fatalf("inspect: %s", stderr)
	}
	var got struct {
		TopEigenvalue  float64   `json:"top_eigenvalue"`
		TopEigenvalues []float64 `json:"top_eigenvalues"`
		MinEigenvalue  float64   `json:"min_eigenvalue"`
		TraceHessian   float64   `json:"trace_hessian"`
		Hutchinson     struct {
			Estimate, Stderr float64
			Method           string
		}
		Density struct {
			Grid, Density []float64
			Method        string
			Probes        int
			LanczosSteps  int `json:"lanczos_steps"`
			Sigma         float64
		} `json:"spectral_density"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(got.TopEigenvalues) != 4 || math.Abs(got.TopEigenvalues[0]-got.TopEigenvalue) > 1e-8*got.TopEigenvalue {
		t.Errorf("top_eigenvalues %v, power iteration's top_eigenvalue %v", got.TopEigenvalues, got.TopEigenvalue)
	}
	for i := 1; i < len(got.TopEigenvalues); i++ {
		if got.TopEigenvalues[i] > got.TopEigenvalues[i-1] || got.TopEigenvalues[i] < got.MinEigenvalue {
			t.Errorf("top_eigenvalues %v not descending to ≥ min_eigenvalue %v", got.TopEigenvalues, got.MinEigenvalue)
		}
	}
	d := got.Density
	if d.Method != "slq" || d.Probes != 4 || d.LanczosSteps != 12 || !(d.Sigma > 0) || len(d.Grid) != len(d.Density) || len(d.Grid) < 2 {
		t.Fatalf("spectral_density %+v", d)
	}
	integral := 0.0
	for i := 1; i < len(d.Grid); i++ {
		integral += 0.5 * (d.Grid[i] - d.Grid[i-1]) * (d.Density[i] + d.Density[i-1])
	}
	if math.Abs(integral-1) > 1e-9 {
		t.Errorf("density integrates to %v", integral)
	}
	if h := got.Hutchinson; h.Method != "hutchpp" || math.Abs(h.Estimate-got.TraceHessian) > 6*h.Stderr+1e-9*got.TraceHessian {
		t.Errorf("hutchpp %+v, exact trace %v", h, got.TraceHessian)
	}
}

// --track-sharpness adds lambda_max and lambda_min to metrics.csv (and only
// then); the last row's λ_max is power iteration's top_eigenvalue of the
// final Θ (inspect), for the Θ engine (gd) and the feature engine (riemannian).
func TestTrackSharpness(t *testing.T) {
	for _, trainer := range []string{"gd", "riemannian"} {
		dir := filepath.Join(t.TempDir(), trainer)
		if _, stderr, s := flatmin(t, "train", "--trainer", trainer, "--steps", "300", "--log-every", "100",
			"--track-sharpness", "--out", dir); s != 0 {
			t.Fatalf("%s: %s", trainer, stderr)
		}
		rows := readCSV(t, filepath.Join(dir, "metrics.csv"))
		col := map[string]int{}
		for i, name := range rows[0] {
			col[name] = i
		}
		imax, ok1 := col["lambda_max"]
		imin, ok2 := col["lambda_min"]
		if !ok1 || !ok2 || len(rows) < 3 {
			t.Fatalf("%s: header %v, %d rows", trainer, rows[0], len(rows))
		}
		last := rows[len(rows)-1]
		lmax, _ := strconv.ParseFloat(last[imax], 64)
		lmin, _ := strconv.ParseFloat(last[imin], 64)
		out, _, s := flatmin(t, "inspect", "--run", dir)
		var got struct {
			TopEigenvalue float64 `json:"top_eigenvalue"`
		}
		if s != 0 || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("inspect: %s", out)
		}
		if math.Abs(lmax-got.TopEigenvalue) > 1e-8*got.TopEigenvalue || !(lmin <= lmax) {
			t.Errorf("%s: logged λ_max %v (λ_min %v), inspect's top_eigenvalue %v", trainer, lmax, lmin, got.TopEigenvalue)
		}
	}
	dir := filepath.Join(t.TempDir(), "plain")
	if _, stderr, s := flatmin(t, "train", "--trainer", "gd", "--steps", "10", "--out", dir); s != 0 {
		t.Fatal(stderr)
	}
	if h := readCSV(t, filepath.Join(dir, "metrics.csv"))[0]; slices.Contains(h, "lambda_max") || slices.Contains(h, "lambda_min") {
		t.Errorf("columns without --track-sharpness: %v", h)
	}
	if _, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "20", "--track-sharpness"); s != 2 || !strings.Contains(stderr, "--track-sharpness") {
		t.Errorf("resume adding --track-sharpness: status %d, %q", s, stderr)
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A Θ whose Hessian products overflow gives null eigenvalues, as
// top_eigenvalue does, not a failure.
func TestInspectTopKOverflow(t *testing.T) {
	big := make([]float64, 30)
	for i := range big {
		big[i] = 1e120
	}
	data, _ := npy.Encode(big, 10, 3)
	path := filepath.Join(t.TempDir(), "theta.npy")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, s := flatmin(t, "inspect", "--theta", path, "--top-k", "2")
	var got map[string]any
	if s != 0 || json.Unmarshal([]byte(out), &got) != nil {
		t.Fatalf("status %d: %s", s, stderr)
	}
	if top, ok := got["top_eigenvalues"].([]any); !ok || len(top) != 2 || top[0] != nil || got["min_eigenvalue"] != nil {
		t.Errorf("top_eigenvalues %v, min_eigenvalue %v", got["top_eigenvalues"], got["min_eigenvalue"])
	}
}

// compare --track-sharpness gives every trainer the columns, and plot an
// overlay of λ_max.
func TestCompareTrackSharpness(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cmp")
	if _, stderr, s := flatmin(t, "compare", "--trainers", "gd,sam1", "--steps", "200", "--log-every", "100",
		"--track-sharpness", "--out", dir, "--quiet"); s != 0 {
		t.Fatal(stderr)
	}
	for _, tr := range []string{"gd", "sam1"} {
		if h := readCSV(t, filepath.Join(dir, tr, "metrics.csv"))[0]; !slices.Contains(h, "lambda_max") {
			t.Errorf("%s: header %v", tr, h)
		}
	}
	out, stderr, s := flatmin(t, "plot", dir)
	if s != 0 || !strings.Contains(out, "compare_lambda_max.png") {
		t.Errorf("plot: status %d, %s %s", s, out, stderr)
	}
}
