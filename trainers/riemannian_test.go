package trainers

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

func syntheticProblem(t testing.TB, n, d, m int, nu float64, labels string, seed uint64) *model.Problem {
	act, err := model.NewActivation("cubic", nu, 1)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := model.ParseLabels(labels)
	x, y, err := model.Synthetic(n, d, spec, act, seed)
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewProblem(x, n, d, y, nil, m, act)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The flow with its default step size reaches the theory's optimum on random
// data with n ≤ d and ν > 0, within 20000 steps.
func TestRiemannianReachesTheoryOptimum(t *testing.T) {
	b := testBackend(t)
	for _, tc := range []struct {
		n, d, m int
		nu      float64
		seed    uint64
	}{
		{3, 3, 10, 0.1, 1}, {3, 3, 10, 0.5, 2}, {3, 3, 10, 1, 4}, // Figure 1a's shape
		{2, 4, 5, 1, 3}, {3, 5, 6, 0.5, 3}, {4, 6, 8, 0.1, 4},
	} {
		p := syntheticProblem(t, tc.n, tc.d, tc.m, tc.nu, "uniform:0.5,1", tc.seed)
		cfg := DefaultConfig()
		cfg.Eta = DefaultEta("riemannian")
		tr := newTrainer(t, "riemannian", p, cfg)
		ev, err := NewEvaluator(b, p)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, tc.seed), tc.seed)
		if err := tr.Init(s); err != nil {
			t.Fatal(err)
		}
		var grads []float64
		var m Metrics
		done := false
		for s.Step < 20000 && !done {
			if m, err = ev.Measure(synced(t, tr, s)); err != nil {
				t.Fatal(err)
			}
			grads = append(grads, m.RiemannianGradNorm)
			ratio := m.TraceHessianManifold/m.TraceMin - 1
			done = m.TheoryGap < 1e-8 && math.Abs(ratio) < 1e-10 && m.Loss < 1e-28
			steps(t, tr, s, 250)
		}
		name := func() string { return p.Act.Name() }
		if !done {
			t.Errorf("n=%d d=%d %s seed %d: after %d steps theory gap %.3g, trace ratio−1 %.3g, loss %.3g",
				tc.n, tc.d, name(), tc.seed, s.Step, m.TheoryGap, m.TraceHessianManifold/m.TraceMin-1, m.Loss)
			continue
		}
		// ‖grad_M F‖ decreases: by many orders overall, and block by block
		// (each quarter of the run peaks below the one before; within a block
		// the step size may briefly overshoot a stiff direction).
		if last := grads[len(grads)-1]; !(last < 1e-6*grads[0]) {
			t.Errorf("n=%d d=%d %s: ‖grad_M F‖ went from %g to %g only", tc.n, tc.d, name(), grads[0], last)
		}
		q := len(grads) / 4
		for k := 1; q > 0 && k < 4; k++ {
			prev, cur := slices.Max(grads[(k-1)*q:k*q]), slices.Max(grads[k*q:(k+1)*q])
			if cur >= prev && cur > 1e-12 {
				t.Errorf("n=%d d=%d %s: ‖grad_M F‖ peaks at %g in quarter %d, after %g", tc.n, tc.d, name(), cur, k+1, prev)
			}
		}
	}
}

// denseJacobian builds J (n × md) row by row with autodiff of f_i.
func denseJacobian(t *testing.T, p *model.Problem, theta *tensors.Tensor) *mat.Dense {
	b := testBackend(t)
	outs := MustExecOnceN(b, func(th *Node) []*Node {
		fw := model.NewNet(th.Graph(), p).Forward(th)
		var rows []*Node
		for i := range p.N {
			rows = append(rows, Gradient(ReduceAllSum(Mul(fw.F, OneHot(Const(th.Graph(), int32(i)), p.N, fw.F.DType()))), th)[0])
		}
		return rows
	}, theta)
	j := mat.NewDense(p.N, p.M*p.D, nil)
	for i, o := range outs {
		j.SetRow(i, tensors.MustCopyFlatData[float64](o))
	}
	return j
}

// ‖grad_M F‖ from the structured products equals the norm of ∇F minus its
// least-squares projection on the rows of a dense J (gonum QR).
func TestRiemannianGradNormMatchesDenseProjection(t *testing.T) {
	b := testBackend(t)
	p, th, d := denseProjectionCase(t, b)
	grad, normal := d.grad, d.normal
	want := 0.0
	for k := range grad {
		d := grad[k] - normal.AtVec(k)
		want += d * d
	}
	want = math.Sqrt(want)
	ev, _ := NewEvaluator(b, p)
	m, err := ev.Measure(th)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.RiemannianGradNorm-want) > 1e-9*want {
		t.Errorf("‖P∇F‖ = %.15g, dense projection %.15g", m.RiemannianGradNorm, want)
	}
}

