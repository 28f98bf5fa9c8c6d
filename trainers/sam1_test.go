package trainers

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// randomProblem has non-unit rows and non-ones w.
func randomProblem(t testing.TB, act model.Activation, n, m, d int, seed uint64) (*model.Problem, []float64) {
	rng := rand.New(rand.NewPCG(seed, 77))
	g := func(k int, s float64) []float64 {
		out := make([]float64, k)
		for i := range out {
			out[i] = s * rng.NormFloat64()
		}
		return out
	}
	p, err := model.NewProblem(g(n*d, 1), n, d, g(n, 1), g(m, 1), m, act)
	if err != nil {
		t.Fatal(err)
	}
	return p, g(m*d, 0.5)
}

// exampleLoss is ℓ_i(Θ) = (Σ_j w_j φ(θ_j·x_i) − y_i)², written with stock ops.
func exampleLoss(p *model.Problem, theta *Node, i int) *Node {
	g := theta.Graph()
	x := Const(g, tensors.FromFlatDataAndDimensions(append([]float64(nil), p.X[i*p.D:(i+1)*p.D]...), p.D))
	z := DotGeneral(theta, []int{1}, nil, x, []int{0}, nil) // [m]
	a := p.Act.(*model.OddActivation)
	phi := Add(Mul(Mul(z, z), z), MulScalar(z, a.Nu))
	f := ReduceAllSum(Mul(phi, Const(g, tensors.FromFlatDataAndDimensions(p.W, p.M))))
	return Square(Sub(f, Const(g, p.Y[i])))
}

// sequentialSAM is 1-SAM by its definition with plain autodiff: for each
// example, g = ∇ℓ_i(Θ), then ∇ℓ_i at Θ + ρ g/‖g‖; the update averages them.
func sequentialSAM(p *model.Problem, theta *Node, idx []int, rho, eta float64) *Node {
	var sum *Node
	for _, i := range idx {
		g := Gradient(exampleLoss(p, theta, i), theta)[0]
		pert := Add(theta, MulScalar(Div(g, Sqrt(ReduceAllSum(Square(g)))), rho))
		gt := Gradient(exampleLoss(p, pert, i), pert)[0]
		if sum == nil {
			sum = gt
		} else {
			sum = Add(sum, gt)
		}
	}
	return Sub(theta, MulScalar(sum, eta/float64(len(idx))))
}

func TestSAMClosedFormMatchesDefinition(t *testing.T) {
	b := testBackend(t)
	for _, tc := range []struct {
		nu  float64
		idx []int
	}{{0, []int{2}}, {0.3, []int{0}}, {0.3, []int{1, 3, 1, 0}}, {1, []int{4, 2, 0}}} {
		act, _ := model.NewActivation("cubic", tc.nu, 1)
		p, theta := randomProblem(t, act, 5, 6, 3, uint64(len(tc.idx)))
		const rho, eta = 0.07, 0.03
		out := MustExecOnceN(b, func(th *Node) []*Node {
			idx := make([]int32, len(tc.idx))
			for k, i := range tc.idx {
				idx[k] = int32(i)
			}
			fast, _ := samStep(thetaSpace{}, model.NewNet(th.Graph(), p), th, Const(th.Graph(), idx), rho, eta)
			return []*Node{fast, sequentialSAM(p, th, tc.idx, rho, eta)}
		}, tensors.FromFlatDataAndDimensions(theta, p.M, p.D))
		fast, want := tensors.MustCopyFlatData[float64](out[0]), tensors.MustCopyFlatData[float64](out[1])
		for k := range want {
			if math.Abs(fast[k]-want[k]) > 1e-10*(1+math.Abs(want[k])) {
				t.Fatalf("ν=%g batch %v: Θ'[%d] closed form %.15g, definition %.15g", tc.nu, tc.idx, k, fast[k], want[k])
			}
		}
	}
}

