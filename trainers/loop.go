package trainers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
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
	// Snapshots lists steps (ascending) at which Snapshot is called with the
	// state (as it is: under the feature engine Θ may be nil; see StreamTheta).
	Snapshots []int64
	Snapshot  func(s *State) error
	// Hooks are the caller's, run at the steps they ask for after the
	// loop's own (snapshots, logging, checkpoints).
	Hooks []Hook
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
		return msg + fmt.Sprintf(": η = %.3g is too large for the curvature met", e.Eta)
	}
	return msg
}

// backupLimit bounds the parameters (values) for which the loop keeps a copy
// of the state before each call, to step back to the last finite state when
// a run diverges; larger runs keep only what they have at the stop.
const backupLimit = 1 << 22

// Hook is work the loop does at some steps, in the manner of GoMLX's
// train.EveryNSteps: Next says the first step after `step` at which the hook
// needs the loop, and the loop's fused calls stop there (the stride is the
// minimum over its hooks); Do runs it once the loop stands at that step.
// The loop's own logging, checkpoints and snapshots are hooks; LoopConfig.Hooks
// adds a caller's, run after them.
type Hook interface {
	Next(step int64) int64
	Do(s *State) error
}

// never is a Hook's Next when it needs the loop at no later step.
const never = math.MaxInt64

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
	l, err := newLoop(ctx, tr, ev, s, cfg, sink)
	if err != nil {
		return Result{StopReason: StopError}, err
	}
	if cfg.Fresh {
		if err := tr.Init(s); err != nil {
			return Result{StopReason: StopError}, err
		}
		if err := l.snaps.at(s); err != nil {
			return l.stop(StopError, err)
		}
		if err := l.log.Do(s); err != nil {
			return Result{StopReason: StopError}, err
		}
		if bad(l.log.last.Loss, l.maxLoss) && ctx.Err() == nil {
			return l.stop(StopDiverged, &DivergedError{Step: s.Step, Loss: l.log.last.Loss})
		}
	}
	bar := newBar(cfg.Progress, cfg.Steps-s.Step)
	defer bar.finish()
	for s.Step < cfg.Steps && !l.converged() {
		if ctx.Err() != nil {
			return l.stop(StopInterrupted, nil)
		}
		from := s.Step
		if reason, err := l.advance(l.stride()); reason != "" {
			return l.stop(reason, err)
		}
		bar.add(s.Step - from)
		for _, h := range l.hooks {
			if h.Next(from) == s.Step {
				if err := h.Do(s); err != nil {
					return l.stop(StopError, err)
				}
			}
		}
	}
	reason := StopSteps
	if l.converged() {
		reason = StopConverged
	}
	res, err := l.stop(reason, nil)
	if err == nil && l.log.at == s.Step && bad(l.log.last.Loss, l.maxLoss) {
		res.StopReason = StopDiverged
		return res, &DivergedError{Step: s.Step, Loss: l.log.last.Loss}
	}
	return res, err
}

// loop is one call of Run: its state between steps.
type loop struct {
	tr      Trainer
	s       *State
	cfg     LoopConfig
	maxLoss float64
	log     *logHook
	snaps   *snapshotHook
	hooks   []Hook // in the order they run at a step
	limit   int64  // most steps per call, adapted to the calls' times
	conv    Converger
}

func newLoop(ctx context.Context, tr Trainer, ev *Evaluator, s *State, cfg LoopConfig, sink Sink) (*loop, error) {
	if cfg.LogEvery <= 0 {
		return nil, fmt.Errorf("LoopConfig.LogEvery must be positive, got %d", cfg.LogEvery)
	}
	if cfg.Steps < s.Step {
		return nil, fmt.Errorf("the run is already at step %d, beyond its budget of %d steps", s.Step, cfg.Steps)
	}
	l := &loop{tr: tr, s: s, cfg: cfg, maxLoss: cfg.MaxLoss, limit: 1}
	if l.maxLoss == 0 {
		l.maxLoss = DefaultMaxLoss
	}
	l.conv, _ = tr.(Converger)
	start := time.Now()
	wall := func() time.Duration { return cfg.WallOffset + time.Since(start) }
	l.log = &logHook{ctx: ctx, tr: tr, ev: ev, sink: sink, every: cfg.LogEvery, steps: cfg.Steps, wall: wall,
		at: -1, last: unmeasured(s.Step)}
	if !cfg.Fresh && s.Step%cfg.LogEvery == 0 {
		// A resumed run's checkpointed step on the log cadence was logged
		// before; a row off it (an interruption's) is not kept on resume.
		l.log.at = s.Step
	}
	l.snaps = &snapshotHook{steps: cfg.Snapshots, save: cfg.Snapshot}
	l.hooks = []Hook{l.snaps, l.log}
	if cfg.CheckpointEvery > 0 && cfg.Checkpoint != nil {
		l.hooks = append(l.hooks, &checkpointHook{every: cfg.CheckpointEvery, steps: cfg.Steps, save: cfg.Checkpoint, wall: wall})
	}
	l.hooks = append(l.hooks, cfg.Hooks...)
	return l, nil
}

func (l *loop) converged() bool { return l.conv != nil && l.conv.Converged(l.s) }

// stride is how many steps the next call may take: up to the first step a
// hook or the budget needs, at most limit.
func (l *loop) stride() int64 {
	next := l.cfg.Steps
	for _, h := range l.hooks {
		next = min(next, h.Next(l.s.Step))
	}
	return max(1, min(next-l.s.Step, l.limit))
}

