package trainers

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// withHostBlocks forces the host trainers' blocks to rows neurons for the
// rest of the test.
func withHostBlocks(t *testing.T, rows int) {
	old := hostBlockRows
	hostBlockRows = rows
	t.Cleanup(func() { hostBlockRows = old })
}

// In blocks (here of 7 neurons, m = 23: three full blocks and a part, on
// all the machine's cores), gd, label-noise SGD and 1-SAM on the host still
// follow the fused graphs under both engines, with unit and random weights:
// Θ equal to 1e-9 relative after 400 steps, the logged losses to 1e-9. The
// feature engine's Zᵀ is formed on the host (adopt) and Θ streamed from it
// on the host (streamHost), checked against the graphs' Sync.
func TestHostBlocksFollowGraphs(t *testing.T) {
	skipWhenGraphsForced(t)
	withHostBlocks(t, 7)
	for _, unit := range []bool{true, false} {
		p := syntheticProblem(t, 4, 9, 23, 0.1, "uniform:0.5,1", 3)
		if !unit {
			randomWeights(p, rand.New(rand.NewPCG(1, 2)))
		}
		for _, name := range []string{"gd", "labelnoise", "sam1"} {
			for _, engine := range []string{EngineTheta, EngineFeature} {
				cfg := DefaultConfig()
				cfg.Eta = DefaultEta(name)
				cfg.Sigma, cfg.SAMBatch = 0.1, 3
				cfg.Engine = engine
				tr := newTrainer(t, name, p, cfg)
				h, ok := tr.(*hostTrainer)
				if !ok || h.blocks != 4 || !h.inPlace {
					t.Fatalf("%s/%s: trainer %T, want the host one in 4 blocks", name, engine, tr)
				}
				host, hostRows := runEngine(t, name, p, cfg, 400)
				cfg.Graphs = true
				graph, graphRows := runEngine(t, name, p, cfg, 400)
				if d := relDiff(host, graph); !(d < 1e-9) {
					t.Errorf("%s/%s unit=%v: Θ differs between host blocks and graphs by %.3g relative after 400 steps", name, engine, unit, d)
				}
				if len(hostRows) != len(graphRows) {
					t.Fatalf("%s/%s: %d metrics rows, graphs %d", name, engine, len(hostRows), len(graphRows))
				}
				for i := range hostRows {
					if a, g := hostRows[i].Loss, graphRows[i].Loss; math.Abs(a-g) > 1e-9*(1+g) {
						t.Errorf("%s/%s unit=%v step %d: loss %.15g, graphs %.15g", name, engine, unit, hostRows[i].Step, a, g)
					}
				}
			}
		}
	}
}

// The feature engine's host stream (blocks) gives the Θ the graphs' Sync
// forms.
func TestHostBlocksStreamTheta(t *testing.T) {
	skipWhenGraphsForced(t)
	withHostBlocks(t, 5)
	p := syntheticProblem(t, 4, 9, 23, 0.1, "uniform:0.5,1", 3)
	randomWeights(p, rand.New(rand.NewPCG(3, 4)))
	cfg := DefaultConfig()
	cfg.Engine = EngineFeature
	tr := newTrainer(t, "labelnoise", p, cfg)
	theta0 := model.InitTheta(p.M, p.D, 0.5/math.Sqrt(float64(p.D)), 7)
	s, _ := NewState(p, theta0, 11)
	ev, err := NewEvaluator(testBackend(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), tr, ev, s, LoopConfig{Steps: 50, LogEvery: 50, Fresh: true}, &memorySink{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Step(s); err != nil { // the metrics synced Θ: a step drops it
		t.Fatal(err)
	}
	if s.Theta != nil {
		t.Fatal("Θ kept after a feature-engine step")
	}
	var streamed []float64
	if err := StreamTheta(tr, s, func(v []float64) error { streamed = append(streamed, v...); return nil }); err != nil {
		t.Fatal(err)
	}
	want := flat(t, synced(t, tr, s))
	if d := relDiff(streamed, want); !(d < 1e-13) || len(streamed) != len(want) {
		t.Errorf("streamed Θ (%d values) differs from Sync's (%d) by %.3g relative", len(streamed), len(want), d)
	}
}

// A feature state taken over by the Θ engine in blocks (a resume that
// switches engines) is turned into Θ = Θ₀ − SX on the host a block at a
// time (engine.syncHost): equal to the graphs' Sync of the same state within
// 1e-12, and the following steps follow a run that stayed under the feature
// engine to 1e-9.
func TestHostBlocksTakeOverAFeatureState(t *testing.T) {
	skipWhenGraphsForced(t)
	withHostBlocks(t, 7)
	p := syntheticProblem(t, 4, 9, 23, 0.1, "uniform:0.5,1", 3)
	cfg := DefaultConfig()
	cfg.Engine, cfg.Eta = EngineFeature, 0.005
	feat := newTrainer(t, "labelnoise", p, cfg)
	s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.3, 1), 1)
	if err := feat.Init(s); err != nil {
		t.Fatal(err)
	}
	if _, err := feat.Advance(s, 50); err != nil {
		t.Fatal(err)
	}
	// The reference: the graphs' Θ of this feature state.
	ref, _ := RestoreState(p, s.Step, nil, cloneTensor(t, s.Base), cloneTensor(t, s.Features), s.RNGValues(), nil)
	gcfg := cfg
	gcfg.Graphs = true
	if err := newTrainer(t, "labelnoise", p, gcfg).Sync(ref); err != nil {
		t.Fatal(err)
	}
	cont, _ := RestoreState(p, s.Step, nil, cloneTensor(t, s.Base), cloneTensor(t, s.Features), s.RNGValues(), nil)
	tcfg := cfg
	tcfg.Engine = EngineTheta
	th := newTrainer(t, "labelnoise", p, tcfg)
	if h, ok := th.(*hostTrainer); !ok || !h.inPlace {
		t.Fatalf("trainer %T, want the host one in blocks", th)
	}
	if err := th.Init(s); err != nil { // takes the feature state over
		t.Fatal(err)
	}
	if s.Features != nil || s.Theta == nil {
		t.Fatal("the Θ engine kept the feature state")
	}
	if d := relDiff(s.ThetaValues(), ref.ThetaValues()); !(d < 1e-12) {
		t.Errorf("Θ from the host blocks differs from the graphs' Sync by %.3g relative", d)
	}
	if _, err := th.Advance(s, 100); err != nil {
		t.Fatal(err)
	}
	feat2 := newTrainer(t, "labelnoise", p, cfg) // a trainer of its own: steps write its state in place
	if _, err := feat2.Advance(cont, 100); err != nil {
		t.Fatal(err)
	}
	if err := feat2.Sync(cont); err != nil {
		t.Fatal(err)
	}
	if d := relDiff(s.ThetaValues(), cont.ThetaValues()); !(d < 1e-9) {
		t.Errorf("after 100 more steps Θ differs from the feature engine's by %.3g relative", d)
	}
}

func cloneTensor(t *testing.T, x *tensors.Tensor) *tensors.Tensor {
	t.Helper()
	c, err := x.LocalClone()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
