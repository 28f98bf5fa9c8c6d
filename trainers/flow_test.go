package trainers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// near fails t unless got and want agree to tol relative to want's size.
func nearSlices(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 0.0
	for _, w := range want {
		scale = math.Max(scale, math.Abs(w))
	}
	for k := range want {
		if !(math.Abs(got[k]-want[k]) <= tol*(1+scale)) {
			t.Fatalf("%s[%d]: host %.17g, graphs %.17g", what, k, got[k], want[k])
		}
	}
}

func flat(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	return tensors.MustCopyFlatData[float64](x)
}

// Each computation of the host flow equals the graph flow's at random
// feature points (off the manifold), with unit and random weights and for
// the cubic and a higher odd activation.
func TestHostFlowMatchesGraphFlow(t *testing.T) {
	b := testBackend(t)
	for _, tc := range []struct {
		act  string
		nu   float64
		k    int
		unit bool
	}{{"cubic", 0.1, 1, true}, {"cubic", 0.3, 1, false}, {"odd", 0.2, 2, true}} {
		t.Run(fmt.Sprintf("%s/k=%d/unit=%v", tc.act, tc.k, tc.unit), func(t *testing.T) {
			act, _ := model.NewActivation(tc.act, tc.nu, tc.k)
			p := syntheticProblem(t, 5, 7, 12, 0.1, "uniform:0.5,1", 2)
			p.Act = act
			rng := rand.New(rand.NewPCG(5, 6))
			if !tc.unit {
				randomWeights(p, rng)
			}
			eng, err := newEngine(b, p, EngineFeature)
			if err != nil {
				t.Fatal(err)
			}
			gf, err := newGraphFlow(b, p, eng)
			if err != nil {
				t.Fatal(err)
			}
			hf := newHostFlow(p)
			gauss := func(k int, s float64) []float64 {
				out := make([]float64, k)
				for i := range out {
					out[i] = s * rng.NormFloat64()
				}
				return out
			}
			zt := tensors.FromFlatDataAndDimensions(gauss(p.M*p.N, 0.4), p.M, p.N)
			const tol = 1e-12

			r, jjt, _ := gf.residual(zt)
			hr, hjjt, _ := hf.residual(zt)
			nearSlices(t, "residual r", hr, r, tol)
			nearSlices(t, "residual JJᵀ", hjjt, jjt, tol)

			delta := gauss(p.N, 0.1)
			next, r, jjt, _ := gf.correct(zt, delta)
			hnext, hr, hjjt, _ := hf.correct(zt, delta)
			nearSlices(t, "correct point", flat(t, hnext), flat(t, next), tol)
			nearSlices(t, "correct r", hr, r, tol)
			nearSlices(t, "correct JJᵀ", hjjt, jjt, tol)

			tp, err := gf.at(zt)
			if err != nil {
				t.Fatal(err)
			}
			htp, _ := hf.at(zt)
			nearSlices(t, "F", []float64{htp.F}, []float64{tp.F}, tol)
			nearSlices(t, "∇F", flat(t, htp.grad), flat(t, tp.grad), tol)
			nearSlices(t, "J∇F", htp.jg, tp.jg, tol)
			nearSlices(t, "at JJᵀ", htp.jjt, tp.jjt, tol)

			c := gauss(p.N, 1)
			pg, u, nrm, err := gf.ts.projectAt(tp, c)
			if err != nil {
				t.Fatal(err)
			}
			hpg, hu, hnrm, _ := hf.projectAt(htp, c)
			nearSlices(t, "P∇F", flat(t, hpg), flat(t, pg), tol)
			nearSlices(t, "velocity", flat(t, hu), flat(t, u), tol)
			nearSlices(t, "‖P∇F‖", []float64{hnrm}, []float64{nrm}, tol)
			gn, _ := gf.ts.normAt(tp, c)
			hn, _ := hf.normAt(htp, c)
			nearSlices(t, "normAt", []float64{hn}, []float64{gn}, tol)

			cand, r, jjt, _ := gf.move(zt, u, 0.3)
			hcand, hr, hjjt, _ := hf.move(zt, u, 0.3)
			nearSlices(t, "move point", flat(t, hcand), flat(t, cand), tol)
			nearSlices(t, "move r", hr, r, tol)
			nearSlices(t, "move JJᵀ", hjjt, jjt, tol)
		})
	}
}

// On SimpleGo the feature engine's Riemannian flow runs on the host, and
// follows the graph flow's trajectory: Θ equal to 1e-9 after 400 steps.
func TestHostFlowFollowsGraphTrajectory(t *testing.T) {
	skipWhenGraphsForced(t)
	b := testBackend(t)
	p := syntheticProblem(t, 4, 9, 16, 0.1, "uniform:0.5,1", 3)
	cfg := DefaultConfig()
	cfg.Eta = DefaultEta("riemannian")
	cfg.Engine = EngineFeature
	if tr := newTrainer(t, "riemannian", p, cfg); !useHostFlow(b, tr.(*riemannian).eng) || !OnHost(tr) {
		t.Fatalf("the feature engine on SimpleGo should take the host flow, has %T", tr.(*riemannian).fl)
	}
	host, _ := runEngine(t, "riemannian", p, cfg, 400)
	cfg.Graphs = true
	if tr := newTrainer(t, "riemannian", p, cfg); OnHost(tr) {
		t.Fatalf("graphs set, flow is %T", tr.(*riemannian).fl)
	}
	graph, _ := runEngine(t, "riemannian", p, cfg, 400)
	if d := relDiff(host, graph); !(d < 1e-9) {
		t.Errorf("Θ differs between the host and graph flows by %.3g relative after 400 steps", d)
	}
}