// The trainer draws its examples from the RNG state; replaying the draw and
// applying the definition must give the trainer's step.
func TestSAMTrainerStep(t *testing.T) {
	b := testBackend(t)
	act, _ := model.NewActivation("cubic", 0.2, 1)
	p, theta := randomProblem(t, act, 4, 5, 3, 3)
	cfg := DefaultConfig()
	cfg.SAMBatch = 3
	tr := newTrainer(t, "sam1", p, cfg)
	s, _ := NewState(p, theta, 5)
	draw := MustExecOnce(b, func(rng *Node) *Node {
		return drawIndices(streamKey(rng), Const(rng.Graph(), uint64(0)), 1, cfg.SAMBatch, p.N)[0]
	}, s.RNG)
	var idx []int
	for _, i := range tensors.MustCopyFlatData[int32](draw) {
		idx = append(idx, int(i))
	}
	want := tensors.MustCopyFlatData[float64](MustExecOnce(b, func(th *Node) *Node {
		return sequentialSAM(p, th, idx, cfg.Rho, cfg.Eta)
	}, s.Theta))
	steps(t, tr, s, 1)
	for k, v := range s.ThetaValues() {
		if math.Abs(v-want[k]) > 1e-10*(1+math.Abs(want[k])) {
			t.Fatalf("Θ'[%d] = %.15g, definition with examples %v gives %.15g", k, v, idx, want[k])
		}
	}
}

// An example the network already fits has g = 0: no perturbation, no move.
func TestSAMAtZeroResidual(t *testing.T) {
	b := testBackend(t)
	act, _ := model.NewActivation("cubic", 0.2, 1)
	p, theta := randomProblem(t, act, 3, 4, 2, 9)
	f := tensors.MustCopyFlatData[float64](MustExecOnce(b, func(th *Node) *Node {
		return model.NewNet(th.Graph(), p).Forward(th).F
	}, tensors.FromFlatDataAndDimensions(theta, p.M, p.D)))
	p.Y = f
	out := MustExecOnce(b, func(th *Node) *Node {
		next, _ := samStep(thetaSpace{}, model.NewNet(th.Graph(), p), th, Const(th.Graph(), []int32{1}), 0.1, 0.1)
		return next
	}, tensors.FromFlatDataAndDimensions(theta, p.M, p.D))
	for k, v := range tensors.MustCopyFlatData[float64](out) {
		if math.IsNaN(v) || math.Abs(v-theta[k]) > 1e-12 {
			t.Fatalf("Θ[%d] moved from %g to %g at zero residual", k, theta[k], v)
		}
	}
}

func TestPenaltyStepMatchesFiniteDifferences(t *testing.T) {
	b := testBackend(t)
	act, _ := model.NewActivation("cubic", 0.3, 1)
	p, theta := randomProblem(t, act, 3, 4, 2, 4)
	cfg := DefaultConfig()
	cfg.Lambda, cfg.Eta = 0.7, 0.01
	objective := MustNewExec(b, func(th *Node) *Node {
		fw := model.NewNet(th.Graph(), p).Forward(th)
		// The closed-form trace is checked against the autodiff Hessian in regularizers.
		return Add(fw.Loss(), MulScalar(regularizers.TraceHessian(fw), cfg.Lambda))
	})
	s, _ := NewState(p, theta, 1)
	steps(t, newTrainer(t, "penalty", p, cfg), s, 1)
	got := s.ThetaValues()
	for k := range theta {
		const h = 1e-6
		tp, tm := append([]float64(nil), theta...), append([]float64(nil), theta...)
		tp[k] += h
		tm[k] -= h
		v := func(th []float64) float64 {
			return scalar(objective.MustExec(tensors.FromFlatDataAndDimensions(th, p.M, p.D))[0])
		}
		fd := (v(tp) - v(tm)) / (2 * h)
		if want := theta[k] - cfg.Eta*fd; math.Abs(got[k]-want) > 1e-7*(1+math.Abs(want)) {
			t.Errorf("Θ'[%d] = %.12g, η-step on the finite-difference gradient %.12g", k, got[k], want)
		}
	}
}