// Theorem 2's optimum is stationary: its Riemannian gradient vanishes.
func TestTheoryOptimumIsStationary(t *testing.T) {
	b := testBackend(t)
	p := syntheticProblem(t, 3, 5, 4, 0.4, "uniform:0.5,2", 3)
	theta, err := regularizers.PredictOptimum(p).Theta(p)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := NewEvaluator(b, p)
	m, err := ev.Measure(tensors.FromFlatDataAndDimensions(theta, p.M, p.D))
	if err != nil {
		t.Fatal(err)
	}
	if m.RiemannianGradNorm > 1e-12*m.TraceHessian || m.TheoryGap > 1e-14 || m.Loss > 1e-28 {
		t.Errorf("at the predicted optimum: ‖grad_M F‖ %g, gap %g, loss %g", m.RiemannianGradNorm, m.TheoryGap, m.Loss)
	}
	if m.EffectiveRank > 1+1e-9 {
		t.Errorf("effective rank %g at a rank-one Z", m.EffectiveRank)
	}
}

func TestRiemannianRefuses(t *testing.T) {
	b := testBackend(t)
	neg := syntheticProblem(t, 3, 3, 5, -0.5, "uniform:0.5,1", 1)
	if _, err := New("riemannian", b, neg, DefaultConfig()); err == nil || !strings.Contains(err.Error(), "φ'") {
		t.Errorf("ν < 0: %v", err)
	}
	p := syntheticProblem(t, 3, 3, 5, 0.5, "uniform:0.5,1", 1)
	cfg := DefaultConfig()
	cfg.RetractTol = 0
	if _, err := New("riemannian", b, p, cfg); err == nil {
		t.Error("retract tolerance 0 accepted")
	}
	// Two copies of one data point: J has two equal rows, J Jᵀ is singular.
	dup := syntheticProblem(t, 3, 3, 5, 0.5, "const:0.7", 1)
	copy(dup.X[3:6], dup.X[0:3])
	tr, err := New("riemannian", b, dup, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewState(dup, model.InitTheta(dup.M, dup.D, 0.5, 1), 1)
	if err := tr.Init(s); err == nil || !strings.Contains(err.Error(), "singular") {
		t.Errorf("duplicate rows: %v", err)
	}
}

// From a point on the manifold with a large trace, label-noise SGD and 1-SAM
// on Figure 1a's data both lower Tr D²L toward its minimum.
func TestStochasticTrainersLowerTheTrace(t *testing.T) {
	b := testBackend(t)
	p := syntheticProblem(t, 3, 3, 10, 0.1, "uniform:0.5,1", 1)
	ev, _ := NewEvaluator(b, p)
	start, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, 1), 1)
	rt := newTrainer(t, "riemannian", p, Config{Eta: 1, RetractTol: 1e-12})
	if err := rt.Init(start); err != nil {
		t.Fatal(err)
	}
	synced(t, rt, start)
	m0, _ := ev.Measure(start.Theta)
	for _, tc := range []struct {
		trainer string
		cfg     Config
	}{
		{"labelnoise", Config{Eta: 0.05, Sigma: 0.3}},
		{"sam1", Config{Eta: 0.05, Rho: 0.1, SAMBatch: 1}},
	} {
		s := &State{Theta: start.Theta, RNG: start.RNG, Extra: map[string]float64{}}
		_, err := Run(context.Background(), newTrainer(t, tc.trainer, p, tc.cfg), ev, s, LoopConfig{Steps: 20000, LogEvery: 20000}, &memorySink{})
		if err != nil {
			t.Fatal(err)
		}
		m, _ := ev.MeasureState(s)
		gap0, gap := m0.TraceHessianManifold-m0.TraceMin, m.TraceHessianManifold-m.TraceMin
		t.Logf("%s: Tr D²L on M %.4f → %.4f (F* %.4f), σ2/σ1 %.3g → %.3g", tc.trainer, m0.TraceHessianManifold,
			m.TraceHessianManifold, m.TraceMin, m0.SingularValuesZ[1]/m0.SingularValuesZ[0], m.SingularValuesZ[1]/m.SingularValuesZ[0])
		if !(gap < 0.5*gap0) || m.Loss > 0.1 {
			t.Errorf("%s: Tr D²L − F* went from %g to %g (loss %g)", tc.trainer, gap0, gap, m.Loss)
		}
	}
}

