package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/checkpoint"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
)

// Sizes that cannot fit are refused before anything of their size is
// allocated: exit status 2 and one line with the estimate and what the
// machine allows, on every command that takes sizes from the user.
func TestRefusesRunsTooLargeForMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary (the refused sizes must not be tried in this process)")
	}
	out := t.TempDir()
	theta := filepath.Join(out, "theta.npy")
	writeNpy(t, theta, make([]float64, 30), 10, 3)
	for _, args := range [][]string{
		{"train", "--m", "10000000", "--d", "3000", "--steps", "1", "--out", filepath.Join(out, "a")},
		{"train", "--n", "100000000", "--d", "3", "--m", "10", "--out", filepath.Join(out, "b")},
		{"train", "--trainer", "riemannian", "--n", "300000", "--d", "400000", "--m", "10", "--out", filepath.Join(out, "c")},
		{"compare", "--trainers", "gd,labelnoise", "--m", "10000000", "--d", "3000", "--steps", "1", "--out", filepath.Join(out, "d")},
		{"inspect", "--theta", theta, "--n", "100000000", "--d", "3", "--m", "10"},
		{"bench", "--only", "labelnoise", "--sizes", "10000000,3000,3"},
	} {
		code, stderr := runBinary(t, args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || len(lines) != 1 || !strings.Contains(stderr, "needs about") || !strings.Contains(stderr, "allows") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and one line with both figures", args, code, stderr)
		}
	}
}

// The estimate is an upper bound of the peak resident memory a run reaches,
// and not a loose one: measured by the kernel (rusage) at a size where Θ
// dominates, metrics and checkpoints included.
func TestMemoryEstimateBoundsPeak(t *testing.T) {
	if testing.Short() {
		t.Skip("trains problems of 50-100 MB")
	}
	for _, c := range []struct {
		m, n, d int
		trainer string
		engine  string
		graphs  bool
	}{
		{100000, 16, 64, "labelnoise", "auto", false},
		{100000, 16, 64, "labelnoise", "theta", false},
		{2000000, 3, 3, "labelnoise", "auto", false},
		{2000000, 3, 3, "labelnoise", "theta", false},
		{2000000, 3, 3, "sam1", "auto", false},
		{2000000, 3, 3, "sam", "auto", false},
		{2000000, 3, 3, "labelnoise", "theta", true},
		{2000000, 3, 3, "labelnoise", "auto", true},
		{20000, 64, 32, "riemannian", "auto", false},
		{10, 3, 1000000, "labelnoise", "auto", false},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		args := []string{"train", "--trainer", c.trainer, "--engine", c.engine, "--m", itoa(c.m), "--n", itoa(c.n), "--d", itoa(c.d),
			"--eta", "1e-7", "--steps", "4", "--log-every", "2", "--checkpoint-every", "2", "--quiet", "--out", dir}
		if c.graphs {
			args = append(args, "--graphs")
		}
		cmd := exec.Command(pureGoBinary(t), args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		peak := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) * 1024
		cfg := runner.DefaultConfig()
		cfg.Trainer, cfg.Engine, cfg.Graphs = c.trainer, c.engine, c.graphs
		est := cfg.MemoryEstimate(c.m, c.n, c.d)
		t.Logf("%s %s graphs=%v m=%d n=%d d=%d: peak %.0f MB, estimate %.0f MB", c.trainer, c.engine, c.graphs, c.m, c.n, c.d, peak/1e6, est/1e6)
		if peak > est || est > 4*peak {
			t.Errorf("%s %s m=%d n=%d d=%d: peak RSS %.0f MB, estimate %.0f MB: want peak ≤ estimate ≤ 4 peak",
				c.trainer, c.engine, c.m, c.n, c.d, peak/1e6, est/1e6)
		}
	}
}

func itoa(v int) string { return strconv.Itoa(v) }

// peakRSS runs the pure-Go binary with args and returns its peak resident
// memory in bytes (the kernel's maxrss of the child).
func peakRSS(t *testing.T, args ...string) float64 {
	t.Helper()
	cmd := exec.Command(pureGoBinary(t), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%q: %v\n%s", args, err, out)
	}
	return float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) * 1024
}

