package trainers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Sink receives each logged Metrics row (cmd writes them to metrics.csv).
type Sink interface {
	Log(m Metrics) error
}

// LoopConfig sets the loop's budget and cadence.
type LoopConfig struct {
	Steps    int64   // run until State.Step reaches Steps
	LogEvery int64   // log every LogEvery steps, and always the last step
	MaxLoss  float64 // a loss above this, or NaN/Inf, is divergence; 0 means DefaultMaxLoss
	// Fresh marks a new run: the trainer's Init is called and step 0 is logged.
	// A resumed run is not re-initialised and its checkpointed step was logged already.
	Fresh bool
	// WallOffset is the wall time already spent by the run before this call (resume).
	WallOffset time.Duration
	// Progress, if set, gets a progress bar (use it only for a terminal).
	Progress io.Writer
	// CheckpointEvery, if > 0, calls Checkpoint every that many steps; Checkpoint
	// is also called at the end of the run, interrupted or not.
	CheckpointEvery int64
	Checkpoint      func(s *State, wall time.Duration) error
	// Snapshots lists steps (ascending) at which Snapshot is called with the state.
	Snapshots []int64
	Snapshot  func(s *State) error
}

// DefaultMaxLoss is the loss above which a run counts as diverged.
const DefaultMaxLoss = 1e12

// Result is how a call to Run ended.
type Result struct {
	Final       Metrics       // metrics at the last state reached
	Wall        time.Duration // including WallOffset
	Interrupted bool          // the context was cancelled before the budget was spent
}

// DivergedError reports a run stopped by a non-finite or too large loss.
type DivergedError struct {
	Step int64
	Loss float64
}

func (e *DivergedError) Error() string {
	return fmt.Sprintf("diverged at step %d (loss %g): try a smaller --eta (or smaller labels / --init-scale)", e.Step, e.Loss)
}

// Run is the one training loop. Under the feature engine s.Theta may be nil
// when it returns: call tr.Sync, or StreamTheta, to have Θ. It steps tr from s until cfg.Steps, logging
// ev's metrics to sink every cfg.LogEvery steps and at the end, stopping early
// on divergence (a *DivergedError, after logging what it had) or when ctx is
// cancelled (at a step boundary; Result.Interrupted). s is updated in place.
func Run(ctx context.Context, tr Trainer, ev *Evaluator, s *State, cfg LoopConfig, sink Sink) (Result, error) {
	if cfg.LogEvery <= 0 {
		return Result{}, fmt.Errorf("--log-every must be positive, got %d", cfg.LogEvery)
	}
	if cfg.Steps < s.Step {
		return Result{}, fmt.Errorf("the run is already at step %d, beyond --steps %d", s.Step, cfg.Steps)
	}
	maxLoss := cfg.MaxLoss
	if maxLoss == 0 {
		maxLoss = DefaultMaxLoss
	}
	start := time.Now()
	wall := func() time.Duration { return cfg.WallOffset + time.Since(start) }
	lastLogged := int64(-1)
	log := func() (Metrics, error) {
		mctx := ctx
		if ctx.Err() != nil {
			// Interrupted: the last row gets a short budget, not the
			// whole metrics' time (a second signal would have to kill us).
			c, cancel := context.WithTimeout(context.Background(), finalMetricsBudget)
			defer cancel()
			mctx = c
		}
		m, err := ev.MeasureStateContext(mctx, s)
		if err != nil {
			if mctx.Err() != nil && errors.Is(err, mctx.Err()) {
				err = errMetricsCut
			}
			return m, err
		}
		m.Step = s.Step
		m.WallSeconds = wall().Seconds()
		m.Extra = map[string]float64{}
		for _, name := range tr.Extras() {
			m.Extra[name] = s.Extra[name]
		}
		lastLogged = s.Step
		return m, sink.Log(m)
	}
	if cfg.Fresh {
		if err := tr.Init(s); err != nil {
			return Result{}, err
		}
	}
	last := unmeasured(s.Step)
	nextSnap := 0
	snapshot := func() error {
		for nextSnap < len(cfg.Snapshots) && cfg.Snapshots[nextSnap] < s.Step {
			nextSnap++ // already taken before a resume
		}
		if nextSnap < len(cfg.Snapshots) && cfg.Snapshots[nextSnap] == s.Step && cfg.Snapshot != nil {
			nextSnap++
			if err := tr.Sync(s); err != nil {
				return err
			}
			return cfg.Snapshot(s)
		}
		return nil
	}
	if cfg.Fresh {
		if err := snapshot(); err != nil {
			return Result{}, err
		}
		if m, err := log(); err == nil {
			last = m
		} else if err != errMetricsCut {
			return Result{}, err
		}
		if bad(last.Loss, maxLoss) && ctx.Err() == nil {
			return Result{Final: last, Wall: wall()}, &DivergedError{Step: s.Step, Loss: last.Loss}
		}
	}
	bar := newBar(cfg.Progress, cfg.Steps-s.Step)
	defer bar.finish()
	checkpoint := func() error { return cfg.Checkpoint(s, wall()) }
	result := Result{}
	limit := int64(1)
	for s.Step < cfg.Steps {
		if ctx.Err() != nil {
			result.Interrupted = true
			break
		}
		k := stride(s.Step, cfg, nextSnap, limit)
		t0 := time.Now()
		loss, err := tr.Advance(s, k)
		// Steps per call grow while a call is short and shrink when it is long,
		// so that an interrupt is seen within ~0.1 s; results do not depend on it.
		if el := time.Since(t0); el < 20*time.Millisecond && limit < 1<<20 {
			limit *= 2
		} else if el > 100*time.Millisecond && limit > 1 {
			limit /= 2
		}
		if err != nil {
			return Result{Final: last, Wall: wall()}, fmt.Errorf("step %d: %w", s.Step, err)
		}
		if bad(loss, maxLoss) {
			// The loss was measured before the last step: s.Step-1 is where it went wrong.
			if m, lerr := log(); lerr == nil {
				last = m
			}
			return Result{Final: last, Wall: wall()}, &DivergedError{Step: s.Step - 1, Loss: loss}
		}
		bar.add(k)
		if err := snapshot(); err != nil {
			return Result{Final: last, Wall: wall()}, err
		}
		if s.Step%cfg.LogEvery == 0 || s.Step == cfg.Steps {
			if m, err := log(); err == nil {
				last = m
			} else if err != errMetricsCut {
				return Result{}, err
			}
		}
		if cfg.CheckpointEvery > 0 && s.Step%cfg.CheckpointEvery == 0 && s.Step < cfg.Steps && cfg.Checkpoint != nil {
			if err := checkpoint(); err != nil {
				return Result{Final: last, Wall: wall()}, err
			}
		}
	}
	if lastLogged != s.Step {
		if m, err := log(); err == nil {
			last = m
		} else if err != errMetricsCut {
			return Result{}, err
		}
	}
	result.Final = last
	result.Wall = wall()
	if cfg.Checkpoint != nil {
		if err := checkpoint(); err != nil {
			return result, err
		}
	}
	if bad(last.Loss, maxLoss) && lastLogged == s.Step {
		return result, &DivergedError{Step: s.Step, Loss: last.Loss}
	}
	return result, nil
}