// With tanh a long first step saturates neurons and J Jᵀ is singular at the
// candidate point: that must shorten the step, not end the run.
func TestRiemannianShortensStepsThatSaturate(t *testing.T) {
	act, _ := model.NewActivation("tanh", 0, 0)
	spec, _ := model.ParseLabels("uniform:0.5,1")
	x, y, _ := model.Synthetic(3, 3, spec, act, 1)
	p, err := model.NewProblem(x, 3, 3, y, nil, 10, act)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTrainer(t, "riemannian", p, Config{Eta: 1, RetractTol: 1e-12})
	s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, 1), 1)
	if err := tr.Init(s); err != nil {
		t.Fatal(err)
	}
	ev, _ := NewEvaluator(testBackend(t), p)
	m0, _ := ev.Measure(synced(t, tr, s))
	steps(t, tr, s, 200)
	m, _ := ev.Measure(s.Theta)
	if s.Extra["halvings"] == 0 || !(m.TraceHessian < m0.TraceHessian) || m.Loss > 1e-20 {
		t.Errorf("halvings %v, Tr D²L %g → %g, loss %g", s.Extra["halvings"], m0.TraceHessian, m.TraceHessian, m.Loss)
	}
}

// Step returns L = Σ(f − y)² at Θ before the step, on the host flow and in
// graphs: against the evaluator's loss there (Forward.Loss). A loose
// retraction keeps ‖r‖ (~1e-10) well above the rounding of f (~1e-16), so
// the two norms agree to 1e-12‖y‖ (a loss of ‖r‖, 2‖r‖² or ‖r‖²/n would not).
func TestRiemannianStepReturnsLoss(t *testing.T) {
	p := syntheticProblem(t, 4, 6, 12, 0.2, "uniform:0.5,1", 3)
	for _, graphs := range []bool{false, true} {
		tr := newTrainer(t, "riemannian", p, Config{Eta: 0.01, RetractTol: 1e-2, Execution: Execution{Graphs: graphs}})
		s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, 1), 1)
		if err := tr.Init(s); err != nil {
			t.Fatal(err)
		}
		ev, _ := NewEvaluator(testBackend(t), p)
		m, err := ev.Measure(synced(t, tr, s))
		if err != nil {
			t.Fatal(err)
		}
		loss, err := tr.Step(s)
		if err != nil {
			t.Fatal(err)
		}
		yNorm := math.Sqrt(model.HostDot(p.Y, p.Y))
		if !(m.Loss > 1e-24) || math.Abs(math.Sqrt(loss)-math.Sqrt(m.Loss)) > 1e-12*yNorm {
			t.Errorf("graphs=%v: Step's loss %.15g, evaluator's %.15g", graphs, loss, m.Loss)
		}
	}
}

// denseProjection is the dense reference of the tangent projection at one
// Θ: ∇F by autodiff, a dense J, c = argmin ‖Jᵀc − ∇F‖ (gonum QR) and the
// normal component Jᵀc.
type denseProjection struct {
	grad      []float64
	j         *mat.Dense
	c, normal mat.VecDense
}

// denseProjectionCase is a random cubic problem with ν = 0.3, off the
// manifold, its Θ and the dense reference there.
func denseProjectionCase(t *testing.T, b backends.Backend) (*model.Problem, *tensors.Tensor, *denseProjection) {
	t.Helper()
	act, _ := model.NewActivation("cubic", 0.3, 1)
	p, theta := randomProblem(t, act, 3, 4, 3, 12)
	th := tensors.FromFlatDataAndDimensions(theta, p.M, p.D)
	d := &denseProjection{grad: tensors.MustCopyFlatData[float64](MustExecOnce(b, func(x *Node) *Node {
		return regularizers.TraceHessianGrad(model.NewNet(x.Graph(), p).Forward(x))
	}, th))}
	d.j = denseJacobian(t, p, th)
	var qr mat.QR
	qr.Factorize(d.j.T())
	if err := qr.SolveVecTo(&d.c, false, mat.NewVecDense(len(d.grad), d.grad)); err != nil {
		t.Fatal(err)
	}
	d.normal.MulVec(d.j.T(), &d.c)
	return p, th, d
}
