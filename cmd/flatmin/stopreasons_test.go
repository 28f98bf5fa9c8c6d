package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
)

// stoppedRun checks what every stopped run must leave: summary.json with
// the stop reason, theta.npy with finite values, the last metrics row at the
// stopping step, and a directory that `inspect --run` reads.
func stoppedRun(t *testing.T, dir, reason string) map[string]any {
	t.Helper()
	sum := readJSON(t, filepath.Join(dir, "summary.json"))
	if sum["stop_reason"] != reason {
		t.Fatalf("%s: stop_reason %v, want %s (error %v)", dir, sum["stop_reason"], reason, sum["error"])
	}
	if got := sum["converged"] == true; got != (reason == trainers.StopConverged) {
		t.Errorf("%s: converged %v with stop_reason %s", dir, sum["converged"], reason)
	}
	theta, rows, cols, err := model.ReadMatrix(filepath.Join(dir, "theta.npy"), "theta")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sum["config"].(map[string]any)
	if rows != int(cfg["m"].(float64)) || cols != int(cfg["d"].(float64)) {
		t.Errorf("theta.npy is %d×%d", rows, cols)
	}
	for _, v := range theta {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatal("theta.npy is not finite")
		}
	}
	_, csvRows, err := runio.ReadCSVLog(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if last := csvRows[len(csvRows)-1][0]; last != json.Number(jsonNum(sum["steps"])).String() {
		t.Errorf("%s: last metrics row at step %s, the run stopped at %v", dir, last, sum["steps"])
	}
	out, stderr, s := flatmin(t, "inspect", "--run", dir)
	var m map[string]any
	if s != 0 || json.Unmarshal([]byte(out), &m) != nil {
		t.Errorf("inspect --run %s: exit %d, %s", dir, s, stderr)
	}
	return sum
}

func jsonNum(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Each way a run can stop on its own leaves its results and says why.
func TestStopReasonsFromTheCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		args         []string
		status       int
	}{
		{"budget", trainers.StopSteps, []string{"--steps", "500"}, 0},
		{"flow budget", trainers.StopSteps, []string{"--trainer", "riemannian", "--m", "20", "--d", "8", "--n", "4", "--steps", "5"}, 0},
		{"flow converged", trainers.StopConverged, []string{"--trainer", "riemannian", "--m", "20", "--d", "8", "--n", "4"}, 0},
		{"diverged", trainers.StopDiverged, []string{"--m", "1000", "--d", "20", "--n", "10", "--eta", "0.05", "--steps", "100"}, 1},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		_, stderr, s := flatmin(t, append([]string{"train", "--out", dir, "--quiet"}, tc.args...)...)
		if s != tc.status {
			t.Fatalf("%s: exit %d, want %d: %s", tc.name, s, tc.status, stderr)
		}
		sum := stoppedRun(t, dir, tc.reason)
		switch tc.reason {
		case trainers.StopConverged:
			if steps := sum["steps"].(float64); !(steps > 0 && steps < runner.DefaultSteps) {
				t.Errorf("converged flow ran %v steps", steps)
			}
			final := sum["final"].(map[string]any)
			if gap := final["theory_gap"].(float64); !(gap < 1e-8) {
				t.Errorf("converged with theory gap %g", gap)
			}
		case trainers.StopDiverged:
			// The suggested η is what --eta auto picks, and with it the run does not diverge.
			if !strings.Contains(stderr, "try --eta ") {
				t.Fatalf("no η suggested: %s", stderr)
			}
			eta := strings.Fields(stderr[strings.Index(stderr, "try --eta ")+len("try --eta "):])[0]
			again := filepath.Join(t.TempDir(), "again")
			if _, stderr, s := flatmin(t, "train", "--out", again, "--quiet", "--m", "1000", "--d", "20", "--n", "10", "--eta", strings.TrimSuffix(eta, ","), "--steps", "100"); s != 0 {
				t.Errorf("the suggested η %s: exit %d %s", eta, s, stderr)
			}
			if sum["theta_step"].(float64) > sum["steps"].(float64) {
				t.Errorf("theta_step %v after the stop %v", sum["theta_step"], sum["steps"])
			}
		}
	}
}

// stopping wraps a trainer: at step at it fails with err, or (err nil)
// cancels the run's context, as a signal would.
type stopping struct {
	trainers.Trainer
	at     int64
	err    error
	cancel func()
	fill   func() // instead: called once at step at, the run goes on
}

func (s *stopping) Advance(st *trainers.State, k int64) (float64, error) {
	loss := math.NaN()
	for range k {
		if st.Step == s.at && s.fill != nil {
			s.fill()
			s.fill = nil
		} else if st.Step == s.at {
			if s.err != nil {
				return math.NaN(), s.err
			}
			s.cancel()
			return loss, nil
		}
		var err error
		if loss, err = s.Trainer.Step(st); err != nil {
			return loss, err
		}
	}
	return loss, nil
}

