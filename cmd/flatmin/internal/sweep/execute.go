package sweep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/gomlx/gomlx/backends"
)

// Outcome is what Execute did with a run.
type Outcome struct {
	Action  string // "skipped" (finished before), "busy" (another process runs it), "started", "resumed"
	State   RunState
	Summary *runner.Summary
}

// Execute brings run r of the sweep in dir to an end in this process: a
// finished run (done or failed) is left as it is, one another process holds
// is left to it, an interrupted one is resumed from its newest checkpoint,
// and one never started (or killed before its first checkpoint) starts
// afresh; runs are deterministic, so a restart gives the same run. A run
// that fails before it has a summary gets ErrorFile with the reason.
func Execute(ctx context.Context, dir string, s *Spec, r Run, b backends.Backend) (Outcome, error) {
	rd := filepath.Join(dir, r.Dir)
	if err := os.MkdirAll(filepath.Dir(rd), 0o755); err != nil {
		return Outcome{}, err
	}
	st := State(rd)
	if st.Finished() {
		return Outcome{Action: "skipped", State: st}, nil
	}
	if _, err := os.Stat(rd); err == nil {
		var busy bool
		if st, busy, err = inspect(rd, st.Summary == nil); err != nil || busy || st.Finished() {
			return Outcome{Action: idle(busy), State: State(rd)}, err
		}
	}
	cfg, err := s.Config(r)
	if err != nil {
		return Outcome{}, runner.Input(err)
	}
	opt := runner.Options{Quiet: true}
	out := Outcome{Action: "started"}
	var sum *runner.Summary
	if st.Summary != nil {
		out.Action = "resumed"
		sum, _, err = runner.Resume(ctx, rd, cfg, nil, b, opt)
		var inUse *runio.InUseError
		if err != nil && sum == nil && ctx.Err() == nil && !errors.As(err, &inUse) {
			// No checkpoint to resume from (killed early), or none usable:
			// start again, the run is deterministic.
			var busy bool
			if st, busy, err = inspect(rd, true); err != nil || busy || st.Finished() {
				return Outcome{Action: idle(busy), State: State(rd)}, err
			}
			out.Action = "started"
			sum, err = runner.Train(ctx, cfg, b, rd, opt)
		}
	} else {
		sum, err = runner.Train(ctx, cfg, b, rd, opt)
	}
	out.Summary = sum
	if sum == nil && err != nil && ctx.Err() == nil {
		// Another process took the run first, or finished it meanwhile.
		var inUse *runio.InUseError
		if st := State(rd); errors.As(err, &inUse) || st.Finished() || st.Status == StatusRunning {
			return Outcome{Action: "busy", State: st}, nil
		}
		if werr := RecordFailure(rd, err.Error()); werr != nil {
			return out, errors.Join(err, werr)
		}
	}
	out.State = State(rd)
	return out, err
}

// idle names what Execute did with a run it did not run.
func idle(busy bool) string {
	if busy {
		return "busy"
	}
	return "skipped"
}

// inspect reads the run directory rd holding its lock, so that no other
// process starts or resumes the run meanwhile, and with clear empties it
// (but for the lock) unless the run has finished: what is left of a run
// that cannot be resumed. busy says another process holds the lock; a
// collecting process probes it for an instant, so it is tried again.
func inspect(rd string, clear bool) (st RunState, busy bool, err error) {
	var lock *runio.Lock
	for try := 0; ; try++ {
		if lock, err = runio.TryLock(rd); err == nil {
			break
		}
		var inUse *runio.InUseError
		if !errors.As(err, &inUse) {
			return st, false, err
		}
		if try == 20 {
			return st, true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer lock.Unlock()
	st = readState(rd, false)
	if st.Finished() || !clear {
		return st, false, nil
	}
	entries, err := os.ReadDir(rd)
	if err != nil {
		return st, false, err
	}
	for _, e := range entries {
		if e.Name() != runio.LockFile {
			if err := os.RemoveAll(filepath.Join(rd, e.Name())); err != nil {
				return st, false, err
			}
		}
	}
	return RunState{Status: StatusPending}, false, nil
}

// RecordFailure writes ErrorFile into a run directory that has no summary:
// the run failed before it had one (a worker also records a process that
// died). A run with a summary already says how it stopped.
func RecordFailure(rd, msg string) error {
	if _, err := os.Stat(filepath.Join(rd, runner.SummaryFile)); err == nil {
		return nil
	}
	if err := os.MkdirAll(rd, 0o755); err != nil {
		return err
	}
	return runio.WriteJSON(filepath.Join(rd, ErrorFile), map[string]string{"error": msg})
}

// Run returns run i of the sweep, or an error naming the range (--task).
func (s *Spec) Run(i int) (Run, error) {
	runs := s.Runs()
	if i < 0 || i >= len(runs) {
		return Run{}, fmt.Errorf("--task %d is out of range: the sweep has %d runs (0 to %d)", i, len(runs), len(runs)-1)
	}
	return runs[i], nil
}

// SetAsideFailed renames a failed run's directory to DIR.failed-K (the first
// K ≥ 1 free) so that the run starts afresh, keeping what it computed and
// why it failed (--retry-failed); kept is "" when the run has not failed.
// The run's lock is held meanwhile, so no other process is inside it.
func SetAsideFailed(dir string, r Run) (kept string, err error) {
	rd := filepath.Join(dir, r.Dir)
	if State(rd).Status != StatusFailed {
		return "", nil
	}
	lock, err := runio.TryLock(rd)
	if err != nil {
		return "", err
	}
	if readState(rd, false).Status != StatusFailed {
		lock.Unlock()
		return "", nil
	}
	for k := 1; ; k++ {
		kept = fmt.Sprintf("%s.failed-%d", rd, k)
		if _, err := os.Lstat(kept); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	// The lock is a file inside rd: renaming the directory keeps it held
	// until the unlock below, which then leaves its file behind in kept.
	err = os.Rename(rd, kept)
	lock.Unlock()
	if err != nil {
		return "", err
	}
	_ = os.Remove(filepath.Join(kept, runio.LockFile))
	return kept, nil
}
