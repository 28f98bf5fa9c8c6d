package repro

import (
	"math/rand/v2"
	"testing"
)

// Neurons built in known groups (equal feature vectors plus noise far below
// the tolerance) must be counted as those groups.
func TestClusters(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n, m := 5, 12
	for _, groups := range []int{1, 3, 12} {
		centres := make([][]float64, groups)
		for g := range centres {
			centres[g] = make([]float64, n)
			for i := range centres[g] {
				centres[g][i] = 3 * rng.NormFloat64()
			}
		}
		z := make([]float64, n*m)
		for j := range m {
			c := centres[j%groups]
			for i := range n {
				z[i*m+j] = c[i] + 1e-6*rng.NormFloat64()
			}
		}
		if got := Clusters(z, n, m, ClusterTol); got != groups {
			t.Errorf("%d groups counted as %d", groups, got)
		}
	}
	// A chain of neurons each within the tolerance of the next is one cluster (single linkage).
	z := make([]float64, 2*4)
	for j := range 4 {
		z[j] = 1 + 0.04*float64(j) // row 0
		z[4+j] = 1                 // row 1
	}
	if got := Clusters(z, 2, 4, ClusterTol); got != 1 {
		t.Errorf("a chain counted as %d clusters", got)
	}
}

func TestLookup(t *testing.T) {
	if figs, err := Lookup("all"); err != nil || len(figs) != 3 {
		t.Errorf("all: %d, %v", len(figs), err)
	}
	if figs, err := Lookup("fig2"); err != nil || figs[0].N != 6 || figs[0].D != 5 || figs[0].Sigma != 0.2 {
		t.Errorf("fig2: %+v, %v", figs, err)
	}
	if _, err := Lookup("fig3"); err == nil {
		t.Error("fig3 accepted")
	}
	// The paper's settings, Appendix A.
	for _, f := range Figures {
		want := map[string][5]float64{"fig1a": {10, 3, 3, 0.05, 0.03}, "fig2": {10, 5, 6, 0.05, 0.2}, "fig1b": {30, 10, 15, 0.1, 0.2}}[f.Name]
		if got := [5]float64{float64(f.M), float64(f.D), float64(f.N), f.Eta, f.Sigma}; got != want {
			t.Errorf("%s: (m, d, n, η, σ) = %v, paper %v", f.Name, got, want)
		}
	}
}
