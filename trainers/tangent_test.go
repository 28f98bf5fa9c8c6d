package trainers

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

// A tangent point of the Θ engine, whole (at) and in two calls (atLean):
// ∇F against autodiff, J∇F against a dense J, and after project the
// multiplier c and P∇F against the dense least-squares fit of ∇F on J's
// rows (gonum QR).
func TestTangentPointMatchesDense(t *testing.T) {
	b := testBackend(t)
	p, th, d := denseProjectionCase(t, b)
	grad, j, c, normal := d.grad, d.j, &d.c, &d.normal
	var jg mat.VecDense
	jg.MulVec(j, mat.NewVecDense(len(grad), grad))

	eng, err := newEngine(b, p, "theta")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := newTangentSpace(b, p, eng)
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want, scale float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9*scale {
			t.Errorf("%s: %.15g, dense %.15g", what, got, want)
		}
	}
	gNorm := mat.Norm(mat.NewVecDense(len(grad), grad), 2)
	for _, lean := range []bool{false, true} {
		var tp *tangentPoint
		if lean {
			tp, err = ts.atLean(th, b)
		} else {
			tp, err = ts.at(th)
		}
		if err != nil {
			t.Fatal(err)
		}
		g := tensors.MustCopyFlatData[float64](tp.grad)
		for k := range grad {
			near("∇F", g[k], grad[k], gNorm)
		}
		for i := range p.N {
			near("J∇F", tp.jg[i], jg.AtVec(i), mat.Norm(&jg, 2))
		}
		pg, pn, err := tp.project()
		if err != nil {
			t.Fatal(err)
		}
		for i := range p.N {
			near("c", tp.c[i], c.AtVec(i), mat.Norm(c, 2))
		}
		pv := tensors.MustCopyFlatData[float64](pg)
		want := 0.0
		for k := range grad {
			d := grad[k] - normal.AtVec(k)
			near("P∇F", pv[k], d, gNorm)
			want += d * d
		}
		near("‖P∇F‖", pn, math.Sqrt(want), gNorm)
		tp.release()
	}
}
