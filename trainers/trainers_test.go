package trainers

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
)

func testBackend(t testing.TB) backends.Backend {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// paperProblem is Figure 1a's shape (m=10, d=3, n=3) on the paper's synthetic data.
func paperProblem(t testing.TB, nu float64, labels string, seed uint64) *model.Problem {
	act, err := model.NewActivation("cubic", nu, 1)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := model.ParseLabels(labels)
	if err != nil {
		t.Fatal(err)
	}
	x, y, err := model.Synthetic(3, 3, spec, act, seed)
	if err != nil {
		t.Fatal(err)
	}
	p, err := model.NewProblem(x, 3, 3, y, nil, 10, act)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hostGDStep is one GD step written with plain loops: Θ − η·2 Σ_i r_i w_j φ'(z_ij) x_i.
func hostGDStep(p *model.Problem, theta []float64, eta float64) []float64 {
	next := append([]float64(nil), theta...)
	for i := range p.N {
		z := make([]float64, p.M)
		f := 0.0
		for j := range p.M {
			for c := range p.D {
				z[j] += theta[j*p.D+c] * p.X[i*p.D+c]
			}
			f += p.W[j] * p.Act.Host(z[j], 0)
		}
		r := f - p.Y[i]
		for j := range p.M {
			for c := range p.D {
				next[j*p.D+c] -= eta * 2 * r * p.W[j] * p.Act.Host(z[j], 1) * p.X[i*p.D+c]
			}
		}
	}
	return next
}

func newTrainer(t testing.TB, name string, p *model.Problem, cfg Config) Trainer {
	tr, err := New(name, testBackend(t), p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func steps(t testing.TB, tr Trainer, s *State, n int) {
	for range n {
		if _, err := tr.Step(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Sync(s); err != nil {
		t.Fatal(err)
	}
}

// synced returns Θ at s, formed first under the feature engine.
func synced(t testing.TB, tr Trainer, s *State) *tensors.Tensor {
	if err := tr.Sync(s); err != nil {
		t.Fatal(err)
	}
	return s.Theta
}

func TestGDMatchesHostLoops(t *testing.T) {
	p := paperProblem(t, 0.2, "uniform:0.5,1", 1)
	theta0 := model.InitTheta(p.M, p.D, 0.5, 2)
	cfg := DefaultConfig()
	s, _ := NewState(p, theta0, 3)
	steps(t, newTrainer(t, "gd", p, cfg), s, 5)
	want := theta0
	for range 5 {
		want = hostGDStep(p, want, cfg.Eta)
	}
	for k, v := range s.ThetaValues() {
		if math.Abs(v-want[k]) > 1e-12*(1+math.Abs(want[k])) {
			t.Fatalf("Θ[%d] = %.17g after 5 GD steps, host loops %.17g", k, v, want[k])
		}
	}
	if s.Step != 5 {
		t.Errorf("step counter %d, want 5", s.Step)
	}
}

func TestLabelNoiseWithZeroSigmaIsGD(t *testing.T) {
	p := paperProblem(t, 0, "uniform:0.5,1", 4)
	theta0 := model.InitTheta(p.M, p.D, 0.5, 5)
	cfg := DefaultConfig()
	cfg.Sigma = 0
	gd, ln := newTrainer(t, "gd", p, cfg), newTrainer(t, "labelnoise", p, cfg)
	a, _ := NewState(p, theta0, 1)
	b, _ := NewState(p, theta0, 2)
	steps(t, gd, a, 50)
	steps(t, ln, b, 50)
	for k, v := range a.ThetaValues() {
		if v != b.ThetaValues()[k] {
			t.Fatalf("Θ[%d]: GD %.17g, label noise with σ=0 %.17g", k, v, b.ThetaValues()[k])
		}
	}
}

func TestLabelNoiseSameSeedSameTheta(t *testing.T) {
	p := paperProblem(t, 0, "uniform:0.5,1", 4)
	theta0 := model.InitTheta(p.M, p.D, 0.5, 5)
	tr := newTrainer(t, "labelnoise", p, DefaultConfig())
	run := func(seed uint64) []float64 {
		s, _ := NewState(p, theta0, seed)
		steps(t, tr, s, 30)
		return s.ThetaValues()
	}
	a, b, c := run(7), run(7), run(8)
	same := true
	for k := range a {
		if a[k] != b[k] {
			t.Fatalf("same seed, Θ[%d] differs: %.17g vs %.17g", k, a[k], b[k])
		}
		same = same && a[k] == c[k]
	}
	if same {
		t.Error("different seeds gave the same Θ: is the noise drawn at all?")
	}
}

// The noise a label-noise step adds is recovered from the step itself:
// Θ_LN − Θ_GD = −2η Jᵀζ, so ζ = −(JJᵀ)⁻¹ J (Θ_LN − Θ_GD)/(2η). Its sample
// standard deviation must be σ (σ is a standard deviation, not a variance).
func TestLabelNoiseHasStandardDeviationSigma(t *testing.T) {
	p := paperProblem(t, 0.5, "uniform:0.5,1", 6)
	theta0 := model.InitTheta(p.M, p.D, 0.5, 7)
	cfg := DefaultConfig()
	cfg.Sigma = 0.3
	ln := newTrainer(t, "labelnoise", p, cfg)
	gdNext := hostGDStep(p, theta0, cfg.Eta)
	// J from the closed form A_ij x_i (checked against autodiff in model's tests).
	jac := make([][]float64, p.N)
	for i := range p.N {
		jac[i] = make([]float64, p.M*p.D)
		for j := range p.M {
			z := 0.0
			for c := range p.D {
				z += theta0[j*p.D+c] * p.X[i*p.D+c]
			}
			for c := range p.D {
				jac[i][j*p.D+c] = p.W[j] * p.Act.Host(z, 1) * p.X[i*p.D+c]
			}
		}
	}
	jjt := make([]float64, p.N*p.N)
	for i := range p.N {
		for k := range p.N {
			for c := range jac[i] {
				jjt[i*p.N+k] += jac[i][c] * jac[k][c]
			}
		}
	}
	var sum, sumSq float64
	count := 0
	for seed := range uint64(300) {
		s, _ := NewState(p, theta0, seed)
		steps(t, ln, s, 1)
		delta := s.ThetaValues()
		jd := make([]float64, p.N)
		for i := range p.N {
			for c := range delta {
				jd[i] += jac[i][c] * (delta[c] - gdNext[c])
			}
		}
		zeta, err := linalg.SolveSPD(jjt, p.N, jd)
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range zeta {
			z /= -2 * cfg.Eta
			sum += z
			sumSq += z * z
			count++
		}
	}
	mean := sum / float64(count)
	sd := math.Sqrt(sumSq/float64(count) - mean*mean)
	if math.Abs(mean) > 4*cfg.Sigma/math.Sqrt(float64(count)) {
		t.Errorf("noise mean %g, want 0", mean)
	}
	if math.Abs(sd-cfg.Sigma) > 0.1*cfg.Sigma {
		t.Errorf("noise standard deviation %g, want σ = %g", sd, cfg.Sigma)
	}
}

type memorySink struct{ rows []Metrics }

func (m *memorySink) Log(x Metrics) error { m.rows = append(m.rows, x); return nil }

func TestLoopLogsOnCadenceAndAtTheEnd(t *testing.T) {
	p := paperProblem(t, 0.2, "uniform:0.5,1", 1)
	b := testBackend(t)
	ev, err := NewEvaluator(b, p)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, 1), 1)
	sink := &memorySink{}
	res, err := Run(context.Background(), newTrainer(t, "labelnoise", p, DefaultConfig()), ev, s,
		LoopConfig{Steps: 10, LogEvery: 3, Fresh: true}, sink)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range sink.rows {
		got = append(got, r.Step)
	}
	want := []int64{0, 3, 6, 9, 10}
	if len(got) != len(want) {
		t.Fatalf("logged steps %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logged steps %v, want %v", got, want)
		}
	}
	if res.Final.Step != 10 || s.Step != 10 || res.Interrupted {
		t.Errorf("result %+v, state step %d", res, s.Step)
	}
}

func TestLoopStopsOnDivergence(t *testing.T) {
	p := paperProblem(t, 0, "uniform:5,10", 1)
	ev, _ := NewEvaluator(testBackend(t), p)
	cfg := DefaultConfig()
	cfg.Eta = 5
	s, _ := NewState(p, model.InitTheta(p.M, p.D, 1, 1), 1)
	sink := &memorySink{}
	_, err := Run(context.Background(), newTrainer(t, "gd", p, cfg), ev, s, LoopConfig{Steps: 1000, LogEvery: 100, Fresh: true}, sink)
	var div *DivergedError
	if !errors.As(err, &div) {
		t.Fatalf("got %v, want a DivergedError", err)
	}
	if div.Step >= 1000 || len(sink.rows) < 2 || sink.rows[0].Step != 0 {
		t.Errorf("diverged at %d with %d rows logged", div.Step, len(sink.rows))
	}
}

func TestLoopInterrupted(t *testing.T) {
	p := paperProblem(t, 0.2, "uniform:0.5,1", 1)
	ev, _ := NewEvaluator(testBackend(t), p)
	s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, 1), 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	checkpoints := 0
	res, err := Run(ctx, newTrainer(t, "gd", p, DefaultConfig()), ev, s, LoopConfig{Steps: 100, LogEvery: 10, Fresh: true,
		Checkpoint: func(*State, time.Duration) error { checkpoints++; return nil }}, &memorySink{})
	if err != nil || !res.Interrupted || s.Step != 0 || checkpoints != 1 {
		t.Errorf("err %v, interrupted %v at step %d, %d checkpoints", err, res.Interrupted, s.Step, checkpoints)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	p := paperProblem(t, 0.2, "uniform:0.5,1", 1)
	b := testBackend(t)
	for name, c := range map[string]struct {
		trainer string
		mutate  func(*Config)
	}{
		"unknown":        {"adam", func(*Config) {}},
		"zero eta":       {"gd", func(c *Config) { c.Eta = 0 }},
		"negative eta":   {"labelnoise", func(c *Config) { c.Eta = -1 }},
		"NaN eta":        {"gd", func(c *Config) { c.Eta = math.NaN() }},
		"negative sigma": {"labelnoise", func(c *Config) { c.Sigma = -0.1 }},
		"sam zero rho":   {"sam", func(c *Config) { c.Rho = 0 }},
		"sam NaN rho":    {"sam", func(c *Config) { c.Rho = math.NaN() }},
		"sam inf rho":    {"sam", func(c *Config) { c.Rho = math.Inf(1) }},
	} {
		cfg := DefaultConfig()
		c.mutate(&cfg)
		if _, err := New(c.trainer, b, p, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMetricsJSONRoundTrip(t *testing.T) {
	m := Metrics{Step: 42, Loss: 1.5, TraceHessian: 3, TraceHessianManifold: 2.5, TraceMin: math.NaN(), TheoryGap: 0.25,
		GradNorm: 1e-3, RiemannianGradNorm: math.Inf(1), EffectiveRank: 1.1, SingularValuesZ: []float64{2, math.NaN()},
		SingularValuesTheta: []float64{1}, WallSeconds: 0.5, Extra: map[string]float64{"eta": 0.25}}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back Metrics
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	again, _ := json.Marshal(back)
	if string(again) != string(data) || back.Step != 42 || !math.IsNaN(back.TraceMin) || back.Extra["eta"] != 0.25 || !math.IsNaN(back.SingularValuesZ[1]) {
		t.Errorf("round trip:\n%s\n%s", data, again)
	}
}
