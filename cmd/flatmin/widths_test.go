package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/flatmin/flatmin/model"
)

// With no η or initial-scale flags, gd, label-noise SGD and 1-SAM fit random
// data (d = 20, n = 10) at any width without diverging: the final loss is at
// most 1% of Σ y_i². (A fixed η = 0.05 diverged at step 2 from m = 30 up.)
func TestDefaultsFitAtAnyWidth(t *testing.T) {
	widths := []int{10, 100}
	if !testing.Short() {
		widths = append(widths, 1000, 10000)
	}
	for _, m := range widths {
		for _, trainer := range []string{"gd", "labelnoise", "sam1"} {
			steps := 20000
			if m >= 10000 && trainer != "sam1" {
				steps = 3000 // the same fit, a quarter of the time
			}
			dir := filepath.Join(t.TempDir(), "run")
			_, stderr, s := flatmin(t, "train", "--trainer", trainer, "--m", fmt.Sprint(m), "--d", "20", "--n", "10",
				"--steps", fmt.Sprint(steps), "--log-every", "1000", "--checkpoint-every", "0", "--out", dir, "--quiet")
			if s != 0 {
				t.Errorf("%s at m=%d: exit %d: %s", trainer, m, s, stderr)
				continue
			}
			sum := readJSON(t, filepath.Join(dir, "summary.json"))
			y, err := model.ReadVector(filepath.Join(dir, "y.npy"), "y")
			if err != nil {
				t.Fatal(err)
			}
			ySq := 0.0
			for _, v := range y {
				ySq += v * v
			}
			loss := sum["final"].(map[string]any)["loss"].(float64)
			if sum["stop_reason"] != "steps" || !(loss <= 1e-2*ySq) {
				t.Errorf("%s at m=%d: stop %v, final loss %.3g against Σy² = %.3g", trainer, m, sum["stop_reason"], loss, ySq)
			}
		}
	}
}