// finalMetricsBudget is how long an interrupted run may spend on its last
// metrics row before it leaves it out.
const finalMetricsBudget = time.Second

// errMetricsCut marks metrics given up because the run was interrupted.
var errMetricsCut = errors.New("metrics cut short by an interrupt")

// unmeasured is the metrics of a step whose metrics were not computed: all NaN.
func unmeasured(step int64) Metrics {
	nan := math.NaN()
	return Metrics{Step: step, Loss: nan, TraceHessian: nan, TraceHessianManifold: nan, TraceMin: nan, TheoryGap: nan,
		GradNorm: nan, RiemannianGradNorm: nan, EffectiveRank: nan, WallSeconds: nan}
}

// stride is how many steps the loop can take from step before it must stop
// to log, checkpoint, snapshot or end the run, at most limit.
func stride(step int64, cfg LoopConfig, nextSnap int, limit int64) int64 {
	next := min(cfg.Steps, (step/cfg.LogEvery+1)*cfg.LogEvery)
	if cfg.CheckpointEvery > 0 {
		next = min(next, (step/cfg.CheckpointEvery+1)*cfg.CheckpointEvery)
	}
	for _, snap := range cfg.Snapshots[min(nextSnap, len(cfg.Snapshots)):] {
		if snap > step {
			next = min(next, snap)
			break
		}
	}
	return max(1, min(next-step, limit))
}

func bad(loss, maxLoss float64) bool {
	return math.IsNaN(loss) || math.IsInf(loss, 0) || loss > maxLoss
}

// bar wraps a progress bar that updates at most every 1% of the run.
type bar struct {
	pb      *progressbar.ProgressBar
	pending int64
	chunk   int64
}

func newBar(w io.Writer, total int64) *bar {
	if w == nil || total <= 0 {
		return &bar{}
	}
	return &bar{
		pb: progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("steps"), progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish()),
		chunk: max(1, total/100),
	}
}

func (b *bar) add(n int64) {
	if b.pb == nil {
		return
	}
	b.pending += n
	if b.pending >= b.chunk {
		_ = b.pb.Add64(b.pending)
		b.pending = 0
	}
}

func (b *bar) finish() {
	if b.pb != nil {
		_ = b.pb.Add64(b.pending)
		_ = b.pb.Finish()
	}
}
