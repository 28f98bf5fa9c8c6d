package regularizers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func testBackend(t testing.TB) backends.Backend {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gauss(rng *rand.Rand, k int, scale float64) []float64 {
	out := make([]float64, k)
	for i := range out {
		out[i] = scale * rng.NormFloat64()
	}
	return out
}

// testProblem has non-unit rows and non-ones w. onManifold relabels y := f(Θ)
// so that Θ has zero loss.
func testProblem(t testing.TB, b backends.Backend, act model.Activation, n, m, d int, seed uint64, onManifold bool) (*model.Problem, *tensors.Tensor) {
	rng := rand.New(rand.NewPCG(seed, 9))
	p, err := model.NewProblem(gauss(rng, n*d, 1), n, d, gauss(rng, n, 1), gauss(rng, m, 1), m, act)
	if err != nil {
		t.Fatal(err)
	}
	theta := tensors.FromFlatDataAndDimensions(gauss(rng, m*d, 0.6), m, d)
	if onManifold {
		f := MustExecOnce(b, func(th *Node) *Node { return model.NewNet(th.Graph(), p).Forward(th).F }, theta)
		p.Y = tensors.MustCopyFlatData[float64](f)
	}
	return p, theta
}

// independentLoss writes L with stock GoMLX ops and the activation's formula
// typed out again, sharing nothing with model's graph code.
func independentLoss(p *model.Problem, th *Node) *Node {
	g := th.Graph()
	x := Const(g, tensors.FromFlatDataAndDimensions(p.X, p.N, p.D))
	z := DotGeneral(x, []int{1}, nil, th, []int{1}, nil)
	var phi *Node
	switch a := p.Act.(type) {
	case *model.OddActivation:
		pow := z
		for range 2 * a.K {
			pow = Mul(pow, z)
		}
		phi = Add(pow, MulScalar(z, a.Nu))
	case model.TanhActivation:
		phi = Tanh(z)
	}
	w := Const(g, tensors.FromFlatDataAndDimensions(p.W, 1, p.M))
	f := ReduceSum(Mul(phi, w), 1)
	r := Sub(f, Const(g, tensors.FromFlatDataAndDimensions(p.Y, p.N)))
	return ReduceAllSum(Square(r))
}

// autodiffHessianTrace is Σ_k e_kᵀ H e_k with each row of H from a second reverse pass.
func autodiffHessianTrace(p *model.Problem, th *Node) *Node {
	grad := Gradient(independentLoss(p, th), th)[0]
	var trace *Node
	for k := range p.M * p.D {
		e := OneHot(Const(th.Graph(), int32(k)), p.M*p.D, th.DType())
		e = Reshape(e, p.M, p.D)
		hk := Gradient(ReduceAllSum(Mul(grad, e)), th)[0] // H e_k
		term := ReduceAllSum(Mul(hk, e))
		if trace == nil {
			trace = term
		} else {
			trace = Add(trace, term)
		}
	}
	return trace
}

func activations(t testing.TB) []model.Activation {
	var out []model.Activation
	for _, s := range []struct {
		name string
		nu   float64
		k    int
	}{{"cubic", 0, 1}, {"cubic", 0.4, 1}, {"odd", 0.2, 2}, {"tanh", 0, 0}} {
		a, err := model.NewActivation(s.name, s.nu, s.k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestTraceMatchesAutodiffHessian(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t) {
		for _, onM := range []bool{false, true} {
			for seed := uint64(1); seed <= 3; seed++ {
				p, theta := testProblem(t, b, act, 4, 5, 3, seed, onM)
				outs := MustExecOnceN(b, func(th *Node) []*Node {
					fw := model.NewNet(th.Graph(), p).Forward(th)
					return []*Node{TraceHessian(fw), TraceHessianManifold(fw), autodiffHessianTrace(p, th), fw.Loss()}
				}, theta)
				exact, manifold := tensors.ToScalar[float64](outs[0]), tensors.ToScalar[float64](outs[1])
				full, loss := tensors.ToScalar[float64](outs[2]), tensors.ToScalar[float64](outs[3])
				if math.Abs(exact-full) > 1e-10*math.Abs(full) {
					t.Errorf("%s seed %d onManifold=%v: closed form %.15g, autodiff Hessian trace %.15g", act.Name(), seed, onM, exact, full)
				}
				if onM {
					if loss > 1e-24 {
						t.Fatalf("relabelled problem has loss %g", loss)
					}
					if math.Abs(manifold-full) > 1e-10*math.Abs(full) {
						t.Errorf("%s seed %d: on the manifold 2Σ‖Df_i‖² = %.15g, trace %.15g", act.Name(), seed, manifold, full)
					}
				} else if math.Abs(manifold-full) < 1e-6*math.Abs(full) {
					t.Errorf("%s seed %d: off the manifold the two traces should differ (%g, %g)", act.Name(), seed, manifold, full)
				}
			}
		}
	}
}

func TestTraceGradientMatchesFiniteDifferences(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t) {
		p, theta := testProblem(t, b, act, 3, 4, 3, 5, false)
		value := MustNewExec(b, func(th *Node) *Node { return TraceHessian(model.NewNet(th.Graph(), p).Forward(th)) })
		grad := MustExecOnce(b, func(th *Node) *Node { return TraceHessianGrad(model.NewNet(th.Graph(), p).Forward(th)) }, theta)
		g := tensors.MustCopyFlatData[float64](grad)
		base := tensors.MustCopyFlatData[float64](theta)
		for k := range base {
			const h = 1e-5
			eval := func(delta float64) float64 {
				th := append([]float64(nil), base...)
				th[k] += delta
				return tensors.ToScalar[float64](value.MustExec(tensors.FromFlatDataAndDimensions(th, p.M, p.D))[0])
			}
			fd := (eval(h) - eval(-h)) / (2 * h)
			if math.Abs(fd-g[k]) > 1e-6*(1+math.Abs(fd)) {
				t.Errorf("%s: ∂TrD²L/∂θ[%d] autodiff %g, finite differences %g", act.Name(), k, g[k], fd)
			}
		}
	}
}

// The closed-form ∂ Tr D²L/∂Z equals autodiff of TraceHessian with respect
// to Z, off the manifold, with and without unit weights, in both layouts.
func TestTraceFeatureGradMatchesAutodiff(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t) {
		for _, unit := range []bool{true, false} {
			p, theta := testProblem(t, b, act, 3, 4, 3, 5, false)
			if unit {
				for i := range p.W {
					p.W[i] = 1
				}
			}
			out := MustExecOnceN(b, func(th *Node) []*Node {
				net := model.NewNet(th.Graph(), p)
				fw := net.Forward(th)
				ft := net.ForwardFeatures(Transpose(fw.Z, 0, 1))
				return []*Node{TraceHessianFeatureGrad(fw), Gradient(TraceHessian(fw), fw.Z)[0],
					TraceHessianFeatureGrad(ft), Gradient(TraceHessian(ft), ft.Z)[0]}
			}, theta)
			for pair := 0; pair < 4; pair += 2 {
				got, want := tensors.MustCopyFlatData[float64](out[pair]), tensors.MustCopyFlatData[float64](out[pair+1])
				for k := range want {
					if math.Abs(got[k]-want[k]) > 1e-10*(1+math.Abs(want[k])) {
						t.Fatalf("%s unit=%v layout %d: ∂F/∂z[%d] closed form %.15g, autodiff %.15g", act.Name(), unit, pair/2, k, got[k], want[k])
					}
				}
			}
		}
	}
}

// The host path's F, its manifold form and ∂F/∂Z equal autodiff of the
// graph's Tr D²L (itself checked against the full autodiff Hessian above),
// with and without unit weights: TraceHost over blocks of 3 neurons and 1
// (φ″, φ‴ computed per block), and TraceHessianWithGradHost on a whole
// forward. The manifold form is checked where it is Tr D²L, at zero loss
// (the autodiff Hessian's trace there); the blocks' sums run in order of j,
// so they give the whole array's bits.
func TestTraceHostMatchesAutodiff(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t) {
		for _, unit := range []bool{true, false} {
			for _, onM := range []bool{false, true} {
				p, theta := testProblem(t, b, act, 3, 4, 3, 6, onM)
				if unit {
					for i := range p.W {
						p.W[i] = 1
					}
				}
				if onM { // y = f(Θ) again, at the new w
					p.Y = tensors.MustCopyFlatData[float64](MustExecOnce(b, func(th *Node) *Node {
						return model.NewNet(th.Graph(), p).Forward(th).F
					}, theta))
				}
				out := MustExecOnceN(b, func(th *Node) []*Node {
					net := model.NewNet(th.Graph(), p)
					zt := Transpose(net.Forward(th).Z, 0, 1)
					fw := net.ForwardFeatures(zt)
					return []*Node{zt, autodiffHessianTrace(p, th), Gradient(TraceHessian(fw), fw.Z)[0]}
				}, theta)
				zt := tensors.MustCopyFlatData[float64](out[0])
				wantF, wantG := tensors.ToScalar[float64](out[1]), tensors.MustCopyFlatData[float64](out[2])
				name := fmt.Sprintf("%s unit=%v onM=%v", act.Name(), unit, onM)
				closeTo := func(what string, got, want float64) {
					t.Helper()
					if math.Abs(got-want) > 1e-10*(1+math.Abs(want)) {
						t.Errorf("%s: %s %.15g, autodiff %.15g", name, what, got, want)
					}
				}

				// Blocks of Zᵀ's rows [0, 3) and [3, 4).
				net := model.NewHostNet(p)
				h := net.Forward(zt)
				tr, man := NewTraceHost(net, h.R), NewTraceHost(net, nil)
				blocks := [][2]int{{0, 3}, {3, 4}}
				a := make([][]float64, len(blocks))
				for k, bl := range blocks {
					z := zt[bl[0]*p.N : bl[1]*p.N]
					a[k] = make([]float64, len(z))
					model.HostA(p.Act, p.W[bl[0]:bl[1]], z, a[k])
					tr.Add(TraceBlock{Lo: bl[0], Z: z, A: a[k]})
					man.Add(TraceBlock{Lo: bl[0], Z: z, A: a[k]})
				}
				closeTo("blockwise Tr D²L", tr.Trace(), wantF)
				if onM {
					closeTo("blockwise manifold trace", man.TraceManifold(), wantF)
					closeTo("blockwise manifold trace (with r)", tr.TraceManifold(), wantF)
				}
				grad := make([]float64, len(zt))
				for k, bl := range blocks {
					tr.Grad(TraceBlock{Lo: bl[0], Z: zt[bl[0]*p.N : bl[1]*p.N], A: a[k]}, grad[bl[0]*p.N:bl[1]*p.N])
				}
				for k := range wantG {
					closeTo(fmt.Sprintf("blockwise ∂F/∂z[%d]", k), grad[k], wantG[k])
				}

				// The whole array, from a fresh forward (no φ″, φ‴ kept).
				fused := make([]float64, len(wantG))
				h = model.NewHostNet(p).Forward(zt)
				whole := TraceHessianWithGradHost(h, fused)
				closeTo("whole Tr D²L", whole, wantF)
				for k := range wantG {
					closeTo(fmt.Sprintf("whole ∂F/∂z[%d]", k), fused[k], wantG[k])
				}
				if whole != tr.Trace() {
					t.Errorf("%s: Tr D²L over blocks %.17g, whole %.17g", name, tr.Trace(), whole)
				}
				for k := range fused {
					if fused[k] != grad[k] {
						t.Fatalf("%s: ∂F/∂z[%d] over blocks %.17g, whole %.17g", name, k, grad[k], fused[k])
					}
				}
			}
		}
	}
}