// advance takes k steps in one call and returns a stop reason ("" to go on).
// On divergence it steps back to the last finite state it can recover.
func (l *loop) advance(k int64) (string, error) {
	backup := backupOf(l.tr, l.s)
	t0 := time.Now()
	loss, err := l.tr.Advance(l.s, k)
	// Steps per call grow while a call is short and shrink when it is long,
	// so that an interrupt is seen within ~0.1 s; results do not depend on it.
	if el := time.Since(t0); el < 20*time.Millisecond && l.limit < 1<<20 {
		l.limit *= 2
	} else if el > 100*time.Millisecond && l.limit > 1 {
		l.limit /= 2
	}
	if err != nil {
		// s is as before the failed call: a call updates it only when it succeeds.
		return StopError, fmt.Errorf("step %d: %w", l.s.Step, err)
	}
	if bad(loss, l.maxLoss) {
		// The loss is measured before a step: find the first state whose loss is bad.
		div := &DivergedError{Step: l.s.Step - 1, Loss: loss}
		if backup != nil {
			*l.s = *backup
			div.Step, div.Loss = replay(l.tr, l.s, k, l.maxLoss)
		}
		return StopDiverged, div
	}
	return "", nil
}

// stop ends the run: the stopping step is logged (if it was not) and
// checkpointed, whatever the reason.
func (l *loop) stop(reason string, runErr error) (Result, error) {
	s := l.s
	if reason == StopConverged && l.snaps.pendingAfter(s.Step) {
		// Stopped before the snapshots planned for later: one at the end.
		runErr = l.snaps.save(s)
	}
	if l.log.at != s.Step {
		if err := l.log.Do(s); err != nil && runErr == nil {
			runErr = err
		}
	} else if !l.log.have {
		// Resumed at its stopping step: the row exists; measure for Final only.
		if m, err := l.log.measure(s); err == nil {
			l.log.last = m
		}
	}
	res := Result{Final: l.log.last, Wall: l.log.wall(), Interrupted: reason == StopInterrupted, StopReason: reason}
	if l.cfg.Checkpoint != nil && reason != StopDiverged {
		if err := l.cfg.Checkpoint(s, l.log.wall()); err != nil && runErr == nil {
			runErr, res.StopReason = err, StopError
		}
	}
	return res, runErr
}

// logHook measures and logs metrics every `every` steps and at the last.
type logHook struct {
	ctx   context.Context
	tr    Trainer
	ev    *Evaluator
	sink  Sink
	every int64
	steps int64
	wall  func() time.Duration
	at    int64   // the step last logged (-1: none)
	last  Metrics // its row
	have  bool    // last was measured in this call of Run
}

func (h *logHook) Next(step int64) int64 { return min(h.steps, (step/h.every+1)*h.every) }

// Do measures and logs the current step; a row cut short by an interrupt is
// left out (nil error), as an uninterrupted run has none there.
func (h *logHook) Do(s *State) error {
	m, err := h.measure(s)
	if err == errMetricsCut {
		return nil
	}
	if err != nil {
		return err
	}
	h.at, h.last, h.have = s.Step, m, true
	return h.sink.Log(m)
}

func (h *logHook) measure(s *State) (Metrics, error) {
	mctx := h.ctx
	if h.ctx.Err() != nil {
		// Interrupted: the last row gets a short budget, not the
		// whole metrics' time (a second signal would have to kill us).
		c, cancel := context.WithTimeout(context.Background(), finalMetricsBudget)
		defer cancel()
		mctx = c
	}
	m, err := h.ev.MeasureStateContext(mctx, s)
	if err != nil {
		if mctx.Err() != nil && errors.Is(err, mctx.Err()) {
			err = errMetricsCut
		}
		return m, err
	}
	m.Step = s.Step
	m.WallSeconds = h.wall().Seconds()
	if m.Extra == nil { // MeasureState's own extras (sharpness) stay
		m.Extra = map[string]float64{}
	}
	for _, name := range h.tr.Extras() {
		m.Extra[name] = s.Extra[name]
	}
	return m, nil
}

// checkpointHook saves the state every `every` steps before the last (the
// last is saved when the run stops, whatever the reason).
type checkpointHook struct {
	every, steps int64
	save         func(s *State, wall time.Duration) error
	wall         func() time.Duration
}

func (h *checkpointHook) Next(step int64) int64 {
	if next := (step/h.every + 1) * h.every; next < h.steps {
		return next
	}
	return never
}

func (h *checkpointHook) Do(s *State) error { return h.save(s, h.wall()) }

// snapshotHook saves Θ and Z at the planned steps (ascending).
type snapshotHook struct {
	steps []int64
	save  func(s *State) error
}

func (h *snapshotHook) Next(step int64) int64 {
	if h.save == nil {
		return never
	}
	i, _ := slices.BinarySearch(h.steps, step+1)
	if i == len(h.steps) {
		return never
	}
	return h.steps[i]
}

// Do saves a snapshot; the state is passed as it is (under the feature
// engine without Θ: StreamTheta and StreamFeatures form what is written a
// block at a time).
func (h *snapshotHook) Do(s *State) error { return h.save(s) }

// at takes the snapshot planned for the current step, if any (a fresh run's step 0).
func (h *snapshotHook) at(s *State) error {
	if h.save != nil && slices.Contains(h.steps, s.Step) {
		return h.Do(s)
	}
	return nil
}

// pendingAfter reports whether snapshots are planned after step and none at it.
func (h *snapshotHook) pendingAfter(step int64) bool {
	return h.save != nil && h.Next(step) != never && !slices.Contains(h.steps, step)
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
