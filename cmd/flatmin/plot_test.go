package main

import (
	"bytes"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/model"
)

func TestPlotRendersARealRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, stderr, status := flatmin(t, "train", "--steps", "300", "--log-every", "50", "--out", dir, "--quiet"); status != 0 {
		t.Fatalf("train: status %d: %s", status, stderr)
	}
	// Z = XΘᵀ at the start and the end, as the neuron snapshots
	for step, theta := range map[int]string{0: "theta0.npy", 300: "theta.npy"} {
		writeSnapshot(t, dir, step, theta)
	}
	stdout, stderr, status := flatmin(t, "plot", dir)
	if status != 0 || stderr != "" {
		t.Fatalf("plot: status %d: %s", status, stderr)
	}
	for _, name := range []string{"singular_values", "trace", "theory_gap", "neurons"} {
		png := filepath.Join(dir, name+".png")
		if !strings.Contains(stdout, png+"\n") || !strings.Contains(stdout, filepath.Join(dir, name+".svg")+"\n") {
			t.Errorf("stdout does not list %s.png and .svg:\n%s", name, stdout)
		}
		checkPNG(t, png)
	}
}

// writeSnapshot writes dir/snapshots/z_<step>.npy from the run's X and a Θ.
func writeSnapshot(t *testing.T, dir string, step int, thetaFile string) {
	t.Helper()
	x, n, d, err := model.ReadMatrix(filepath.Join(dir, "x.npy"), "x")
	if err != nil {
		t.Fatal(err)
	}
	theta, m, d2, err := model.ReadMatrix(filepath.Join(dir, thetaFile), "theta")
	if err != nil || d2 != d {
		t.Fatalf("%s: %v (d %d, want %d)", thetaFile, err, d2, d)
	}
	z := make([]float64, n*m)
	for i := range n {
		for j := range m {
			for k := range d {
				z[i*m+j] += x[i*d+k] * theta[j*d+k]
			}
		}
	}
	sdir := filepath.Join(dir, "snapshots")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := runio.WriteNpy(filepath.Join(sdir, fmt.Sprintf("z_%010d.npy", step)), z, n, m); err != nil {
		t.Fatal(err)
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s: %v", path, err)
	} else if b := img.Bounds(); b.Empty() {
		t.Errorf("%s: empty image", path)
	}
}

func TestPlotRefusesBadUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	notARun := t.TempDir()
	for _, args := range [][]string{
		{"plot"},
		{"plot", missing},
		{"plot", notARun},
		{"plot", notARun, notARun},
		{"plot", "--bogus", notARun},
	} {
		stdout, stderr, status := flatmin(t, args...)
		if status != exitBadInput {
			t.Errorf("%q: status %d, want %d", args, status, exitBadInput)
		}
		if lines := strings.Count(stderr, "\n"); lines != 1 || !strings.HasPrefix(stderr, "flatmin plot: ") {
			t.Errorf("%q: stderr %q, want one line", args, stderr)
		}
		if stdout != "" {
			t.Errorf("%q: stdout %q", args, stdout)
		}
	}
	// the message says what is wrong with the directory
	if _, stderr, _ := flatmin(t, "plot", notARun); !strings.Contains(stderr, "metrics.csv") {
		t.Errorf("not a run: %q", stderr)
	}
}

func TestPlotHelp(t *testing.T) {
	stdout, _, status := flatmin(t, "plot", "--help")
	if status != 0 || strings.Count(stdout, "Usage: flatmin plot DIR") != 1 {
		t.Errorf("plot --help: status %d, %q", status, stdout)
	}
	if stdout, _, _ := flatmin(t, "help"); !strings.Contains(stdout, "plot") {
		t.Errorf("help does not list plot:\n%s", stdout)
	}
}
