package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// job is a row ready to time. run(k) performs k units of work (k steps, or
// for fig1a and tts k whole runs) and returns the steps done and the time
// they took: the job times itself, so that tts can leave its checks out.
// Everything before the first run (compiling, Init, Θ₀ on the manifold) is
// outside the timing.
type job struct {
	row    Row
	engine string
	path   string  // where the steps run (trainers.Path); "" for graphs
	flops  float64 // per step
	whole  bool    // a unit is a whole run (fig1a, tts)
	run    func(k int) (steps int64, elapsed time.Duration, err error)
}

// newJob builds the job of a row on backend b.
func newJob(b backends.Backend, row Row, opt Options) (*job, error) {
	if err := opt.Check(); err != nil {
		return nil, err
	}
	var j *job
	var err error
	switch row.Work {
	case LabelNoise:
		j, err = labelNoiseJob(b, row, opt)
	case Riemannian:
		j, err = riemannianJob(b, row, opt)
	case Hutchinson:
		j, err = hutchinsonJob(b, row, opt)
	case Lanczos:
		j, err = lanczosJob(b, row)
	case Fig1a:
		j, err = fig1aJob(b, row, opt)
	case TTS:
		j, err = ttsJob(b, row, opt)
	default:
		return nil, fmt.Errorf("unknown work %q", row.Work)
	}
	if err != nil {
		return nil, err
	}
	j.row = row
	j.flops = StepFlops(row.Work, j.engine, row.Size, opt.Probes)
	return j, nil
}

// paperConfig is `flatmin train`'s default with the paper's fixed Θ₀ scale
// 0.5 instead of the automatic one, so that the timed work stays the same
// as flatmin's defaults change.
func paperConfig() runner.Config {
	cfg := runner.DefaultConfig()
	cfg.InitScale, cfg.InitScaleRule = 0.5, ""
	return cfg
}

// sizedProblem is flatmin's synthetic problem of a size, as `flatmin train
// --m M --d D --n N` builds it: the paper's data (rows uniform on [0,1]^d,
// unit norm), labels uniform on [0.5, 1], cubic φ with ν = 0.1, and Θ₀ with
// N(0, 0.5²) entries.
func sizedProblem(s Size) (*model.Problem, []float64, runner.Config, error) {
	cfg := paperConfig()
	cfg.M, cfg.D, cfg.N = s.M, s.D, s.N
	p, err := cfg.Problem()
	if err != nil {
		return nil, nil, cfg, err
	}
	theta0, err := cfg.Theta0(p)
	return p, theta0, cfg, err
}

func trainerConfig(name string, opt Options) trainers.Config {
	tc := trainers.DefaultConfig()
	tc.Eta = trainers.DefaultEta(name)
	tc.Engine, tc.Fuse, tc.Graphs = opt.Engine, opt.Fuse, opt.Graphs
	return tc
}

// labelNoiseJob times label-noise SGD steps. Its η is the paper's 0.05
// unless that is more than 4/λ_max(2JJᵀ) at Θ₀ (stableEta), when it is
// 1/λ_max: with m = 10³ to 10⁵ neurons the loss's curvature is 10³ to 10⁶
// times Figure 1a's and η = 0.05 would overflow in a few steps, which would
// time arithmetic on Inf and NaN. (Figure 1a itself starts at η·λ_max ≈ 2.5
// and trains well: the bound is for the larger sizes, not for it.)
func labelNoiseJob(b backends.Backend, row Row, opt Options) (*job, error) {
	p, theta0, cfg, err := sizedProblem(row.Size)
	if err != nil {
		return nil, err
	}
	tc := trainerConfig(LabelNoise, opt)
	stable, err := stableEta(b, p, theta0)
	if err != nil {
		return nil, err
	}
	if tc.Eta > 4*stable {
		tc.Eta = stable
	}
	tr, err := trainers.New(LabelNoise, b, p, tc)
	if err != nil {
		return nil, err
	}
	runner.LimitMemory(p) // as a training run does
	s, err := trainers.NewStateOn(b, p, theta0, cfg.Seed)
	if err != nil {
		return nil, err
	}
	if err := tr.Init(s); err != nil {
		return nil, err
	}
	return &job{engine: tr.Engine(), path: tr.Path(), run: stepper(tr, s)}, nil
}

