package trainers

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/flatmin/flatmin/model"
)

// everyHook asks for the loop every n steps and records where it ran.
type everyHook struct {
	n    int64
	seen []int64
}

func (h *everyHook) Next(step int64) int64 { return (step/h.n + 1) * h.n }
func (h *everyHook) Do(s *State) error     { h.seen = append(h.seen, s.Step); return nil }

// callLog records the steps at which each fused call starts and ends.
type callLog struct {
	Trainer
	calls [][2]int64
}

func (c *callLog) Advance(s *State, k int64) (float64, error) {
	from := s.Step
	loss, err := c.Trainer.Advance(s, k)
	c.calls = append(c.calls, [2]int64{from, s.Step})
	return loss, err
}

// The loop's fused calls never step over a step that a hook, the log, a
// checkpoint or a snapshot asked for, and each runs exactly at its steps
// (checked against the cadences written out by brute force).
func TestLoopHooksRunAtTheirSteps(t *testing.T) {
	p := paperProblem(t, 0.2, "uniform:0.5,1", 1)
	ev, err := NewEvaluator(testBackend(t), p)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, 1), 1)
	user := &everyHook{n: 7}
	var ckpts, snaps []int64
	tr := &callLog{Trainer: newTrainer(t, "gd", p, DefaultConfig())}
	const steps = 100
	sink := &memorySink{}
	_, err = Run(context.Background(), tr, ev, s, LoopConfig{Steps: steps, LogEvery: 20, Fresh: true,
		CheckpointEvery: 30, Checkpoint: func(s *State, _ time.Duration) error { ckpts = append(ckpts, s.Step); return nil },
		Snapshots: []int64{0, 5, 55}, Snapshot: func(s *State) error { snaps = append(snaps, s.Step); return nil },
		Hooks: []Hook{user}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	var wantUser, wantLog, wantCkpt []int64
	for step := int64(1); step <= steps; step++ {
		if step%7 == 0 {
			wantUser = append(wantUser, step)
		}
		if step%20 == 0 {
			wantLog = append(wantLog, step)
		}
		if step%30 == 0 {
			wantCkpt = append(wantCkpt, step)
		}
	}
	wantLog = append([]int64{0}, wantLog...)
	wantCkpt = append(wantCkpt, steps) // and at the end
	var logged []int64
	for _, r := range sink.rows {
		logged = append(logged, r.Step)
	}
	for name, c := range map[string][2][]int64{
		"user hook": {user.seen, wantUser}, "log": {logged, wantLog},
		"checkpoints": {ckpts, wantCkpt}, "snapshots": {snaps, {0, 5, 55}},
	} {
		if !slices.Equal(c[0], c[1]) {
			t.Errorf("%s at %v, want %v", name, c[0], c[1])
		}
	}
	stops := slices.Concat(wantUser, wantLog, wantCkpt, []int64{5, 55})
	for _, c := range tr.calls {
		for _, at := range stops {
			if c[0] < at && at < c[1] {
				t.Errorf("a call from step %d to %d stepped over step %d", c[0], c[1], at)
			}
		}
	}
	if len(tr.calls) >= steps {
		t.Errorf("%d calls for %d steps: nothing was fused", len(tr.calls), steps)
	}
}
