package trainers

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// runEngine trains p from the same Θ₀ and seed with one engine and fusion
// setting through the loop, and returns the final Θ and the logged metrics.
func runEngine(t *testing.T, name string, p *model.Problem, cfg Config, steps int64) ([]float64, []Metrics) {
	t.Helper()
	tr := newTrainer(t, name, p, cfg)
	if got, _ := ChooseEngine(cfg.Engine, p); tr.Engine() != got {
		t.Fatalf("%s: engine %q, asked for %q", name, tr.Engine(), got)
	}
	ev, err := NewEvaluator(testBackend(t), p)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5/math.Sqrt(float64(p.D)), 7), 11)
	sink := &memorySink{}
	if _, err := Run(context.Background(), tr, ev, s, LoopConfig{Steps: steps, LogEvery: steps / 4, Fresh: true}, sink); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	synced(t, tr, s)
	return s.ThetaValues(), sink.rows
}

func relDiff(a, b []float64) float64 {
	num, den := 0.0, 0.0
	for i := range a {
		num += (a[i] - b[i]) * (a[i] - b[i])
		den += b[i] * b[i]
	}
	return math.Sqrt(num / den)
}

// The feature engine (Θ = Θ₀ − TX, moving T and Z only) and the Θ engine
// follow the same trajectory, for every trainer, in compiled graphs and on
// the host paths: same seed and noise, Θ equal to 1e-9 relative after many
// steps, metrics equal too.
func TestEnginesAgree(t *testing.T) {
	for _, size := range []struct{ n, d, m int }{{3, 3, 10}, {4, 9, 16}} {
		p := syntheticProblem(t, size.n, size.d, size.m, 0.1, "uniform:0.5,1", 3)
		for _, name := range Names() {
			for _, graphs := range []bool{true, false} {
				t.Run(fmt.Sprintf("%s/n=%d,d=%d,m=%d/graphs=%v", name, size.n, size.d, size.m, graphs), func(t *testing.T) {
					cfg := DefaultConfig()
					cfg.Graphs = graphs
					cfg.Eta = DefaultEta(name)
					cfg.SAMBatch = 2
					steps := int64(4000)
					if name == "riemannian" {
						steps = 400
					}
					cfg.Engine = EngineTheta
					ref, refRows := runEngine(t, name, p, cfg, steps)
					cfg.Engine = EngineFeature
					got, rows := runEngine(t, name, p, cfg, steps)
					if d := relDiff(got, ref); !(d < 1e-9) {
						t.Errorf("Θ differs between engines by %.3g relative after %d steps", d, steps)
					}
					if len(rows) != len(refRows) {
						t.Fatalf("%d metrics rows, Θ engine %d", len(rows), len(refRows))
					}
					for i := range rows {
						a, b := rows[i], refRows[i]
						for _, q := range []struct {
							what string
							x, y float64
						}{{"loss", a.Loss, b.Loss}, {"Tr D²L", a.TraceHessian, b.TraceHessian}, {"theory gap", a.TheoryGap, b.TheoryGap},
							{"σ1(Z)", a.SingularValuesZ[0], b.SingularValuesZ[0]}} {
							if math.Abs(q.x-q.y) > 1e-8*(1+math.Abs(q.y)) && !(q.what == "loss" && q.y < 1e-20 && q.x < 1e-20) {
								t.Errorf("step %d: %s %.15g, Θ engine %.15g", a.Step, q.what, q.x, q.y)
							}
						}
					}
				})
			}
		}
	}
}

// K steps fused into one compiled call give bit for bit what K single steps
// give, RNG state included, for every fusable trainer and both engines.
func TestFusedStepsEqualSingleSteps(t *testing.T) {
	p := syntheticProblem(t, 3, 4, 10, 0.1, "uniform:0.5,1", 5)
	theta0 := model.InitTheta(p.M, p.D, 0.3, 2)
	for _, name := range []string{"gd", "labelnoise", "sam1", "sam", "penalty"} {
		for _, engine := range []string{EngineTheta, EngineFeature} {
			cfg := DefaultConfig()
			cfg.Engine, cfg.SAMBatch = engine, 3
			cfg.Graphs = true // the fused graphs (the host paths step one by one)
			run := func(fuse int, k int64) ([]float64, []uint64) {
				cfg.Fuse = fuse
				tr := newTrainer(t, name, p, cfg)
				if _, ok := tr.(*fused); !ok {
					t.Fatalf("%s: trainer %T, want the fused graphs", name, tr)
				}
				s, _ := NewState(p, theta0, 9)
				if fuse == 1 {
					for i := range k {
						if _, err := tr.Step(s); err != nil {
							t.Fatalf("%s/%s step %d: %v", name, engine, i, err)
						}
					}
				} else if _, err := tr.Advance(s, k); err != nil {
					t.Fatal(err)
				}
				if s.Step != k {
					t.Fatalf("%s: at step %d after %d steps", name, s.Step, k)
				}
				return synced(t, tr, s).Value().([][]float64)[0], s.RNGValues()
			}
			const k = 37 // 8+8+8+8 then 4+1: every chunking path
			single, rng1 := run(1, k)
			fusedTheta, rng2 := run(8, k)
			for i := range single {
				if single[i] != fusedTheta[i] {
					t.Fatalf("%s/%s: Θ[0][%d] fused %.17g, single steps %.17g", name, engine, i, fusedTheta[i], single[i])
				}
			}
			for i := range rng1 {
				if rng1[i] != rng2[i] {
					t.Fatalf("%s/%s: RNG state differs after fused steps", name, engine)
				}
			}
		}
	}
}