// stepper times k steps of tr from s (which moves on), failing on a
// non-finite loss.
func stepper(tr trainers.Trainer, s *trainers.State) func(k int) (int64, time.Duration, error) {
	return func(k int) (int64, time.Duration, error) {
		start := time.Now()
		loss, err := advance(tr, s, k)
		elapsed := time.Since(start)
		if err != nil {
			return 0, 0, fmt.Errorf("step %d: %w", s.Step, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return 0, 0, fmt.Errorf("diverged by step %d (loss %v)", s.Step, loss)
		}
		return int64(k), elapsed, nil
	}
}

// advance takes k steps through Trainer.Advance (fused into few compiled
// calls where the trainer can) and returns the loss before the last one.
func advance(tr trainers.Trainer, s *trainers.State, k int) (float64, error) {
	return tr.Advance(s, int64(k))
}

// stableEta returns 1/λ_max(2JJᵀ) at Θ (regularizers.GaussNewtonCurvature):
// gradient descent with η below 2/λ_max of the loss Hessian's Gauss–Newton
// part does not blow up. JJᵀ is n×n, from the host forward
// (model.HostForward.JJT) of Θ's own slice, so that a large Θ is not copied
// into a graph only for this.
func stableEta(_ backends.Backend, p *model.Problem, theta []float64) (float64, error) {
	zt := make([]float64, p.M*p.N)
	model.HostFeatures(p, p.XT(), theta, zt, 0)
	lam := regularizers.GaussNewtonCurvature(model.NewHostNet(p).Forward(zt).JJT(), p.N)
	if !(lam > 0) {
		return math.Inf(1), nil
	}
	return 1 / lam, nil
}

// riemannianJob times steps of the Riemannian flow (η = 1, its safeguard's
// largest step) from Θ₀ retracted onto the manifold by Init.
func riemannianJob(b backends.Backend, row Row, opt Options) (*job, error) {
	p, theta0, cfg, err := sizedProblem(row.Size)
	if err != nil {
		return nil, err
	}
	tr, err := trainers.New(Riemannian, b, p, trainerConfig(Riemannian, opt))
	if err != nil {
		return nil, err
	}
	s, err := trainers.NewState(p, theta0, cfg.Seed)
	if err != nil {
		return nil, err
	}
	if err := tr.Init(s); err != nil {
		return nil, err
	}
	return &job{engine: tr.Engine(), path: tr.Path(), run: stepper(tr, s)}, nil
}

// hutchinsonJob times estimates at Θ₀ as `flatmin inspect --probes` makes
// them (trainers.HutchinsonEstimator: on the host on SimpleGo unless
// opt.Graphs), each with fresh probes (the RNG state is threaded through).
func hutchinsonJob(b backends.Backend, row Row, opt Options) (*job, error) {
	p, theta0, cfg, err := sizedProblem(row.Size)
	if err != nil {
		return nil, err
	}
	h, err := trainers.NewHutchinsonEstimator(b, p, opt.Probes, opt.Graphs)
	if err != nil {
		return nil, err
	}
	theta := tensors.FromFlatDataAndDimensions(theta0, p.M, p.D)
	rng, err := graph.RNGStateFromSeed(int64(cfg.Seed))
	if err != nil {
		return nil, err
	}
	run := func(k int) (int64, time.Duration, error) {
		start := time.Now()
		est := math.NaN()
		for range k {
			var err error
			if rng, est, _, err = h.Estimate(theta, rng); err != nil {
				return 0, 0, err
			}
		}
		elapsed := time.Since(start)
		if math.IsNaN(est) || math.IsInf(est, 0) {
			return 0, 0, fmt.Errorf("the estimate is %v", est)
		}
		return int64(k), elapsed, nil
	}
	return &job{engine: trainers.EngineTheta, path: h.Path(), run: run}, nil
}

// lanczosJob times whole Lanczos runs at Θ₀, each from a new start vector;
// a tolerance of 0 makes every run take all LanczosSteps steps.
func lanczosJob(b backends.Backend, row Row) (*job, error) {
	p, theta0, _, err := sizedProblem(row.Size)
	if err != nil {
		return nil, err
	}
	h, err := trainers.NewHessian(b, p)
	if err != nil {
		return nil, err
	}
	theta := tensors.FromFlatDataAndDimensions(theta0, p.M, p.D)
	seed := uint64(0)
	run := func(k int) (int64, time.Duration, error) {
		start := time.Now()
		for range k {
			seed++
			e, err := h.Eigenvalues(theta, LanczosK, regularizers.LanczosOptions{MaxSteps: LanczosSteps, Tol: math.SmallestNonzeroFloat64, Seed: seed})
			if err != nil && !errors.Is(err, regularizers.ErrLanczosNoConvergence) {
				return 0, 0, err
			}
			if e.Steps != min(LanczosSteps, h.Dim()) || !finite(e.Top[0]) {
				return 0, 0, fmt.Errorf("Lanczos took %d steps to λ_max %v", e.Steps, e.Top[0])
			}
		}
		return int64(k), time.Since(start), nil
	}
	return &job{engine: trainers.EngineTheta, run: run}, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// fig1aLogEvery is fig1a's metrics cadence: rare enough not to count.
const fig1aLogEvery = 100_000

// discard is a sink that drops the rows.
type discard struct{}

func (discard) Log(trainers.Metrics) error { return nil }

// fig1aJob times whole runs of `flatmin train`'s default (Figure 1a, label-
// noise SGD, η = 0.05, σ = 0.03) through trainers.Run, metrics every 100000
// steps to a sink that drops them, no files.
func fig1aJob(b backends.Backend, _ Row, opt Options) (*job, error) {
	cfg := paperConfig()
	cfg.Eta, cfg.EtaRule = 0.05, ""
	cfg.Engine, cfg.Fuse, cfg.Graphs, cfg.Backend = opt.Engine, opt.Fuse, opt.Graphs, opt.Backend
	cfg.Steps, cfg.LogEvery = opt.Fig1aSteps, fig1aLogEvery
	setup, err := runner.Prepare(cfg, b, runner.Options{Quiet: true})
	if err != nil {
		return nil, err
	}
	loop := func(steps, logEvery int64) (int64, error) {
		s, err := trainers.NewState(setup.Problem, setup.Theta0, cfg.Seed)
		if err != nil {
			return 0, err
		}
		_, err = trainers.Run(context.Background(), setup.Trainer, setup.Evaluator, s,
			trainers.LoopConfig{Steps: steps, LogEvery: logEvery, Fresh: true}, discard{})
		return s.Step, err
	}
	// Compile the step and the metrics outside the timing.
	if _, err := loop(2, 1); err != nil {
		return nil, err
	}
	run := func(k int) (int64, time.Duration, error) {
		var total int64
		start := time.Now()
		for range k {
			steps, err := loop(cfg.Steps, cfg.LogEvery)
			if err != nil {
				return 0, 0, err
			}
			total += steps
		}
		return total, time.Since(start), nil
	}
	return &job{engine: setup.Trainer.Engine(), path: setup.Trainer.Path(), whole: true, run: run}, nil
}

// ttsJob times the Riemannian flow on Figure 1a from Θ₀ until the theory gap
// max_ij |z_ij − φ⁻¹(y_i/m)| (trainers.Metrics.TheoryGap) is below
// opt.TTSTol. The gap is checked after every step, from Z as Evaluator.Measure
// computes it, with the clock stopped; Init's retraction onto the manifold
// counts, compiling does not.
func ttsJob(b backends.Backend, _ Row, opt Options) (*job, error) {
	cfg := paperConfig()
	cfg.Trainer = Riemannian
	cfg.Engine, cfg.Fuse, cfg.Graphs, cfg.Backend = opt.Engine, opt.Fuse, opt.Graphs, opt.Backend
	setup, err := runner.Prepare(cfg, b, runner.Options{Quiet: true})
	if err != nil {
		return nil, err
	}
	p, tr, ev := setup.Problem, setup.Trainer, setup.Evaluator
	if !ev.Optimum().OK {
		return nil, errors.New("the theory predicts no optimum for Figure 1a's data, so there is no theory gap to reach")
	}
	// gap forms Θ (the feature engine keeps it only implicitly) and its gap.
	gap := func(s *trainers.State) (float64, error) {
		if err := tr.Sync(s); err != nil {
			return 0, err
		}
		z, err := ev.Features(s.Theta)
		if err != nil {
			return 0, err
		}
		return ev.Optimum().TheoryGap(z, p.N, p.M), nil
	}
	// Compile every graph of a run outside the timing.
	warm, err := trainers.NewState(p, setup.Theta0, cfg.Seed)
	if err != nil {
		return nil, err
	}
	if err := tr.Init(warm); err != nil {
		return nil, err
	}
	if _, err := advance(tr, warm, 3); err != nil {
		return nil, err
	}
	if _, err := gap(warm); err != nil {
		return nil, err
	}
	if _, err := ev.Measure(warm.Theta); err != nil {
		return nil, err
	}
	once := func() (int64, time.Duration, error) {
		s, err := trainers.NewState(p, setup.Theta0, cfg.Seed)
		if err != nil {
			return 0, 0, err
		}
		start := time.Now()
		if err := tr.Init(s); err != nil {
			return 0, 0, err
		}
		elapsed := time.Since(start)
		for {
			g, err := gap(s)
			if err != nil {
				return 0, 0, err
			}
			if g < opt.TTSTol {
				break
			}
			if s.Step >= opt.TTSMaxSteps {
				return 0, 0, fmt.Errorf("the theory gap is %.3g after %d steps, not below %g (raise --tts-max-steps)", g, s.Step, opt.TTSTol)
			}
			start := time.Now()
			if _, err := tr.Step(s); err != nil {
				return 0, 0, fmt.Errorf("step %d: %w", s.Step, err)
			}
			elapsed += time.Since(start)
		}
		m, err := ev.Measure(s.Theta)
		if err != nil {
			return 0, 0, err
		}
		if !(m.TheoryGap < opt.TTSTol) {
			return 0, 0, fmt.Errorf("the metrics' theory gap %v disagrees with the check's at step %d", m.TheoryGap, s.Step)
		}
		return s.Step, elapsed, nil
	}
	run := func(k int) (int64, time.Duration, error) {
		var steps int64
		var elapsed time.Duration
		for range k {
			n, el, err := once()
			if err != nil {
				return 0, 0, err
			}
			steps, elapsed = steps+n, elapsed+el
		}
		return steps, elapsed, nil
	}
	return &job{engine: tr.Engine(), path: tr.Path(), whole: true, run: run}, nil
}

// compile builds an Exec, turning GoMLX's panics into errors.
func compile(b backends.Backend, fn any) (e *graph.Exec, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("building graph: %v", r)
		}
	}()
	return graph.NewExecAny(b, fn)
}

// execute runs e, turning panics into errors.
func execute(e *graph.Exec, args ...any) (out []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", e.Name(), r)
		}
	}()
	return e.Exec(args...)
}

func nan() float64 { return math.NaN() }
