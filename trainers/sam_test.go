package trainers

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// fullSAMReference is SAM by its definition with plain autodiff on
// L = Σ_i ℓ_i: g = ∇L(Θ), then Θ − η ∇L(Θ + ρ g/‖g‖).
func fullSAMReference(p *model.Problem, theta *Node, rho, eta float64) *Node {
	loss := func(th *Node) *Node {
		var sum *Node
		for i := range p.N {
			if l := exampleLoss(p, th, i); sum == nil {
				sum = l
			} else {
				sum = Add(sum, l)
			}
		}
		return sum
	}
	g := Gradient(loss(theta), theta)[0]
	pert := Add(theta, MulScalar(Div(g, Sqrt(ReduceAllSum(Square(g)))), rho))
	return Sub(theta, MulScalar(Gradient(loss(pert), pert)[0], eta))
}

// maxAbsDiff returns max_k |a_k − b_k| and max_k |b_k|.
func maxAbsDiff(a, b []float64) (diff, scale float64) {
	for k := range b {
		diff = max(diff, math.Abs(a[k]-b[k]))
		scale = max(scale, math.Abs(b[k]))
	}
	return diff, scale
}

// hostFeatures returns Θ Xᵀ [m, n] with plain loops.
func hostFeatures(p *model.Problem, theta []float64) []float64 {
	zt := make([]float64, p.M*p.N)
	for j := range p.M {
		for i := range p.N {
			for c := range p.D {
				zt[j*p.N+i] += theta[j*p.D+c] * p.X[i*p.D+c]
			}
		}
	}
	return zt
}

// One step of the trainer is the definition's step, under both engines and
// (feature engine) on the host and in graphs: the Θ engine's move of Θ and
// the feature engine's move of Zᵀ = ΘXᵀ (compared before Θ is formed from
// them, which adds G⁺'s rounding) within 1e-12 of the move's size.
func TestFullSAMStepMatchesDefinition(t *testing.T) {
	b := testBackend(t)
	for _, nu := range []float64{0, 0.3} {
		act, _ := model.NewActivation("cubic", nu, 1)
		p, theta := randomProblem(t, act, 4, 5, 6, 11)
		cfg := DefaultConfig()
		cfg.Rho, cfg.Eta = 0.07, 0.01
		want := tensors.MustCopyFlatData[float64](MustExecOnce(b, func(th *Node) *Node {
			return fullSAMReference(p, th, cfg.Rho, cfg.Eta)
		}, tensors.FromFlatDataAndDimensions(theta, p.M, p.D)))
		for _, path := range []struct {
			engine string
			graphs bool
		}{{EngineTheta, false}, {EngineFeature, false}, {EngineFeature, true}} {
			engine := path.engine
			cfg.Engine, cfg.Graphs = engine, path.graphs
			tr := newTrainer(t, "sam", p, cfg)
			if tr.Engine() != engine || OnHost(tr) != (engine == EngineFeature && !path.graphs && !GraphsForced()) {
				t.Fatalf("asked for the %s engine (graphs %v), got %s on %s", engine, path.graphs, tr.Engine(), tr.Path())
			}
			s, _ := NewState(p, theta, 1)
			if err := tr.Init(s); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Step(s); err != nil {
				t.Fatal(err)
			}
			got, ref, start := s.FeatureValues(), hostFeatures(p, want), hostFeatures(p, theta)
			if engine == EngineTheta {
				got, ref, start = s.ThetaValues(), want, theta
			}
			move := make([]float64, len(ref))
			gotMove := make([]float64, len(ref))
			for k := range ref {
				move[k], gotMove[k] = ref[k]-start[k], got[k]-start[k]
			}
			if d, scale := maxAbsDiff(gotMove, move); !(d <= 1e-12*scale) || scale == 0 {
				t.Errorf("ν=%g, %s engine on %s: step differs from the definition's by %.3g (step size %.3g)", nu, engine, tr.Path(), d, scale)
			}
		}
	}
}