// gd, labelnoise and sam1 above the host trainers' hostLimit step on the
// host in blocks of neurons: the peak resident memory of a run, metrics and
// checkpoints included, stays within 3×Θ plus a fixed overhead under both
// engines. The overhead is a tiny run's peak (the binary and the runtime,
// ~18 MB) plus 32 MiB (the garbage the soft memory limit allows above the
// live data, a block's buffers per core, the metrics' blocks); at n = d = 3
// the live data are Θ₀, Zᵀ and w (2.33×Θ) under the feature engine, Θ and
// w under the Θ engine. The graphs held 11-14×Θ here.
func TestHostBlocksPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("trains m = 2·10⁶ problems")
	}
	const m, n, d = 2000000, 3, 3
	theta := float64(m * d * 8)
	common := func(m int, trainer, engine, eta string) []string {
		return []string{"train", "--trainer", trainer, "--engine", engine, "--m", itoa(m), "--n", itoa(n), "--d", itoa(d),
			"--eta", eta, "--steps", "4", "--log-every", "2", "--checkpoint-every", "2", "--quiet", "--out", filepath.Join(t.TempDir(), "run")}
	}
	tiny := peakRSS(t, common(10, "labelnoise", "auto", "1e-7")...)
	bound := 3*theta + tiny + 32<<20
	// eta auto: the automatic rules (η's curvature bound, ρ's tr JJᵀ) at Θ₀ in blocks too.
	// --snapshots: Z and Θ streamed to their files, a block at a time.
	for _, c := range []struct {
		trainer, engine, eta string
		snapshots            bool
	}{
		{"labelnoise", "auto", "1e-7", false}, {"labelnoise", "theta", "1e-7", false}, {"gd", "feature", "1e-7", false},
		{"sam1", "auto", "1e-7", false}, {"sam1", "theta", "1e-7", false}, {"labelnoise", "auto", "auto", false},
		{"sam1", "theta", "auto", false}, {"labelnoise", "auto", "1e-7", true}, {"gd", "theta", "1e-7", true},
	} {
		args := common(m, c.trainer, c.engine, c.eta)
		if c.snapshots {
			args = append(args, "--snapshots", "2")
		}
		peak := peakRSS(t, args...)
		t.Logf("%s %s η %s snapshots %v m=%d n=d=%d: peak %.0f MB = %.2f×Θ (tiny run %.0f MB, bound %.0f MB)", c.trainer, c.engine, c.eta, c.snapshots, m, n, peak/1e6, peak/theta, tiny/1e6, bound/1e6)
		if peak > bound {
			t.Errorf("%s %s: peak RSS %.0f MB over 3×Θ + %.0f MB = %.0f MB", c.trainer, c.engine, peak/1e6, (tiny+32<<20)/1e6, bound/1e6)
		}
	}
	// Resumes: the checkpoint is read into its tensors as it streams, and a
	// feature state taken over by the Θ engine becomes Θ a block at a time.
	dir := filepath.Join(t.TempDir(), "resumed")
	args := common(m, "labelnoise", "feature", "1e-7")
	args[len(args)-1] = dir
	peakRSS(t, args...)
	for _, c := range []struct {
		steps  string
		engine []string
	}{{"8", nil}, {"12", []string{"--engine", "theta"}}} {
		peak := peakRSS(t, append([]string{"train", "--resume", dir, "--steps", c.steps, "--quiet"}, c.engine...)...)
		t.Logf("resume %v: peak %.0f MB = %.2f×Θ", c.engine, peak/1e6, peak/theta)
		if peak > bound {
			t.Errorf("resume %v: peak RSS %.0f MB over %.0f MB", c.engine, peak/1e6, bound/1e6)
		}
	}
}

// A signal during a long metrics computation (here the first: the Gram
// matrix of a 1000×10000 Θ) acts at once: the run stops with its checkpoint
// and summary and exit status 143 within seconds, not after the metrics.
func TestSignalDuringLongMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a run with an 80 MB Θ")
	}
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(pureGoBinary(t), "train", "--m", "1000", "--d", "10000", "--n", "3", "--eta", "1e-6",
		"--steps", "1000", "--log-every", "10", "--quiet", "--out", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(dir, runner.ConfigFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the run did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // into the step-0 metrics
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Fatalf("exit %v, want 143; stderr %q", err, stderr.String())
	}
	// Without the checks the step-0 metrics alone took minutes here.
	if took > 15*time.Second {
		t.Errorf("SIGTERM took %v to act", took)
	}
	sum := readJSON(t, filepath.Join(dir, runner.SummaryFile))
	if sum["interrupted"] != true {
		t.Errorf("summary interrupted = %v", sum["interrupted"])
	}
	if c, _, err := checkpoint.Latest(dir); err != nil {
		t.Errorf("no checkpoint: %v", err)
	} else {
		t.Logf("checkpoint at step %d, SIGTERM acted in %v", c.Step, took)
	}
}
