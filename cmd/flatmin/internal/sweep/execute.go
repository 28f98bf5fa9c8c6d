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
	// Take the run's lock once to see that nobody runs it; a collecting
	// process probes it for an instant, so a busy lock is tried again.
	if _, err := os.Stat(rd); err == nil {
		var lock *runio.Lock
		for try := 0; ; try++ {
			l, err := runio.TryLock(rd)
			if err == nil {
				lock = l
				break
			}
			var inUse *runio.InUseError
			if !errors.As(err, &inUse) {
				return Outcome{}, err
			}
			if try == 20 {
				return Outcome{Action: "busy", State: State(rd)}, nil
			}
			time.Sleep(100 * time.Millisecond)
		}
		st = State(rd)
		lock.Unlock()
		if st.Finished() { // finished while we waited
			return Outcome{Action: "skipped", State: st}, nil
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
		if err != nil && sum == nil && ctx.Err() == nil {
			// No checkpoint to resume from (killed early), or one that is
			// not usable: start again, the run is deterministic.
			out.Action = "started"
			if err = os.RemoveAll(rd); err != nil {
				return out, err
			}
			sum, err = runner.Train(ctx, cfg, b, rd, opt)
		}
	} else {
		// Nothing, or the start of a run killed before its summary.
		if err := os.RemoveAll(rd); err != nil {
			return out, err
		}
		sum, err = runner.Train(ctx, cfg, b, rd, opt)
	}
	out.Summary = sum
	if sum == nil && err != nil && ctx.Err() == nil {
		var inUse *runio.InUseError
		if errors.As(err, &inUse) {
			return Outcome{Action: "busy", State: State(rd)}, nil
		}
		if werr := RecordFailure(rd, err.Error()); werr != nil {
			return out, errors.Join(err, werr)
		}
	}
	out.State = State(rd)
	return out, err
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