// Under the feature engine Θ is formed only when asked, and then it has the
// engine's features, XΘᵀ = Z, and differs from Θ₀ by a combination of the x_i.
func TestFeatureStateFormsTheta(t *testing.T) {
	for _, size := range []struct{ n, d int }{{3, 5}, {3, 3}, {5, 3}} {
		p := syntheticProblem(t, size.n, size.d, 6, 0.1, "uniform:0.5,1", 1)
		cfg := DefaultConfig()
		cfg.Engine = EngineFeature
		tr := newTrainer(t, "labelnoise", p, cfg)
		s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.3, 1), 1)
		steps(t, tr, s, 10)
		if _, err := tr.Advance(s, 5); err != nil {
			t.Fatal(err)
		}
		if s.Theta != nil {
			t.Fatal("Θ was formed without being asked for")
		}
		theta := synced(t, tr, s).Value().([][]float64)
		base, zt := s.Base.Value().([][]float64), s.Features.Value().([][]float64)
		for j := range p.M {
			for i := range p.N {
				z := 0.0
				for k := range p.D {
					z += theta[j][k] * p.X[i*p.D+k]
				}
				if math.Abs(z-zt[j][i]) > 1e-12 {
					t.Fatalf("n=%d d=%d: (XΘᵀ)[%d][%d] = %.15g, features %.15g", p.N, p.D, i, j, z, zt[j][i])
				}
			}
			if p.N >= p.D {
				continue // the x_i span every direction
			}
			// Θ − Θ₀ lies in the span of the x_i: its part orthogonal to them is zero.
			delta := make([]float64, p.D)
			for k := range p.D {
				delta[k] = theta[j][k] - base[j][k]
			}
			if r := residualOffSpan(p, delta); r > 1e-12 {
				t.Fatalf("n=%d d=%d: row %d of Θ − Θ₀ has %.3g outside the span of the data", p.N, p.D, j, r)
			}
		}
	}
}

// residualOffSpan returns the norm of v minus its projection on the rows of X (Gram–Schmidt).
func residualOffSpan(p *model.Problem, v []float64) float64 {
	var basis [][]float64
	for i := range p.N {
		u := orthogonalize(p.X[i*p.D:(i+1)*p.D], basis)
		if n := norm(u); n > 1e-10 {
			for k := range u {
				u[k] /= n
			}
			basis = append(basis, u)
		}
	}
	return norm(orthogonalize(v, basis))
}

// orthogonalize returns a copy of v less its components along the orthonormal basis.
func orthogonalize(v []float64, basis [][]float64) []float64 {
	r := append([]float64(nil), v...)
	for _, b := range basis {
		dot := 0.0
		for k := range r {
			dot += r[k] * b[k]
		}
		for k := range r {
			r[k] -= dot * b[k]
		}
	}
	return r
}

func TestChooseEngine(t *testing.T) {
	for _, tc := range []struct {
		n, d     int
		req, out string
	}{{3, 3, "", EngineFeature}, {32, 64, "auto", EngineFeature}, {6, 5, "auto", EngineTheta}, {64, 32, "feature", EngineFeature}, {3, 3, "THETA", EngineTheta}, {3, 3, "bogus", ""}} {
		p := &model.Problem{N: tc.n, D: tc.d}
		got, err := ChooseEngine(tc.req, p)
		if got != tc.out || (err != nil) != (tc.out == "") {
			t.Errorf("n=%d d=%d %q: %q, %v", tc.n, tc.d, tc.req, got, err)
		}
	}
}

