package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `flatmin repro fig1a --quick`: the Riemannian flow reaches rank one, and the
// figures exist and decode as images.
func TestReproFig1aQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("repro: three trainers' runs")
	}
	dir := filepath.Join(t.TempDir(), "repro")
	stdout, stderr, status := flatmin(t, "repro", "fig1a", "--quick", "--out", dir)
	if status != 0 {
		t.Fatalf("status %d: %s", status, stderr)
	}
	if !strings.Contains(stdout, "report:") {
		t.Errorf("stdout: %s", stdout)
	}
	final := readJSON(t, filepath.Join(dir, "fig1a", "riemannian", "summary.json"))["final"].(map[string]any)
	sv := final["singular_values_Z"].([]any)
	s1, s2, s3 := sv[0].(float64), sv[1].(float64), sv[2].(float64)
	if !(s2/s1 < 1e-6 && s3/s1 < 1e-6) {
		t.Errorf("Riemannian flow on Figure 1a: σ2/σ1 = %g, σ3/σ1 = %g, want rank one (< 1e-6)", s2/s1, s3/s1)
	}
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Figure 1a", "states neither the labels", "rank one", "labelnoise", "sam1", "riemannian"} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	var images int
	for _, line := range strings.Split(string(report), "\n") {
		if !strings.HasPrefix(line, "![") {
			continue
		}
		images++
		path := filepath.Join(dir, line[strings.Index(line, "](")+2:len(line)-1])
		f, err := os.Open(path)
		if err != nil {
			t.Errorf("report links %s: %v", path, err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 100 {
			t.Errorf("%s does not decode as an image: %v", path, err)
		}
	}
	if images < 5 {
		t.Errorf("report shows %d images", images)
	}
	if _, stderr, s := flatmin(t, "repro", "fig9"); s != 2 || !strings.Contains(stderr, "fig9") {
		t.Errorf("unknown figure: %d %s", s, stderr)
	}
	if _, _, s := flatmin(t, "repro", "fig1a", "--quick", "--out", dir); s != 2 {
		t.Errorf("a second repro into the same directory: status %d, want 2", s)
	}
}