// A trainer error or an interruption in the middle of a run leaves Θ at the
// last good step, the summary saying why, and a run that resumes to the
// uninterrupted result.
func TestStopReasonsErrorAndInterrupted(t *testing.T) {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	cfg := runner.DefaultConfig()
	cfg.Trainer, cfg.Steps, cfg.LogEvery, cfg.CheckpointEvery = "gd", 400, 100, 0
	ref := filepath.Join(t.TempDir(), "ref")
	if _, stderr, s := flatmin(t, "train", "--trainer", "gd", "--steps", "400", "--log-every", "100", "--checkpoint-every", "0", "--out", ref, "--quiet"); s != 0 {
		t.Fatal(stderr)
	}
	half := filepath.Join(t.TempDir(), "half")
	if _, stderr, s := flatmin(t, "train", "--trainer", "gd", "--steps", "250", "--log-every", "100", "--checkpoint-every", "0", "--out", half, "--quiet"); s != 0 {
		t.Fatal(stderr)
	}
	for _, reason := range []string{trainers.StopError, trainers.StopInterrupted} {
		setup, err := runner.Prepare(cfg, b, runner.Options{Quiet: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		st := &stopping{Trainer: setup.Trainer, at: 250, cancel: cancel}
		if reason == trainers.StopError {
			st.err = trainers.ErrSingularJJT
		}
		setup.Trainer = st
		dir := filepath.Join(t.TempDir(), reason)
		sum, err := setup.Train(ctx, b, dir, runner.Options{Quiet: true})
		cancel()
		if (err != nil) != (reason == trainers.StopError) || sum == nil {
			t.Fatalf("%s: err %v, summary %v", reason, err, sum)
		}
		got := stoppedRun(t, dir, reason)
		if got["steps"].(float64) != 250 {
			t.Errorf("%s: stopped at %v, want 250", reason, got["steps"])
		}
		if !sameFile(t, filepath.Join(dir, "theta.npy"), filepath.Join(half, "theta.npy")) {
			t.Errorf("%s: theta.npy is not Θ after 250 steps", reason)
		}
		if reason == trainers.StopError && !strings.Contains(fmt.Sprint(got["error"]), "singular") {
			t.Errorf("error: summary's error %v", got["error"])
		}
		// The checkpoint written at the stop continues to the uninterrupted result.
		if _, stderr, s := flatmin(t, "train", "--resume", dir, "--quiet"); s != 0 {
			t.Fatalf("%s: resume: %s", reason, stderr)
		}
		if !sameFile(t, filepath.Join(dir, "theta.npy"), filepath.Join(ref, "theta.npy")) {
			t.Errorf("%s: resumed Θ differs from the uninterrupted run's", reason)
		}
	}
}

// A disk that fills up mid-run stops it with an error and still leaves
// theta.npy (Θ at the stop) and summary.json saying why, written in place
// over the versions reserved at the start. Needs root for a small tmpfs (fullDisk).
func TestDiskFullLeavesResults(t *testing.T) {
	mnt := fullDisk(t)
	if mnt == "" {
		t.Skip("cannot mount a small tmpfs")
	}
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(t.TempDir(), "ref")
	if _, stderr, s := flatmin(t, "train", "--trainer", "gd", "--steps", "300", "--log-every", "100", "--out", ref, "--quiet"); s != 0 {
		t.Fatal(stderr)
	}
	cfg := runner.DefaultConfig()
	cfg.Trainer, cfg.Steps, cfg.LogEvery, cfg.CheckpointEvery = "gd", 400, 100, 100
	setup, err := runner.Prepare(cfg, b, runner.Options{Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	setup.Trainer = &stopping{Trainer: setup.Trainer, at: 250, fill: func() { fill(t, mnt) }}
	dir := filepath.Join(mnt, "run")
	if _, err := setup.Train(context.Background(), b, dir, runner.Options{Quiet: true}); err == nil || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("want a no-space error, got %v", err)
	}
	sum := readJSON(t, filepath.Join(dir, "summary.json"))
	if sum["stop_reason"] != trainers.StopError || !strings.Contains(fmt.Sprint(sum["error"]), "no space") || sum["steps"].(float64) != 300 {
		t.Errorf("summary: stop %v at %v, error %v", sum["stop_reason"], sum["steps"], sum["error"])
	}
	if !sameFile(t, filepath.Join(dir, "theta.npy"), filepath.Join(ref, "theta.npy")) {
		t.Error("theta.npy is not Θ at the stop (step 300)")
	}
}

// The hint after a divergence never suggests the step size that diverged.
func TestDivergedHint(t *testing.T) {
	for _, c := range []struct {
		eta, stable float64
		want        string
	}{
		{0.1, 0, "try a smaller --eta"},
		{0.1, 0.02, "try --eta 0.02,"},
		{0.0064, 0.0064, "already what --eta auto picks"},
		{0.001, 0.0064, "already below what --eta auto picks (0.0064)"},
	} {
		got := divergedHint(&trainers.DivergedError{Eta: c.eta, StableEta: c.stable})
		if !strings.Contains(got, c.want) || (c.stable > 0 && c.stable >= c.eta && strings.Contains(got, fmt.Sprintf("--eta %.3g", c.eta))) {
			t.Errorf("η %g, stable %g: %q, want %q and not η itself", c.eta, c.stable, got, c.want)
		}
	}
}