// ∇L = 0 (Θ = 0 with y = 0 for an odd φ): no perturbation, no NaN, no move.
func TestFullSAMAtZeroGradient(t *testing.T) {
	act, _ := model.NewActivation("cubic", 0.4, 1)
	p, _ := randomProblem(t, act, 3, 4, 5, 2)
	p.Y = make([]float64, p.N)
	theta := make([]float64, p.M*p.D)
	for _, engine := range []string{EngineTheta, EngineFeature, "host"} {
		cfg := DefaultConfig()
		cfg.Engine, cfg.Graphs = engine, true
		if engine == "host" {
			cfg.Engine, cfg.Graphs = EngineFeature, false
		}
		tr := newTrainer(t, "sam", p, cfg)
		s, _ := NewState(p, theta, 1)
		if err := tr.Init(s); err != nil {
			t.Fatal(err)
		}
		loss, err := tr.Advance(s, 3)
		if err != nil || loss != 0 {
			t.Fatalf("%s: loss %g, err %v", engine, loss, err)
		}
		for k, v := range synced(t, tr, s).Value().([][]float64) {
			for c, x := range v {
				if x != 0 {
					t.Fatalf("%s: Θ[%d,%d] moved to %g from a point with ∇L = 0", engine, k, c, x)
				}
			}
		}
	}
}

// SAM fits Figure 1a's data at η = 0.02 (the CLI's --eta auto is tested
// in cmd/flatmin): the loss falls by orders of magnitude, to the floor that
// SAM's fixed point keeps (∇L(Θ + ρu) = 0 is not L = 0).
func TestFullSAMTrains(t *testing.T) {
	for _, m := range []int{10, 64} {
		p := syntheticProblem(t, 3, 3, m, 0.1, "uniform:0.5,1", 1)
		cfg := DefaultConfig()
		cfg.Eta = 0.02
		tr := newTrainer(t, "sam", p, cfg)
		s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5*math.Sqrt(10/float64(m)), 2), 1)
		if err := tr.Init(s); err != nil {
			t.Fatal(err)
		}
		first, err := tr.Step(s)
		if err != nil {
			t.Fatal(err)
		}
		last, err := tr.Advance(s, 3000)
		if err != nil {
			t.Fatal(err)
		}
		if !(last < 1e-3*first) {
			t.Errorf("m=%d: loss %g → %g after 3000 steps", m, first, last)
		}
	}
}

// The host path (feature engine on SimpleGo) follows the graphs: Θ equal to
// 1e-9 relative after 4000 steps, with unit and random weights, and the
// logged losses alike.
func TestFullSAMHostFollowsGraphs(t *testing.T) {
	skipWhenGraphsForced(t)
	for _, unit := range []bool{true, false} {
		p := syntheticProblem(t, 4, 9, 16, 0.1, "uniform:0.5,1", 3)
		if !unit {
			randomWeights(p, rand.New(rand.NewPCG(1, 2)))
		}
		cfg := DefaultConfig()
		cfg.Engine = EngineFeature
		if tr := newTrainer(t, "sam", p, cfg); !OnHost(tr) {
			t.Fatalf("trainer %T, want the host one", tr)
		}
		host, hostRows := runEngine(t, "sam", p, cfg, 4000)
		cfg.Graphs = true
		graph, graphRows := runEngine(t, "sam", p, cfg, 4000)
		if d := relDiff(host, graph); !(d < 1e-9) {
			t.Errorf("unit=%v: Θ differs between host and graphs by %.3g relative after 4000 steps", unit, d)
		}
		for i := range hostRows {
			if a, g := hostRows[i].Loss, graphRows[i].Loss; math.Abs(a-g) > 1e-8*(1+g) {
				t.Errorf("unit=%v step %d: loss %.15g, graphs %.15g", unit, hostRows[i].Step, a, g)
			}
		}
	}
}