// A feature-engine state measured from its features (Θ's singular values by
// SVD when small, from ΘᵀΘ when large) gives the metrics of its Θ.
func TestMeasureStateMatchesMeasure(t *testing.T) {
	p := syntheticProblem(t, 4, 6, 9, 0.1, "uniform:0.5,1", 2)
	ev, err := NewEvaluator(testBackend(t), p)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Engine = EngineFeature
	tr := newTrainer(t, "labelnoise", p, cfg)
	for _, small := range []int{1 << 20, 0} {
		s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.4, 3), 3)
		if _, err := tr.Advance(s, 300); err != nil {
			t.Fatal(err)
		}
		smallTheta = small
		got, err := ev.MeasureState(s)
		smallTheta = 1 << 20
		if err != nil {
			t.Fatal(err)
		}
		want, err := ev.Measure(synced(t, tr, s))
		if err != nil {
			t.Fatal(err)
		}
		close := func(what string, x, y, tol float64) {
			if math.Abs(x-y) > tol*(1+math.Abs(y)) {
				t.Errorf("small=%d: %s from features %.15g, from Θ %.15g", small, what, x, y)
			}
		}
		close("loss", got.Loss, want.Loss, 1e-12)
		close("Tr D²L", got.TraceHessian, want.TraceHessian, 1e-12)
		close("manifold trace", got.TraceHessianManifold, want.TraceHessianManifold, 1e-12)
		close("‖∇L‖", got.GradNorm, want.GradNorm, 1e-10)
		close("‖grad_M F‖", got.RiemannianGradNorm, want.RiemannianGradNorm, 1e-8)
		close("theory gap", got.TheoryGap, want.TheoryGap, 1e-12)
		close("effective rank", got.EffectiveRank, want.EffectiveRank, 1e-12)
		for k := range want.SingularValuesZ {
			close(fmt.Sprintf("σ%d(Z)", k+1), got.SingularValuesZ[k], want.SingularValuesZ[k], 1e-12)
		}
		for k := range want.SingularValuesTheta {
			close(fmt.Sprintf("σ%d(Θ)", k+1), got.SingularValuesTheta[k], want.SingularValuesTheta[k], 1e-9)
		}
	}
}

// StreamTheta gives Θ block by block, equal to the whole Θ, for both engines
// and across a partial last block.
func TestStreamTheta(t *testing.T) {
	p := syntheticProblem(t, 3, 4, thetaBlock+37, 0.1, "uniform:0.5,1", 1)
	for _, engine := range []string{EngineFeature, EngineTheta} {
		cfg := DefaultConfig()
		cfg.Engine, cfg.Eta = engine, 1e-5
		tr := newTrainer(t, "labelnoise", p, cfg)
		s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.1, 1), 1)
		if _, err := tr.Advance(s, 3); err != nil {
			t.Fatal(err)
		}
		var got []float64
		pieces := 0
		if err := StreamTheta(tr, s, func(v []float64) error {
			got = append(got, v...)
			pieces++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := synced(t, tr, s).Value().([][]float64)
		if len(got) != p.M*p.D {
			t.Fatalf("%s: %d values streamed, want %d", engine, len(got), p.M*p.D)
		}
		for j := range p.M {
			for k := range p.D {
				if math.Abs(got[j*p.D+k]-want[j][k]) > 1e-14*(1+math.Abs(want[j][k])) {
					t.Fatalf("%s: Θ[%d][%d] streamed %.17g, whole %.17g", engine, j, k, got[j*p.D+k], want[j][k])
				}
			}
		}
		if engine == EngineFeature && pieces != 2 {
			t.Errorf("feature engine streamed %d pieces, want 2 blocks", pieces)
		}
	}
}

// counterUniform (graphs) and hostUniform are SplitMix64: checked against a
// reference written out here.
func TestCounterUniformIsSplitMix64(t *testing.T) {
	const key = 0x0123456789abcdef
	splitmix := func(ctr uint64) float64 {
		z := key + ctr*splitmixGamma
		z = (z ^ (z >> 30)) * splitmixMul1
		z = (z ^ (z >> 27)) * splitmixMul2
		z ^= z >> 31
		return float64(z>>11) * 0x1p-53
	}
	ctrs := []uint64{0, 1, 2, 1 << 40, math.MaxUint64 - 3}
	got := MustExecOnce(testBackend(t), func(k, c *Node) *Node { return counterUniform(k, c) },
		tensors.FromScalar(uint64(key)), tensors.FromFlatDataAndDimensions(ctrs, len(ctrs)))
	for i, v := range tensors.MustCopyFlatData[float64](got) {
		if want := splitmix(ctrs[i]); v != want || v < 0 || v >= 1 {
			t.Errorf("counter %d: %v, SplitMix64 gives %v", ctrs[i], v, want)
		}
		if h, want := hostUniform(key, ctrs[i]), splitmix(ctrs[i]); h != want {
			t.Errorf("counter %d: host %v, SplitMix64 gives %v", ctrs[i], h, want)
		}
	}
}
