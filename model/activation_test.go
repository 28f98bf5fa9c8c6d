package model

import (
	"math"
	"testing"

	"github.com/flatmin/flatmin/internal/backend"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func testActivations(t *testing.T) []Activation {
	var acts []Activation
	for _, spec := range []struct {
		name string
		nu   float64
		k    int
	}{{"cubic", 0, 1}, {"cubic", 0.3, 1}, {"cubic", -0.5, 1}, {"odd", 0.1, 2}, {"odd", 0, 3}, {"tanh", 0, 0}} {
		a, err := NewActivation(spec.name, spec.nu, spec.k)
		if err != nil {
			t.Fatal(err)
		}
		acts = append(acts, a)
	}
	return acts
}

var testPoints = []float64{-1.7, -0.9, -0.31, 0, 0.05, 0.42, 1.1, 2.3}

// Each derivative on the host is the central difference of the one below it.
func TestHostDerivativesMatchFiniteDifferences(t *testing.T) {
	for _, a := range testActivations(t) {
		for order := 1; order <= 3; order++ {
			for _, z := range testPoints {
				const h = 1e-5
				fd := (a.Host(z+h, order-1) - a.Host(z-h, order-1)) / (2 * h)
				got := a.Host(z, order)
				if math.Abs(fd-got) > 1e-6*(1+math.Abs(got)) {
					t.Errorf("%s: φ^(%d)(%g) = %g, finite difference of φ^(%d) gives %g", a.Name(), order, z, got, order-1, fd)
				}
			}
		}
	}
}

// The graph's φ^(k) equals the host's, and autodiff of the graph's φ^(k) equals φ^(k+1).
func TestGraphMatchesHost(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	zs := tensors.FromFlatDataAndDimensions(testPoints, len(testPoints))
	for _, a := range testActivations(t) {
		outs := MustExecOnceN(b, func(z *Node) []*Node {
			var out []*Node
			for order := 0; order <= 3; order++ {
				out = append(out, a.Eval(z, order))
			}
			for order := 0; order <= 2; order++ {
				out = append(out, Gradient(ReduceAllSum(a.Eval(z, order)), z)[0])
			}
			return out
		}, zs)
		for k, out := range outs {
			order := k
			if k > 3 {
				order = k - 3 // autodiff of φ^(k-4) is φ^(k-3)
			}
			vals := tensors.MustCopyFlatData[float64](out)
			for i, z := range testPoints {
				want := a.Host(z, order)
				if math.Abs(vals[i]-want) > 1e-12*(1+math.Abs(want)) {
					t.Errorf("%s output %d at z=%g: graph %g, host φ^(%d) %g", a.Name(), k, z, vals[i], order, want)
				}
			}
		}
	}
}

func TestInverse(t *testing.T) {
	for _, a := range testActivations(t) {
		for _, z := range testPoints {
			t0 := a.Host(z, 0)
			inv, ok := a.Inverse(t0)
			switch {
			case a.DerivativeSignChanges():
				if ok {
					t.Errorf("%s: non-monotone φ should have no inverse, got φ⁻¹(%g) = %g", a.Name(), t0, inv)
				}
			case !ok:
				t.Errorf("%s: no inverse at φ(%g) = %g", a.Name(), z, t0)
			case math.Abs(inv-z) > 1e-9*(1+math.Abs(z)) && math.Abs(a.Host(inv, 0)-t0) > 1e-14*(1+math.Abs(t0)):
				t.Errorf("%s: φ⁻¹(φ(%g)) = %g", a.Name(), z, inv)
			}
		}
	}
	if _, ok := (TanhActivation{}).Inverse(1.5); ok {
		t.Error("tanh has no inverse at 1.5")
	}
}

// β is the largest constant with βφ” ≤ φ'²φ”' everywhere: check it against a
// dense grid search of the ratio, which must come down to β and never below.
func TestBetaIsTheBestConstant(t *testing.T) {
	for _, tc := range []struct {
		k  int
		nu float64
	}{{1, 0.1}, {1, 1}, {1, 3}, {2, 0.2}, {3, 0.05}} {
		a := &OddActivation{K: tc.k, Nu: tc.nu}
		c := a.Constants()
		best := math.Inf(1)
		for z := 1e-4; z < 10; z *= 1.0001 {
			if r := a.Host(z, 1) * a.Host(z, 1) * a.Host(z, 3) / a.Host(z, 2); r < best {
				best = r
			}
		}
		if math.Abs(best-c.Beta) > 1e-6*c.Beta {
			t.Errorf("%s: β = %g, grid minimum of φ'²φ'''/φ'' is %g", a.Name(), c.Beta, best)
		}
		if c.BetaPaper > c.Beta*(1+1e-12) {
			t.Errorf("%s: the paper's β %g exceeds the best constant %g", a.Name(), c.BetaPaper, c.Beta)
		}
	}
}

func TestConstantsAndAssumptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nu     float64
		k      int
		rho1   float64
		rho2   float64
		a1, a3 bool
	}{
		{"cubic", 0.5, 1, 0.5, 6, true, true},
		{"cubic", 0, 1, 0, 6, false, false},
		{"odd", 0.5, 2, 0.5, 0, false, true},
		{"tanh", 0, 0, 0, -2, false, false},
	} {
		a, err := NewActivation(tc.name, tc.nu, tc.k)
		if err != nil {
			t.Fatal(err)
		}
		c := a.Constants()
		if c.Rho1 != tc.rho1 || c.Rho2 != tc.rho2 || c.Assumption1 != tc.a1 || c.Assumption3 != tc.a3 {
			t.Errorf("%s: got %+v", a.Name(), c)
		}
		if (tc.a1 && tc.a3) != (len(c.Why) == 0) {
			t.Errorf("%s: reasons %q do not match the assumptions", a.Name(), c.Why)
		}
	}
}

func TestNewActivationRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		nu   float64
		k    int
	}{{"relu", 0, 1}, {"odd", 0, 0}, {"odd", 0, 11}, {"cubic", math.NaN(), 1}, {"cubic", math.Inf(1), 1}} {
		if _, err := NewActivation(tc.name, tc.nu, tc.k); err == nil {
			t.Errorf("NewActivation(%q, %v, %d) should fail", tc.name, tc.nu, tc.k)
		}
	}
}
