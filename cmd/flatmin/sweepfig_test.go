package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/plotting"
)

// readmeFigure is the sweep figure README shows.
const readmeFigure = "sweep_trace_ratio"

// TestSweepFigureForReadme trains 1-SAM and SAM for 3 seeds each on Figure
// 1a's data and draws their sweep figures; with FLATMIN_README_FIGURE=1 it
// copies docs/sweep_trace_ratio.png from them (the figure README shows):
//
//	FLATMIN_README_FIGURE=1 go test ./cmd/flatmin -run TestSweepFigureForReadme
func TestSweepFigureForReadme(t *testing.T) {
	write := os.Getenv("FLATMIN_README_FIGURE") == "1"
	if testing.Short() && !write {
		t.Skip("trains 6 runs")
	}
	steps := "20000"
	if write {
		steps = "200000"
	}
	root := t.TempDir()
	var groups []plotting.RunGroup
	for _, trainer := range []string{"sam1", "sam"} {
		g := plotting.RunGroup{Label: trainer}
		for seed := 1; seed <= 3; seed++ {
			dir := filepath.Join(root, fmt.Sprintf("%s-seed%d", trainer, seed))
			if _, stderr, s := flatmin(t, "train", "--trainer", trainer, "--seed", fmt.Sprint(seed), "--steps", steps,
				"--log-every", "1000", "--quiet", "--out", dir); s != 0 {
				t.Fatalf("%s seed %d: status %d: %s", trainer, seed, s, stderr)
			}
			g.Dirs = append(g.Dirs, dir)
		}
		groups = append(groups, g)
	}
	out := filepath.Join(root, "figures")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	paths, err := plotting.SweepFigures(out, groups, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2*4 {
		t.Errorf("wrote %v, want 4 figures in 2 formats", paths)
	}
	if !write {
		return
	}
	data, err := os.ReadFile(filepath.Join(out, readmeFigure+".png"))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 200<<10 {
		t.Fatalf("%s.png is %d bytes, over README's 200 KB", readmeFigure, len(data))
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", readmeFigure+".png"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	keep := os.Getenv("FLATMIN_README_FIGURE_DIR")
	if keep != "" {
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			os.WriteFile(filepath.Join(keep, filepath.Base(p)), b, 0o644)
		}
	}
}
