package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/internal/backend"
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

// randomProblem has non-unit rows and non-ones w, so no formula can lean on
// the paper's normalisation.
func randomProblem(t testing.TB, n, m, d int, act Activation, seed uint64) (*Problem, []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	gauss := func(k int, scale float64) []float64 {
		out := make([]float64, k)
		for i := range out {
			out[i] = scale * rng.NormFloat64()
		}
		return out
	}
	w := gauss(m, 1)
	p, err := NewProblem(gauss(n*d, 1), n, d, gauss(n, 1), w, m, act)
	if err != nil {
		t.Fatal(err)
	}
	return p, gauss(m*d, 0.5)
}

// hostLoss is Σ_i (Σ_j w_j φ(θ_j·x_i) − y_i)² by plain loops: independent of the graph code.
func hostLoss(p *Problem, theta []float64) float64 {
	l := 0.0
	for i := range p.N {
		f := 0.0
		for j := range p.M {
			z := 0.0
			for c := range p.D {
				z += theta[j*p.D+c] * p.X[i*p.D+c]
			}
			f += p.W[j] * p.Act.Host(z, 0)
		}
		l += (f - p.Y[i]) * (f - p.Y[i])
	}
	return l
}

func thetaTensor(p *Problem, theta []float64) *tensors.Tensor {
	return tensors.FromFlatDataAndDimensions(append([]float64(nil), theta...), p.M, p.D)
}

func TestLossAndGradient(t *testing.T) {
	b := testBackend(t)
	for _, a := range testActivations(t) {
		p, theta := randomProblem(t, 4, 5, 3, a, 7)
		outs := MustExecOnceN(b, func(th *Node) []*Node {
			fw := NewNet(th.Graph(), p).Forward(th)
			return []*Node{fw.Loss(), fw.LossGrad(), Gradient(fw.Loss(), th)[0]}
		}, thetaTensor(p, theta))
		loss := tensors.ToScalar[float64](outs[0])
		if want := hostLoss(p, theta); math.Abs(loss-want) > 1e-12*(1+want) {
			t.Errorf("%s: loss %g, host loops %g", a.Name(), loss, want)
		}
		grad := tensors.MustCopyFlatData[float64](outs[1])
		auto := tensors.MustCopyFlatData[float64](outs[2])
		for k := range theta {
			const h = 1e-6
			tp, tm := append([]float64(nil), theta...), append([]float64(nil), theta...)
			tp[k] += h
			tm[k] -= h
			fd := (hostLoss(p, tp) - hostLoss(p, tm)) / (2 * h)
			if math.Abs(grad[k]-fd) > 1e-5*(1+math.Abs(fd)) {
				t.Errorf("%s: ∂L/∂θ[%d] = %g, finite differences %g", a.Name(), k, grad[k], fd)
			}
			if math.Abs(grad[k]-auto[k]) > 1e-12*(1+math.Abs(auto[k])) {
				t.Errorf("%s: 2Jᵀr[%d] = %g, autodiff %g", a.Name(), k, grad[k], auto[k])
			}
		}
	}
}

// J is built row by row with autodiff (J_i = ∇f_i); the structured products must match it.
func TestJacobianProducts(t *testing.T) {
	b := testBackend(t)
	act, _ := NewActivation("cubic", 0.2, 1)
	p, theta := randomProblem(t, 4, 6, 3, act, 11)
	rng := rand.New(rand.NewPCG(3, 3))
	v := make([]float64, p.M*p.D)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	c := make([]float64, p.N)
	for i := range c {
		c[i] = rng.NormFloat64()
	}
	outs := MustExecOnceN(b, func(th, vn, cn *Node) []*Node {
		fw := NewNet(th.Graph(), p).Forward(th)
		out := []*Node{fw.Jv(vn), fw.JTc(cn), fw.JJT()}
		for i := range p.N {
			out = append(out, Gradient(ReduceAllSum(Mul(fw.F, OneHot(Const(th.Graph(), int32(i)), p.N, fw.F.DType()))), th)[0])
		}
		return out
	}, thetaTensor(p, theta), tensors.FromFlatDataAndDimensions(v, p.M, p.D), tensors.FromFlatDataAndDimensions(c, p.N))
	jv := tensors.MustCopyFlatData[float64](outs[0])
	jtc := tensors.MustCopyFlatData[float64](outs[1])
	jjt := tensors.MustCopyFlatData[float64](outs[2])
	J := make([][]float64, p.N)
	for i := range p.N {
		J[i] = tensors.MustCopyFlatData[float64](outs[3+i])
	}
	near := func(what string, got, want float64) {
		if math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
			t.Errorf("%s: structured %g, from J %g", what, got, want)
		}
	}
	for i := range p.N {
		s := 0.0
		for k := range v {
			s += J[i][k] * v[k]
		}
		near("Jv", jv[i], s)
		for l := range p.N {
			s := 0.0
			for k := range v {
				s += J[i][k] * J[l][k]
			}
			near("JJᵀ", jjt[i*p.N+l], s)
		}
	}
	for k := range v {
		s := 0.0
		for i := range p.N {
			s += J[i][k] * c[i]
		}
		near("Jᵀc", jtc[k], s)
	}
}

