package linalg

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestSingularValues(t *testing.T) {
	// Rank one: u vᵀ with ‖u‖ = 5, ‖v‖ = 1 has σ = (5, 0).
	a := []float64{3 * 0.6, 3 * 0.8, 4 * 0.6, 4 * 0.8}
	sv, err := SingularValues(a, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(sv[0]-5) > 1e-14 || sv[1] > 1e-14 {
		t.Errorf("singular values %v, want [5 0]", sv)
	}
	if _, err := SingularValues([]float64{1, math.NaN()}, 1, 2); err == nil {
		t.Error("NaN accepted")
	}
}

func TestEffectiveRank(t *testing.T) {
	for _, tc := range []struct {
		sv   []float64
		want float64
	}{{[]float64{3, 0, 0}, 1}, {[]float64{2, 2}, 2}, {[]float64{1, 1, 1, 1}, 4}, {[]float64{0, 0}, 0}} {
		if got := EffectiveRank(tc.sv); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("EffectiveRank(%v) = %g, want %g", tc.sv, got, tc.want)
		}
	}
}

func TestSolveSPD(t *testing.T) {
	a := []float64{4, 1, 1, 3}
	x, err := SolveSPD(a, 2, []float64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	// Check A x = b by multiplication.
	if r0, r1 := 4*x[0]+x[1]-1, x[0]+3*x[1]-2; math.Abs(r0) > 1e-15 || math.Abs(r1) > 1e-15 {
		t.Errorf("residual (%g, %g)", r0, r1)
	}
	for name, m := range map[string][]float64{"rank one": {1, 1, 1, 1}, "zero": {0, 0, 0, 0}, "indefinite": {1, 2, 2, 1}} {
		if _, err := SolveSPD(m, 2, []float64{1, 1}); !errors.Is(err, ErrSingular) {
			t.Errorf("%s: got %v, want ErrSingular", name, err)
		}
	}
}

func TestMinEigenSym(t *testing.T) {
	v, err := MinEigenSym([]float64{2, 1, 1, 2}, 2)
	if err != nil || math.Abs(v-1) > 1e-14 {
		t.Errorf("got %g, %v; want 1", v, err)
	}
}

// A G⁺ A = A and G⁺ A G⁺ = G⁺ for Gram matrices of full and deficient rank.
func TestPseudoInverseSym(t *testing.T) {
	for _, tc := range []struct{ n, d int }{{3, 3}, {4, 2}, {5, 8}} {
		rng := rand.New(rand.NewPCG(uint64(tc.n), uint64(tc.d)))
		x := make([]float64, tc.n*tc.d)
		for i := range x {
			x[i] = rng.NormFloat64()
		}
		g := make([]float64, tc.n*tc.n)
		for i := range tc.n {
			for k := range tc.n {
				for j := range tc.d {
					g[i*tc.n+k] += x[i*tc.d+j] * x[k*tc.d+j]
				}
			}
		}
		pinv, err := PseudoInverseSym(g, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		mul := func(a, b []float64) []float64 {
			c := make([]float64, tc.n*tc.n)
			for i := range tc.n {
				for k := range tc.n {
					for j := range tc.n {
						c[i*tc.n+j] += a[i*tc.n+k] * b[k*tc.n+j]
					}
				}
			}
			return c
		}
		for _, chk := range []struct {
			name      string
			got, want []float64
		}{{"G G⁺ G", mul(mul(g, pinv), g), g}, {"G⁺ G G⁺", mul(mul(pinv, g), pinv), pinv}} {
			for i := range chk.got {
				if math.Abs(chk.got[i]-chk.want[i]) > 1e-9*(1+math.Abs(chk.want[i])) {
					t.Fatalf("n=%d d=%d: %s[%d] = %g, want %g", tc.n, tc.d, chk.name, i, chk.got[i], chk.want[i])
				}
			}
		}
	}
}
