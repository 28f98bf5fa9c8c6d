package main

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/npy"
)

// A snapshot's z_<step>.npy is Z = XΘᵀ [n, m] of its theta_<step>.npy, under
// both engines and on the host and the graphs (Z streamed from Zᵀ's rows in
// column-major order, Θ a block at a time): checked by a plain triple loop
// over the run's own x.npy.
func TestSnapshotsHoldZOfTheirTheta(t *testing.T) {
	for _, c := range []struct{ engine, graphs string }{
		{"feature", "false"}, {"theta", "false"}, {"feature", "true"}, {"theta", "true"},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		if _, stderr, s := flatmin(t, "train", "--trainer", "labelnoise", "--m", "7", "--n", "4", "--d", "5", "--engine", c.engine,
			"--graphs="+c.graphs, "--steps", "300", "--log-every", "100", "--snapshots", "3", "--quiet", "--out", dir); s != 0 {
			t.Fatalf("%+v: status %d: %s", c, s, stderr)
		}
		x, xd, err := npy.Read(filepath.Join(dir, runner.XFile))
		if err != nil {
			t.Fatal(err)
		}
		n, d := xd[0], xd[1]
		for _, step := range []string{"0000000000", "0000000150", "0000000300"} {
			z, zd, err := npy.Read(filepath.Join(dir, runner.SnapshotDir, "z_"+step+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			theta, td, err := npy.Read(filepath.Join(dir, runner.SnapshotDir, "theta_"+step+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			m := td[0]
			if zd[0] != n || zd[1] != m || td[1] != d {
				t.Fatalf("%+v step %s: shapes z %v, Θ %v", c, step, zd, td)
			}
			for i := range n {
				for j := range m {
					want := 0.0
					for k := range d {
						want += x[i*d+k] * theta[j*d+k]
					}
					if got := z[i*m+j]; math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
						t.Fatalf("%+v step %s: z[%d,%d] = %g, XΘᵀ = %g", c, step, i, j, got, want)
					}
				}
			}
		}
	}
}