// A batch of Θ gives the same losses as each Θ alone.
func TestBatchedForward(t *testing.T) {
	b := testBackend(t)
	act, _ := NewActivation("tanh", 0, 0)
	p, theta := randomProblem(t, 3, 4, 2, act, 5)
	_, theta2 := randomProblem(t, 3, 4, 2, act, 6)
	batch := tensors.FromFlatDataAndDimensions(append(append([]float64(nil), theta...), theta2...), 2, p.M, p.D)
	out := MustExecOnce(b, func(th *Node) *Node { return NewNet(th.Graph(), p).Forward(th).Loss() }, batch)
	got := tensors.MustCopyFlatData[float64](out)
	for k, th := range [][]float64{theta, theta2} {
		if want := hostLoss(p, th); math.Abs(got[k]-want) > 1e-12*(1+want) {
			t.Errorf("batch %d: loss %g, want %g", k, got[k], want)
		}
	}
}

func TestProblemValidate(t *testing.T) {
	act, _ := NewActivation("cubic", 0, 1)
	good := func() *Problem {
		return &Problem{X: []float64{1, 0, 0, 1}, Y: []float64{1, 2}, W: []float64{1, 1, 1}, N: 2, D: 2, M: 3, Act: act}
	}
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(p *Problem){
		"zero row":        func(p *Problem) { p.X[2], p.X[3] = 0, 0 },
		"NaN in X":        func(p *Problem) { p.X[1] = math.NaN() },
		"Inf label":       func(p *Problem) { p.Y[0] = math.Inf(1) },
		"short y":         func(p *Problem) { p.Y = p.Y[:1] },
		"w size":          func(p *Problem) { p.W = p.W[:2] },
		"n zero":          func(p *Problem) { p.N = 0 },
		"m negative":      func(p *Problem) { p.M = -1 },
		"X size":          func(p *Problem) { p.X = p.X[:3] },
		"no activation":   func(p *Problem) { p.Act = nil },
		"overflowing row": func(p *Problem) { p.X[0] = 1e200 },
	} {
		p := good()
		mutate(p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
}

// gramOfColumns (blocks of rows, for large neuron-major A) equals AᵀA in one product.
func TestGramOfColumnsMatchesOneProduct(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	const m, n = 9000, 7 // two full blocks and a partial one
	a := make([]float64, m*n)
	for i := range a {
		a[i] = math.Sin(float64(i)*0.37) + 0.1*float64(i%5)
	}
	out := MustExecOnceN(b, func(x *Node) []*Node {
		return []*Node{gramOfColumns(x), DotGeneral(x, []int{0}, nil, x, []int{0}, nil)}
	}, tensors.FromFlatDataAndDimensions(a, m, n))
	got, want := tensors.MustCopyFlatData[float64](out[0]), tensors.MustCopyFlatData[float64](out[1])
	for k := range want {
		if math.Abs(got[k]-want[k]) > 1e-10*(1+math.Abs(want[k])) {
			t.Fatalf("(AᵀA)[%d] by blocks %.15g, in one product %.15g", k, got[k], want[k])
		}
	}
}
