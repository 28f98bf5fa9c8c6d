package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/checkpoint"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
)

// Version is flatmin's version.
const Version = "0.1.0"

// Files of a run directory.
const (
	MetricsFile = "metrics.csv"  // one row per log step
	SummaryFile = "summary.json" // trainer, steps, wall_seconds, config, final
	ThetaFile   = "theta.npy"    // final Θ, m×d
	Theta0File  = "theta0.npy"   // initial Θ
	XFile       = "x.npy"        // the data the run used, n×d
	YFile       = "y.npy"        // its labels
	WFile       = "w.npy"        // second-layer weights
	ConfigFile  = "config.json"  // the run's configuration, written at its start
)

// InputError marks an error in what the user gave (flags, files): exit status 2.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// Input wraps err as an InputError (nil stays nil).
func Input(err error) error {
	if err == nil {
		return nil
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	return &InputError{Err: err}
}

// Summary is summary.json.
type Summary struct {
	Trainer     string           `json:"trainer"`
	Steps       int64            `json:"steps"`
	WallSeconds float64          `json:"wall_seconds"`
	Config      Config           `json:"config"`
	Final       trainers.Metrics `json:"final"`
	// Initial holds the metrics at Θ₀ (for a resumed run, read back from metrics.csv).
	Initial     *trainers.Metrics `json:"initial,omitempty"`
	Diverged    bool              `json:"diverged"`
	Interrupted bool              `json:"interrupted"`
	// Converged is true when the trainer reached a point it cannot improve
	// (the Riemannian flow: ‖grad_M F‖ at its rounding floor or --gtol).
	Converged bool `json:"converged"`
	// StopReason is why the run stopped: converged, steps (the budget was
	// spent), diverged, error or interrupted (trainers.Stop*).
	StopReason string `json:"stop_reason"`
	// ThetaStep is the step whose Θ theta.npy holds: the last step, or the
	// last finite state before it for a diverged run.
	ThetaStep int64  `json:"theta_step"`
	Error     string `json:"error,omitempty"`
	Backend   string `json:"backend"`
	Engine    string `json:"engine"` // the engine in force (Config.Engine may say auto)
	Path      string `json:"path"`   // where the steps ran: "host" (SimpleGo's host paths) or "graphs"
	Version   string `json:"version"`
}

// Options adjust Train for callers other than `flatmin train`.
type Options struct {
	Progress io.Writer      // progress bar target, nil for none
	Problem  *model.Problem // use this problem instead of building one from the config
	Theta0   []float64      // use this Θ₀ instead of the config's
	Quiet    bool
	Notes    io.Writer         // where notes on metrics left NaN for the problem's size go, nil for none
	resumed  bool              // no Θ₀: the state comes from a checkpoint
	initial  *trainers.Metrics // a resumed run's metrics at Θ₀, read back from metrics.csv
}

// Setup is a run ready to go: problem, Θ₀, trainer and evaluator.
type Setup struct {
	Config    Config
	Problem   *model.Problem
	Theta0    []float64
	Trainer   trainers.Trainer
	Evaluator *trainers.Evaluator
	identity  *checkpoint.Identity // the run's, written into each checkpoint
}

// extras are metrics.csv's columns after the singular values: the trainer's,
// then λ_max and λ_min when tracking sharpness.
func (s *Setup) extras() []string {
	extras := s.Trainer.Extras()
	if s.Config.TrackSharpness {
		extras = append(append([]string(nil), extras...), trainers.SharpnessColumns...)
	}
	return extras
}

// Prepare checks the configuration and builds everything a run needs.
func Prepare(cfg Config, b backends.Backend, opt Options) (*Setup, error) {
	if err := cfg.Check(); err != nil {
		return nil, Input(err)
	}
	p := opt.Problem
	if p == nil {
		var err error
		if p, err = cfg.Problem(); err != nil {
			return nil, Input(err)
		}
	} else {
		cfg.M, cfg.N, cfg.D = p.M, p.N, p.D
	}
	// For this trainer (compare and resume bring their problem along).
	if err := cfg.CheckMemory(p.M, p.N, p.D); err != nil {
		return nil, Input(err)
	}
	theta0 := opt.Theta0
	if theta0 == nil && !opt.resumed {
		var err error
		if theta0, err = cfg.Theta0(p); err != nil {
			return nil, Input(err)
		}
	}
	if !opt.resumed {
		if err := p.CheckTheta(theta0); err != nil {
			return nil, Input(err)
		}
	}
	// Before the automatic rules' passes over Θ₀ make their garbage.
	LimitMemory(p)
	cfg.LimitMemory(p)
	if cfg.EtaRule == Auto {
		if theta0 == nil {
			return nil, Input(fmt.Errorf("--eta auto needs Θ₀"))
		}
		cfg.Eta, cfg.EtaRule, _, _ = AutoEta(cfg.Trainer, p, theta0)
	}
	if cfg.RhoRule == Auto {
		if theta0 == nil {
			return nil, Input(fmt.Errorf("--rho auto needs Θ₀"))
		}
		cfg.Rho, cfg.RhoRule = AutoRho(p, theta0)
	}
	tr, err := trainers.New(cfg.Trainer, b, p, cfg.TrainerConfig())
	if err != nil {
		return nil, Input(err)
	}
	ev, err := trainers.NewEvaluator(b, p)
	if err != nil {
		return nil, err
	}
	if opt.Notes != nil && !opt.Quiet {
		for _, n := range ev.Notes() {
			fmt.Fprintf(opt.Notes, "flatmin: note: %s\n", n)
		}
	}
	if cfg.TrackSharpness {
		if err := ev.TrackSharpness(); err != nil {
			return nil, err
		}
	}
	return &Setup{Config: cfg, Problem: p, Theta0: theta0, Trainer: tr, Evaluator: ev}, nil
}

// LimitMemory sets a soft memory limit of 2.5× Θ's size for a large problem
// (Θ ≥ 64 MB), so that the Go heap, which otherwise grows to twice its live
// data between collections, keeps a run's resident memory below 3× Θ. It
// only ever lowers the limit.
func LimitMemory(p *model.Problem) {
	theta := int64(p.M) * int64(p.D) * 8
	if theta < 64<<20 {
		return
	}
	if limit := theta * 5 / 2; limit < debug.SetMemoryLimit(-1) {
		debug.SetMemoryLimit(limit)
	}
}

type csvSink struct {
	log    *runio.CSVLog
	extras []string
	first  *trainers.Metrics // the first row this run logged
}

func (s *csvSink) Log(m trainers.Metrics) error {
	if s.first == nil {
		s.first = &m
	}
	return s.log.Write(m.CSVRecord(s.extras))
}

// Train runs a fresh run into dir and writes its files. On divergence it
// still writes the summary (diverged: true) and returns the *DivergedError.
func Train(ctx context.Context, cfg Config, b backends.Backend, dir string, opt Options) (*Summary, error) {
	setup, err := Prepare(cfg, b, opt)
	if err != nil {
		return nil, err
	}
	return setup.Train(ctx, b, dir, opt)
}

// Train runs the prepared setup into a new run directory dir, which it
// creates (or finds empty) and locks for the run's life. A run that fails
// before its first step leaves nothing behind.
func (s *Setup) Train(ctx context.Context, b backends.Backend, dir string, opt Options) (sum *Summary, err error) {
	out, err := ClaimOutDir(dir, "--out")
	if err != nil {
		return nil, Input(err)
	}
	var state *trainers.State
	defer func() {
		if err != nil && (state == nil || state.Step == 0) {
			out.Discard()
		} else {
			out.Close()
		}
	}()
	sum, state, err = s.start(ctx, b, dir, opt)
	return sum, err
}

// start writes a new run's files into dir and runs it.
func (s *Setup) start(ctx context.Context, b backends.Backend, dir string, opt Options) (*Summary, *trainers.State, error) {
	p := s.Problem
	for _, f := range []struct {
		name   string
		values []float64
		dims   []int
	}{
		{XFile, p.X, []int{p.N, p.D}}, {YFile, p.Y, []int{p.N}}, {WFile, p.W, []int{p.M}}, {Theta0File, s.Theta0, []int{p.M, p.D}},
	} {
		if err := runio.WriteNpy(filepath.Join(dir, f.name), f.values, f.dims...); err != nil {
			return nil, nil, Input(fmt.Errorf("--out: %w", err))
		}
	}
	state, err := trainers.NewStateOn(b, p, s.Theta0, s.Config.Seed)
	if err != nil {
		return nil, nil, Input(err)
	}
	// The state holds Θ₀ now; a large Θ₀ is not kept twice.
	s.Theta0 = nil
	if s.identity, err = RunIdentity(dir, s.Config); err != nil {
		return nil, state, Input(fmt.Errorf("--out: %w", err))
	}
	if err := runio.WriteJSON(filepath.Join(dir, ConfigFile), s.Config); err != nil {
		return nil, state, Input(fmt.Errorf("--out: %w", err))
	}
	log, err := runio.CreateCSVLog(filepath.Join(dir, MetricsFile), trainers.CSVHeader(p, s.extras()))
	if err != nil {
		return nil, state, Input(fmt.Errorf("--out: %w", err))
	}
	sum, err := s.run(ctx, b, dir, state, log, true, 0, opt)
	return sum, state, err
}

// run drives the loop from state, appending to log, and writes the
// checkpoints, snapshots, final Θ and summary. It closes log.
func (s *Setup) run(ctx context.Context, b backends.Backend, dir string, state *trainers.State, log *runio.CSVLog,
	fresh bool, wallOffset time.Duration, opt Options) (*Summary, error) {
	p := s.Problem
	cfgJSON, err := json.Marshal(s.Config)
	if err != nil {
		log.Close()
		return nil, err
	}
	loop := trainers.LoopConfig{
		Steps: s.Config.Steps, LogEvery: s.Config.LogEvery, MaxLoss: s.Config.MaxLoss, Fresh: fresh,
		WallOffset: wallOffset, Progress: opt.Progress, CheckpointEvery: s.Config.CheckpointEvery,
		Checkpoint: func(st *trainers.State, wall time.Duration) error {
			c := &checkpoint.Checkpoint{
				Step: st.Step, M: p.M, D: p.D, N: p.N, RNG: st.RNGValues(),
				Extra: st.Extra, WallSeconds: wall.Seconds(), Config: cfgJSON, Identity: s.identity,
			}
			if st.Features != nil {
				c.Base, c.Features = st.Base, st.Features
			} else {
				c.Theta = st.Theta
			}
			return checkpoint.Write(dir, c)
		},
	}
	if s.Config.Snapshots > 0 {
		loop.Snapshots = SnapshotSteps(s.Config.Snapshots, s.Config.Steps)
		loop.Snapshot = func(st *trainers.State) error { return s.writeSnapshot(dir, st) }
	}
	sink := &csvSink{log: log, extras: s.extras(), first: opt.initial}
	if err := s.reserve(dir, state); err != nil {
		log.Close()
		return nil, err
	}
	res, runErr := trainers.Run(ctx, s.Trainer, s.Evaluator, state, loop, sink)
	if err := log.Close(); err != nil && runErr == nil {
		runErr, res.StopReason = err, trainers.StopError
	}
	if res.StopReason == "" { // Run failed before its first step (Init)
		res.StopReason = trainers.StopError
	}
	var div *trainers.DivergedError
	if errors.As(runErr, &div) {
		div.Eta = s.Config.Eta
		div.StableEta = StableEta(s.Problem, s.Trainer.Name(), dir)
	}
	sum := &Summary{
		Trainer: s.Trainer.Name(), Steps: state.Step, WallSeconds: res.Wall.Seconds(), Config: s.Config,
		Final: res.Final, Initial: sink.first, Diverged: div != nil, Interrupted: res.Interrupted,
		Converged: res.StopReason == trainers.StopConverged, StopReason: res.StopReason, ThetaStep: state.Step,
		Backend: b.Name(), Engine: s.Trainer.Engine(), Path: s.Trainer.Path(), Version: Version,
	}
	if runErr != nil {
		sum.Error = runErr.Error()
	}
	// Whatever stopped the run, its results are written: Θ (the last finite
	// state; Θ₀ if none is left) and the summary saying why it stopped.
	written, err := s.writeTheta(filepath.Join(dir, ThetaFile), state)
	if err == nil && !written {
		sum.ThetaStep = 0
		err = copyFile(filepath.Join(dir, Theta0File), filepath.Join(dir, ThetaFile))
	}
	if err != nil {
		return sum, errors.Join(runErr, err)
	}
	if err := runio.WriteJSONReserved(filepath.Join(dir, SummaryFile), sum); err != nil {
		return sum, errors.Join(runErr, err)
	}
	if errors.Is(runErr, trainers.ErrSingularJJT) {
		return sum, Input(runErr) // a property of the data and model the user gave
	}
	return sum, runErr
}

// StopRunning is summary.json's stop_reason while a run goes on (and after
// a crash that left no other word: kill -9, power loss).
const StopRunning = "running"

// reserve writes, before the first step, the files a stop must be able to
// write even on a full disk: summary.json saying the run is going on,
// padded to the size its final version may take, and theta.npy (Θ₀ for a
// fresh run), whose size never changes. The final versions overwrite them
// in place when there is no room for a temporary file (runio.WriteReserved).
func (s *Setup) reserve(dir string, state *trainers.State) error {
	p := s.Problem
	sum := &Summary{Trainer: s.Trainer.Name(), Steps: state.Step, Config: s.Config, StopReason: StopRunning, ThetaStep: -1, Version: Version}
	size := 16<<10 + 4*32*(min(p.N, p.M)+min(p.M, p.D))
	if err := runio.Reserve(filepath.Join(dir, SummaryFile), sum, size); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, ThetaFile)); err == nil {
		return nil
	}
	return copyFile(filepath.Join(dir, Theta0File), filepath.Join(dir, ThetaFile))
}

