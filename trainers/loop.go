package trainers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
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

// Why a run stopped (Result.StopReason, summary.json's stop_reason).
const (
	StopConverged   = "converged"   // the trainer reached a point it cannot improve (Converger)
	StopSteps       = "steps"       // the step budget was spent
	StopDiverged    = "diverged"    // the loss became NaN, Inf or larger than MaxLoss
	StopError       = "error"       // the trainer failed (e.g. J Jᵀ singular)
	StopInterrupted = "interrupted" // the context was cancelled (a signal)
)

// Result is how a call to Run ended.
type Result struct {
	Final       Metrics       // metrics at the last state reached (logged as the last row)
	Wall        time.Duration // including WallOffset
	Interrupted bool          // the context was cancelled before the budget was spent
	StopReason  string        // one of the Stop constants
}

// DivergedError reports a run stopped by a non-finite or too large loss.
type DivergedError struct {
	Step int64
	Loss float64
	// Eta is the step size in force and StableEta one that the curvature
	// allows (0 when unknown); the caller fills them in.
	Eta, StableEta float64
}

func (e *DivergedError) Error() string {
	msg := fmt.Sprintf("diverged at step %d (loss %g)", e.Step, e.Loss)
	if e.StableEta > 0 {
		return msg + fmt.Sprintf(": η = %.3g is too large for the curvature met; try --eta %.3g, what --eta auto picks here from the curvature at Θ₀ and at the predicted optimum", e.Eta, e.StableEta)
	}
	return msg + ": try a smaller --eta (or --eta auto, smaller labels or --init-scale)"
}

// backupLimit bounds the parameters (values) for which the loop keeps a copy
// of the state before each call, to step back to the last finite state when
// a run diverges; larger runs keep only what they have at the stop.
const backupLimit = 1 << 22

// Run is the one training loop. Under the feature engine s.Theta may be nil
// when it returns: call tr.Sync, or StreamTheta, to have Θ. It steps tr from
// s until cfg.Steps or until tr (a Converger) has converged, logging ev's
// metrics to sink every cfg.LogEvery steps and at the stopping step. It stops
// early on divergence (a *DivergedError, with s at the last finite state it
// could recover), on a trainer error (s as it was before the failed step) or
// when ctx is cancelled (at a step boundary). Result.StopReason says which;
// the stopping step is logged whenever its metrics can be measured. s is
// updated in place.
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
	if !cfg.Fresh && s.Step%cfg.LogEvery == 0 {
		// A resumed run's checkpointed step on the log cadence was logged
		// before; a row off it (an interruption's) is not kept on resume.
		lastLogged = s.Step
	}
	last := unmeasured(s.Step)
	haveLast := false
	measure := func() (Metrics, error) {
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
		if m.Extra == nil { // MeasureState's own extras (sharpness) stay
			m.Extra = map[string]float64{}
		}
		for _, name := range tr.Extras() {
			m.Extra[name] = s.Extra[name]
		}
		return m, nil
	}
	// log measures and logs the current step; a row cut short by an
	// interrupt is left out (nil error), as an uninterrupted run has none there.
	log := func() error {
		m, err := measure()
		if err == errMetricsCut {
			return nil
		}
		if err != nil {
			return err
		}
		lastLogged, last, haveLast = s.Step, m, true
		return sink.Log(m)
	}
	nextSnap := 0 // index of the next snapshot step to take
	// stop ends the run: the stopping step is logged (if it was not) and
	// checkpointed, whatever the reason.
	stop := func(reason string, runErr error) (Result, error) {
		if reason == StopConverged && cfg.Snapshot != nil && nextSnap < len(cfg.Snapshots) && (nextSnap == 0 || cfg.Snapshots[nextSnap-1] != s.Step) {
			// Stopped before the snapshots planned for later: one at the end.
			if err := tr.Sync(s); err == nil {
				runErr = cfg.Snapshot(s)
			}
		}
		if lastLogged != s.Step {
			if err := log(); err != nil && runErr == nil {
				runErr = err
			}
		} else if !haveLast {
			// Resumed at its stopping step: the row exists; measure for Final only.
			if m, err := measure(); err == nil {
				last = m
			}
		}
		res := Result{Final: last, Wall: wall(), Interrupted: reason == StopInterrupted, StopReason: reason}
		if cfg.Checkpoint != nil && reason != StopDiverged {
			if err := cfg.Checkpoint(s, wall()); err != nil && runErr == nil {
				runErr, res.StopReason = err, StopError
			}
		}
		return res, runErr
	}
	conv, _ := tr.(Converger)
	converged := func() bool { return conv != nil && conv.Converged(s) }
	if cfg.Fresh {
		if err := tr.Init(s); err != nil {
			return Result{StopReason: StopError}, err
		}
	}
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
			return stop(StopError, err)
		}
		if err := log(); err != nil {
			return Result{StopReason: StopError}, err
		}
		if bad(last.Loss, maxLoss) && ctx.Err() == nil {
			return stop(StopDiverged, &DivergedError{Step: s.Step, Loss: last.Loss})
		}
	}
	bar := newBar(cfg.Progress, cfg.Steps-s.Step)
	defer bar.finish()
	limit := int64(1)
	for s.Step < cfg.Steps && !converged() {
		if ctx.Err() != nil {
			return stop(StopInterrupted, nil)
		}
		k := stride(s.Step, cfg, nextSnap, limit)
		backup := backupOf(tr, s)
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
			// s is as before the failed call: a call updates it only when it succeeds.
			return stop(StopError, fmt.Errorf("step %d: %w", s.Step, err))
		}
		if bad(loss, maxLoss) {
			// The loss is measured before a step: find the first state whose loss is bad.
			div := &DivergedError{Step: s.Step - 1, Loss: loss}
			if backup != nil {
				*s = *backup
				div.Step, div.Loss = replay(tr, s, k, maxLoss)
			}
			return stop(StopDiverged, div)
		}
		bar.add(k)
		if err := snapshot(); err != nil {
			return stop(StopError, err)
		}
		if s.Step%cfg.LogEvery == 0 || s.Step == cfg.Steps {
			if err := log(); err != nil {
				return stop(StopError, err)
			}
		}
		if cfg.CheckpointEvery > 0 && s.Step%cfg.CheckpointEvery == 0 && s.Step < cfg.Steps && cfg.Checkpoint != nil {
			if err := cfg.Checkpoint(s, wall()); err != nil {
				return stop(StopError, err)
			}
		}
	}
	reason := StopSteps
	if converged() {
		reason = StopConverged
	}
	res, err := stop(reason, nil)
	if err == nil && lastLogged == s.Step && bad(last.Loss, maxLoss) {
		res.StopReason = StopDiverged
		return res, &DivergedError{Step: s.Step, Loss: last.Loss}
	}
	return res, err
}

