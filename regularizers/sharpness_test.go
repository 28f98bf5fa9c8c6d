package regularizers

import (
	"math"
	"testing"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// hostForwardAt evaluates the host forward at Θ (Zᵀ = Θ Xᵀ by plain loops).
func hostForwardAt(p *model.Problem, theta []float64) *model.HostForward {
	zt := make([]float64, p.M*p.N)
	for j := range p.M {
		for i := range p.N {
			for c := range p.D {
				zt[j*p.N+i] += theta[j*p.D+c] * p.X[i*p.D+c]
			}
		}
	}
	return model.NewHostNet(p).Forward(zt)
}

// The bound is never below the largest |eigenvalue| of the dense autodiff
// Hessian, equals λ_max at zero loss, and is not loose by more than the
// residual term off it.
func TestLossHessianNormBound(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t) {
		for _, onM := range []bool{false, true} {
			for seed := uint64(1); seed <= 3; seed++ {
				p, theta := testProblem(t, b, act, 3, 4, 5, seed, onM)
				ev := denseHessianEigen(t, p, theta)
				norm := math.Max(math.Abs(ev[0]), math.Abs(ev[len(ev)-1]))
				bound := LossHessianNormBound(hostForwardAt(p, tensors.MustCopyFlatData[float64](theta)))
				if bound < norm*(1-1e-10) {
					t.Errorf("%s onM=%v seed %d: bound %g below ‖D²L‖ = %g", act.Name(), onM, seed, bound, norm)
				}
				if onM && math.Abs(bound-ev[len(ev)-1]) > 1e-9*norm {
					t.Errorf("%s seed %d: at zero loss the bound %g should be λ_max = %g", act.Name(), seed, bound, ev[len(ev)-1])
				}
				// The blockwise form, in blocks of 3 neurons (m = 4: the last one short).
				th := tensors.MustCopyFlatData[float64](theta)
				zt := make([]float64, p.M*p.N)
				model.HostFeatures(p, p.XT(), th, zt, 0)
				blocks := LossHessianNormBoundBlocks(p, func(lo, hi int, buf []float64) []float64 {
					return append(buf[:0], zt[lo*p.N:hi*p.N]...)
				}, 3)
				if math.Abs(blocks-bound) > 1e-12*bound {
					t.Errorf("%s onM=%v seed %d: blockwise bound %.17g, whole %.17g", act.Name(), onM, seed, blocks, bound)
				}
			}
		}
	}
}

// At Θ on the theory's optimum, SharpnessAtOptimum is λ_max of the dense
// autodiff Hessian; for the cube it grows like m.
func TestSharpnessAtOptimum(t *testing.T) {
	b := testBackend(t)
	for _, tc := range []struct {
		m  int
		nu float64
	}{{4, 0.1}, {7, 0.5}, {12, 0.05}} {
		act, _ := model.NewActivation("cubic", tc.nu, 1)
		spec, _ := model.ParseLabels("uniform:0.5,1")
		x, y, err := model.Synthetic(3, 4, spec, act, 7)
		if err != nil {
			t.Fatal(err)
		}
		p, err := model.NewProblem(x, 3, 4, y, nil, tc.m, act)
		if err != nil {
			t.Fatal(err)
		}
		opt := PredictOptimum(p)
		th, err := opt.Theta(p)
		if err != nil {
			t.Fatal(err)
		}
		theta := tensors.FromFlatDataAndDimensions(th, p.M, p.D)
		loss := MustExecOnce(b, func(t *Node) *Node { return independentLoss(p, t) }, theta)
		if l := tensors.ToScalar[float64](loss); l > 1e-20 {
			t.Fatalf("Θ* has loss %g", l)
		}
		ev := denseHessianEigen(t, p, theta)
		if got, want := SharpnessAtOptimum(p, opt), ev[len(ev)-1]; math.Abs(got-want) > 1e-9*want {
			t.Errorf("m=%d ν=%g: SharpnessAtOptimum %g, dense λ_max %g", tc.m, tc.nu, got, want)
		}
	}
	// Growth with m at fixed data: λ*/m tends to 2ν²λ_max(G) for the cube.
	act, _ := model.NewActivation("cubic", 0.1, 1)
	spec, _ := model.ParseLabels("uniform:0.5,1")
	x, y, _ := model.Synthetic(3, 4, spec, act, 7)
	var perM []float64
	for _, m := range []int{10000, 1000000} {
		p, _ := model.NewProblem(x, 3, 4, y, nil, m, act)
		perM = append(perM, SharpnessAtOptimum(p, PredictOptimum(p))/float64(m))
	}
	if math.Abs(perM[1]/perM[0]-1) > 0.05 {
		t.Errorf("λ*/m at m=1e4 and 1e6: %g, %g; want about equal (growth like m)", perM[0], perM[1])
	}
}

// GaussNewtonCurvature is λ_max(2 J Jᵀ): against closed forms (diagonal,
// rank one 2‖v‖², the 2×2 formula) and a power iteration on J Jᵀ built
// from an explicit J.
func TestGaussNewtonCurvature(t *testing.T) {
	j := [][]float64{{1, 2, 0, -1}, {0.5, -1, 3, 2}, {2, 0, 1, 1}} // J [3, 4]
	jjt := make([]float64, 9)
	for i := range 3 {
		for k := range 3 {
			for c := range 4 {
				jjt[i*3+k] += j[i][c] * j[k][c]
			}
		}
	}
	power := func(a []float64, n int) float64 {
		v, lam := make([]float64, n), 0.0
		for i := range v {
			v[i] = 1
		}
		for range 2000 {
			w := make([]float64, n)
			for i := range n {
				for k := range n {
					w[i] += a[i*n+k] * v[k]
				}
			}
			lam = 0
			for _, x := range w {
				lam += x * x
			}
			lam = math.Sqrt(lam)
			for i := range w {
				v[i] = w[i] / lam
			}
		}
		return lam
	}
	a, b, c := 2.0, 0.7, 1.5
	for _, tc := range []struct {
		name string
		jjt  []float64
		n    int
		want float64
	}{
		{"diagonal", []float64{3, 0, 0, 0, 1, 0, 0, 0, 2}, 3, 6},
		{"rank one v vᵀ", []float64{1, 2, -2, 2, 4, -4, -2, -4, 4}, 3, 2 * 9},
		{"2×2", []float64{a, b, b, c}, 2, 2 * ((a+c)/2 + math.Sqrt((a-c)*(a-c)/4+b*b))},
		{"explicit J", jjt, 3, 2 * power(jjt, 3)},
	} {
		if got := GaussNewtonCurvature(tc.jjt, tc.n); math.Abs(got-tc.want) > 1e-12*tc.want {
			t.Errorf("%s: %.15g, want %.15g", tc.name, got, tc.want)
		}
	}
}