// copyFile copies src to dst atomically (in place on a full disk, see runio.WriteReserved).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return runio.WriteReserved(dst, func(w io.Writer) error {
		if _, err := in.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(w, in)
		return err
	})
}

// errNotFinite stops writing a Θ with NaN or Inf entries.
var errNotFinite = errors.New("Θ is not finite")

// writeTheta streams the final Θ to path and reports whether it did; a Θ
// with NaN or Inf (a diverged run) is not written, and an earlier file stays
// as it was.
func (s *Setup) writeTheta(path string, state *trainers.State) (bool, error) {
	p := s.Problem
	err := runio.WriteReserved(path, func(w io.Writer) error {
		return npy.Write(w, []int{p.M, p.D}, func(emit func([]float64) error) error {
			return trainers.StreamTheta(s.Trainer, state, func(v []float64) error {
				if !finite(v) {
					return errNotFinite
				}
				return emit(v)
			})
		})
	})
	if errors.Is(err, errNotFinite) {
		return false, nil
	}
	return err == nil, err
}

// SnapshotDir holds a run's neuron snapshots: z_<step>.npy (Z = XΘᵀ, n×m) and
// theta_<step>.npy (m×d), with the step zero-padded to 10 digits.
const SnapshotDir = "snapshots"

// SnapshotSteps spreads k snapshots evenly over a run of the given length,
// from step 0 to the last step.
func SnapshotSteps(k int, steps int64) []int64 {
	if k == 1 {
		return []int64{steps}
	}
	var out []int64
	for i := range k {
		st := int64(math.Round(float64(i) * float64(steps) / float64(k-1)))
		if len(out) == 0 || st > out[len(out)-1] {
			out = append(out, st)
		}
	}
	return out
}