// backupOf copies the moving parts of s to host memory when they are small
// (backupLimit), so that the loop can step back; nil otherwise.
func backupOf(tr Trainer, s *State) *State {
	cur := s.Theta
	if s.Features != nil {
		cur = s.Features
	}
	if cur == nil || cur.Shape().Size() > backupLimit {
		return nil
	}
	c := &State{Step: s.Step, Base: s.Base, Extra: maps.Clone(s.Extra)}
	var err error
	if c.RNG, err = s.RNG.LocalClone(); err != nil {
		return nil
	}
	if s.Features != nil {
		if c.Features, err = s.Features.LocalClone(); err != nil {
			return nil
		}
		if s.Theta == s.Base {
			c.Theta = s.Base
		}
	} else if c.Theta, err = s.Theta.LocalClone(); err != nil {
		return nil
	}
	return c
}

// replay takes single steps from s (at most k) until the loss before one is
// bad, and returns that step and loss. s is left at the last finite state:
// that step's start when its loss is finite (only too large), else the state
// before it. Steps are deterministic, so these are the states the fused call
// passed through.
func replay(tr Trainer, s *State, k int64, maxLoss float64) (int64, float64) {
	var prev *State
	for range k {
		cur := backupOf(tr, s)
		loss, err := tr.Step(s)
		if err != nil || bad(loss, maxLoss) {
			switch {
			case err == nil && (math.IsNaN(loss) || math.IsInf(loss, 0)) && prev != nil:
				*s = *prev
			case cur != nil:
				*s = *cur
			}
			return s.Step, loss
		}
		prev = cur
	}
	return s.Step, math.NaN()
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

// finalMetricsBudget is how long an interrupted run may spend on its last
// metrics row before it leaves it out.
const finalMetricsBudget = time.Second

// errMetricsCut marks metrics given up because the run was interrupted.
var errMetricsCut = errors.New("metrics cut short by an interrupt")

// unmeasured is a metrics row with nothing measured (NaN), for a run
// stopped before its first row.
func unmeasured(step int64) Metrics {
	nan := math.NaN()
	return Metrics{Step: step, Loss: nan, TraceHessian: nan, TraceHessianManifold: nan, TraceMin: nan, TheoryGap: nan,
		GradNorm: nan, RiemannianGradNorm: nan, EffectiveRank: nan, WallSeconds: nan}
}