// gd, label-noise SGD and 1-SAM on the host (SimpleGo) follow the fused
// graphs under both engines: the same draws (the counter stream on the
// host), Θ equal to 1e-9 after 4000 steps, with unit and random weights.
func TestHostTrainersFollowGraphs(t *testing.T) {
	skipWhenGraphsForced(t)
	for _, unit := range []bool{true, false} {
		p := syntheticProblem(t, 4, 9, 16, 0.1, "uniform:0.5,1", 3)
		if !unit {
			randomWeights(p, rand.New(rand.NewPCG(1, 2)))
		}
		for _, name := range []string{"gd", "labelnoise", "sam1"} {
			for _, engine := range []string{EngineTheta, EngineFeature} {
				cfg := DefaultConfig()
				cfg.Eta = DefaultEta(name)
				cfg.Sigma, cfg.SAMBatch = 0.1, 3
				cfg.Engine = engine
				if tr := newTrainer(t, name, p, cfg); !OnHost(tr) {
					t.Fatalf("%s/%s: trainer %T, want the host one", name, engine, tr)
				}
				host, hostRows := runEngine(t, name, p, cfg, 4000)
				cfg.Graphs = true
				if tr := newTrainer(t, name, p, cfg); OnHost(tr) {
					t.Fatalf("%s/%s: graphs set, trainer %T", name, engine, tr)
				}
				graph, graphRows := runEngine(t, name, p, cfg, 4000)
				if d := relDiff(host, graph); !(d < 1e-9) {
					t.Errorf("%s/%s unit=%v: Θ differs between host and graphs by %.3g relative after 4000 steps", name, engine, unit, d)
				}
				for i := range hostRows {
					if a, g := hostRows[i].Loss, graphRows[i].Loss; math.Abs(a-g) > 1e-8*(1+g) {
						t.Errorf("%s/%s unit=%v step %d: loss %.15g, graphs %.15g", name, engine, unit, hostRows[i].Step, a, g)
					}
				}
			}
		}
	}
}

// The host trainers take every size on SimpleGo (not with Graphs set):
// whole arrays up to hostLimit values in Θ, Zᵀ and Θ₀, blocks of
// hostBlockValues above it.
func TestHostLimit(t *testing.T) {
	b := testBackend(t)
	for _, tc := range []struct {
		m, d, n int
		rows    int
	}{
		{10, 3, 3, 10},
		{10000, 256, 64, 256},   // Θ 2.56M
		{10000, 100, 64, 10000}, // 1M
		{100000, 256, 64, 256},  // Zᵀ 6.4M
		{1000, 100, 2000, 32},   // Θ 100k, but Zᵀ 2M
		{2000000, 3, 3, 21845},
	} {
		p := &model.Problem{M: tc.m, D: tc.d, N: tc.n}
		if !useHost(b, DefaultConfig().Execution) {
			t.Errorf("(%d,%d,%d): not on the host", tc.m, tc.d, tc.n)
		}
		if got := hostRowsPerBlock(p); got != tc.rows {
			t.Errorf("(%d,%d,%d): %d rows a block, want %d", tc.m, tc.d, tc.n, got, tc.rows)
		}
	}
	cfg := DefaultConfig()
	cfg.Graphs = true
	if useHost(b, cfg.Execution) {
		t.Error("useHost with graphs set")
	}
}

// randomWeights sets w to values in [0.5, 1.5), so no formula can lean on w = 1.
func randomWeights(p *model.Problem, rng *rand.Rand) {
	for j := range p.W {
		p.W[j] = 0.5 + rng.Float64()
	}
}

// The host flow reuses the tensors of points a step discards, never a state:
// every state of a run (halved steps included) keeps its values, and each
// state is the graph flow's at that step.
func TestHostFlowKeepsStates(t *testing.T) {
	p := syntheticProblem(t, 4, 9, 16, 0.1, "uniform:0.5,1", 3)
	cfg := DefaultConfig()
	cfg.Eta = DefaultEta("riemannian") // η = 1: the first steps are halved
	cfg.Engine = EngineFeature
	theta0 := model.InitTheta(p.M, p.D, 0.5/math.Sqrt(float64(p.D)), 7)
	run := func(graphs bool) (states []*tensors.Tensor, values [][]float64, halvings float64) {
		cfg.Graphs = graphs
		tr := newTrainer(t, "riemannian", p, cfg)
		s, _ := NewState(p, theta0, 11)
		if err := tr.Init(s); err != nil {
			t.Fatal(err)
		}
		for range 40 {
			steps(t, tr, s, 1)
			states = append(states, s.Features)
			values = append(values, flat(t, s.Features))
		}
		return states, values, s.Extra[extraHalvings]
	}
	states, values, halvings := run(false)
	if halvings == 0 {
		t.Fatal("no step was halved: the test should cover rejected candidates")
	}
	_, graphValues, _ := run(true)
	for k, st := range states {
		for l := range k {
			if states[l] == st {
				t.Fatalf("steps %d and %d share a state tensor", l+1, k+1)
			}
		}
		if got := flat(t, st); fmt.Sprint(got) != fmt.Sprint(values[k]) {
			t.Fatalf("the state of step %d changed after later steps", k+1)
		}
		nearSlices(t, fmt.Sprintf("step %d Zᵀ", k+1), values[k], graphValues[k], 1e-10)
	}
}

// skipWhenGraphsForced skips a test that holds a host path to the graphs:
// under $FLATMIN_GRAPHS=1 there is no host path to hold.
func skipWhenGraphsForced(t *testing.T) {
	t.Helper()
	if GraphsForced() {
		t.Skip("$FLATMIN_GRAPHS=1: every path is the graphs'")
	}
}