func (s *Setup) writeSnapshot(dir string, st *trainers.State) error {
	p := s.Problem
	sd := filepath.Join(dir, SnapshotDir)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return err
	}
	// Both streamed: Z [n, m] as Zᵀ's rows (column-major), Θ a block at a
	// time under the feature engine, so a snapshot adds no m-sized array.
	err := runio.WriteAtomic(filepath.Join(sd, fmt.Sprintf("z_%010d.npy", st.Step)), func(w io.Writer) error {
		return npy.WriteFortran(w, []int{p.N, p.M}, func(emit func([]float64) error) error {
			return trainers.StreamFeatures(p, s.Trainer, st, emit)
		})
	})
	if err != nil {
		return err
	}
	return runio.WriteAtomic(filepath.Join(sd, fmt.Sprintf("theta_%010d.npy", st.Step)), func(w io.Writer) error {
		return npy.Write(w, []int{p.M, p.D}, func(emit func([]float64) error) error {
			return trainers.StreamTheta(s.Trainer, st, emit)
		})
	})
}

func finite(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// DefaultOutDir names a fresh run directory under runs/.
func DefaultOutDir(trainer string) string {
	return filepath.Join("runs", fmt.Sprintf("%s-%s", trainer, time.Now().Format("20060102-150405.000")))
}
