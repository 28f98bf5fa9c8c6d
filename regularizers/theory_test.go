package regularizers

import (
	"math"
	"testing"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestOptimumHasZeroLossAndTraceMin(t *testing.T) {
	b := testBackend(t)
	for _, nu := range []float64{0, 0.5} {
		act, _ := model.NewActivation("cubic", nu, 1)
		spec, _ := model.ParseLabels("uniform:0.5,2")
		x, y, err := model.Synthetic(3, 5, spec, act, 4)
		if err != nil {
			t.Fatal(err)
		}
		p, err := model.NewProblem(x, 3, 5, y, nil, 7, act)
		if err != nil {
			t.Fatal(err)
		}
		opt := PredictOptimum(p)
		if !opt.OK {
			t.Fatal(opt.Why)
		}
		theta, err := opt.Theta(p)
		if err != nil {
			t.Fatal(err)
		}
		outs := MustExecOnceN(b, func(th *Node) []*Node {
			fw := model.NewNet(th.Graph(), p).Forward(th)
			return []*Node{fw.Loss(), TraceHessian(fw), fw.Z}
		}, tensors.FromFlatDataAndDimensions(theta, p.M, p.D))
		if loss := tensors.ToScalar[float64](outs[0]); loss > 1e-24 {
			t.Errorf("ν=%g: loss at the predicted optimum is %g", nu, loss)
		}
		if tr := tensors.ToScalar[float64](outs[1]); math.Abs(tr-opt.TraceMin) > 1e-12*opt.TraceMin {
			t.Errorf("ν=%g: trace at the optimum %.15g, F* %.15g", nu, tr, opt.TraceMin)
		}
		if gap := opt.TheoryGap(tensors.MustCopyFlatData[float64](outs[2]), p.N, p.M); gap > 1e-12 {
			t.Errorf("ν=%g: theory gap %g at the optimum", nu, gap)
		}
	}
}

func TestOptimumUndefined(t *testing.T) {
	cube, _ := model.NewActivation("cubic", 0, 1)
	p, _ := model.NewProblem([]float64{1, 0}, 1, 2, []float64{1}, []float64{1, 2}, 2, cube)
	if opt := PredictOptimum(p); opt.OK || !math.IsNaN(opt.TheoryGap([]float64{0, 0}, 1, 2)) {
		t.Error("non-unit w must leave the optimum undefined")
	}
	tanh, _ := model.NewActivation("tanh", 0, 0)
	p, _ = model.NewProblem([]float64{1, 0}, 1, 2, []float64{5}, nil, 2, tanh)
	if opt := PredictOptimum(p); opt.OK {
		t.Error("tanh cannot reach y/m = 2.5")
	}
}

// Both layouts against the definition max_ij |z_ij − z*_i|, with the largest
// deviation planted at each corner in turn.
func TestTheoryGapLayouts(t *testing.T) {
	const n, m = 3, 5
	opt := Optimum{OK: true, Z: []float64{0.5, -1, 2}}
	for _, tc := range []struct{ i, j int }{{0, 0}, {n - 1, m - 1}, {1, 2}, {2, 0}} {
		z := make([]float64, n*m) // row-major n×m
		for i := range n {
			for j := range m {
				z[i*m+j] = opt.Z[i] + 0.01*float64(i+j)
			}
		}
		z[tc.i*m+tc.j] = opt.Z[tc.i] - 3
		want := 0.0
		for i := range n {
			for j := range m {
				want = math.Max(want, math.Abs(z[i*m+j]-opt.Z[i]))
			}
		}
		zt := make([]float64, m*n)
		for i := range n {
			for j := range m {
				zt[j*n+i] = z[i*m+j]
			}
		}
		if got := opt.TheoryGap(z, n, m); got != want || want != 3 {
			t.Errorf("%v: TheoryGap %g, want %g", tc, got, want)
		}
		if got := opt.TheoryGapNeuronMajor(zt, n, m); got != want {
			t.Errorf("%v: TheoryGapNeuronMajor %g, want %g", tc, got, want)
		}
	}
}
