package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/checkpoint"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/model"
)

// longRun are per-trainer settings that take a second or more, so that a
// process can be stopped mid-way after its first checkpoint (gd, labelnoise
// and sam1 step on the host in about 0.5 µs: 200000 steps ended within the
// 20 ms poll).
var longRun = map[string][]string{
	"gd":         {"--steps", "4000000", "--checkpoint-every", "400000", "--log-every", "200000"},
	"labelnoise": {"--steps", "4000000", "--checkpoint-every", "400000", "--log-every", "200000"},
	"sam1":       {"--steps", "4000000", "--checkpoint-every", "400000", "--log-every", "200000", "--sam-batch", "2"},
	"penalty":    {"--steps", "200000", "--checkpoint-every", "20000", "--log-every", "10000"},
	// n = d = 20 random rows are nearly dependent: the flow takes far longer than its first
	// checkpoint to converge (on the paper's data it converges before it can be killed).
	"riemannian": {"--steps", "30000", "--checkpoint-every", "500", "--log-every", "500", "--n", "20", "--d", "20", "--m", "30"},
}

func trainArgs(trainer, out string) []string {
	return append([]string{"train", "--trainer", trainer, "--seed", "3", "--quiet", "--out", out}, longRun[trainer]...)
}

// startAndStop starts a run and, once its first checkpoint exists, sends sig.
func startAndStop(t *testing.T, args []string, out string, sig syscall.Signal) (int, string) {
	t.Helper()
	cmd := exec.Command(pureGoBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if done, _ := filepath.Glob(filepath.Join(out, checkpoint.Dir, "ckpt-*.ckpt")); len(done) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no checkpoint appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(sig)
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal()), stderr.String()
		}
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(pureGoBinary(t), args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// metricsWithoutWall reads metrics.csv with its wall_seconds column dropped.
func metricsWithoutWall(t *testing.T, dir string) [][]string {
	t.Helper()
	header, rows, err := runio.ReadCSVLog(filepath.Join(dir, "metrics.csv"))
	if err != nil {
		t.Fatal(err)
	}
	out := [][]string{header[:len(header)-1]}
	for _, r := range rows {
		out = append(out, r[:len(r)-1])
	}
	return out
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

func sameRows(a, b [][]string) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if strings.Join(a[i], ",") != strings.Join(b[i], ",") {
			return i, false
		}
	}
	return 0, true
}

// A run killed with SIGKILL and resumed ends bit-identical to one that was
// never interrupted, for every trainer, with metrics.csv neither duplicating
// nor missing a row.
func TestKillAndResumeIsBitIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	for _, trainer := range []string{"gd", "labelnoise", "sam1", "penalty", "riemannian"} {
		t.Run(trainer, func(t *testing.T) {
			ref, killed := filepath.Join(t.TempDir(), "ref"), filepath.Join(t.TempDir(), "killed")
			if code, out := runBinary(t, trainArgs(trainer, ref)...); code != 0 {
				t.Fatalf("reference run: %d %s", code, out)
			}
			if code, _ := startAndStop(t, trainArgs(trainer, killed), killed, syscall.SIGKILL); code != -int(syscall.SIGKILL) {
				t.Fatalf("the run ended with %d before it could be killed: make it longer", code)
			}
			// A run killed before it could write its end says it was still running.
			if sum := readJSON(t, filepath.Join(killed, "summary.json")); sum["stop_reason"] != "running" {
				t.Fatalf("a killed run's summary says stop_reason %v, want running", sum["stop_reason"])
			}
			if code, out := runBinary(t, "train", "--resume", killed, "--quiet"); code != 0 {
				t.Fatalf("resume: %d %s", code, out)
			}
			sameOutputs(t, ref, killed)
		})
	}
}

// sameOutputs checks that a resumed run's outputs equal an uninterrupted
// run's: metrics.csv row for row (the row count included), theta.npy byte for
// byte, and summary.json (with "initial", the metrics at Θ₀) but for wall time.
func sameOutputs(t *testing.T, ref, resumed string) {
	t.Helper()
	a, b := metricsWithoutWall(t, ref), metricsWithoutWall(t, resumed)
	if i, ok := sameRows(a, b); !ok {
		t.Errorf("metrics.csv differs from the uninterrupted run's (%d rows against %d; row %d)", len(b), len(a), i)
	}
	if !sameFile(t, filepath.Join(ref, "theta.npy"), filepath.Join(resumed, "theta.npy")) {
		t.Error("final Θ differs from the uninterrupted run's")
	}
	if sa, sb := summaryWithoutWall(t, ref), summaryWithoutWall(t, resumed); sa != sb {
		t.Errorf("summary.json differs from the uninterrupted run's:\n%s\n%s", sb, sa)
	}
}

// SIGINT and SIGTERM stop at a step boundary with a checkpoint, flushed
// metrics and a summary marked interrupted, exit 130/143; the run resumes to
// the uninterrupted result.
func TestInterruptWritesCheckpointAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	ref := filepath.Join(t.TempDir(), "ref")
	if code, out := runBinary(t, trainArgs("labelnoise", ref)...); code != 0 {
		t.Fatal(out)
	}
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		dir := filepath.Join(t.TempDir(), "run")
		code, stderr := startAndStop(t, trainArgs("labelnoise", dir), dir, tc.sig)
		if code != tc.code || !strings.Contains(stderr, "--resume") {
			t.Fatalf("%v: exit %d, stderr %q", tc.sig, code, stderr)
		}
		sum := readJSON(t, filepath.Join(dir, "summary.json"))
		if sum["interrupted"] != true {
			t.Errorf("%v: summary interrupted = %v", tc.sig, sum["interrupted"])
		}
		steps := int64(sum["steps"].(float64))
		c, _, err := checkpoint.Latest(dir)
		if err != nil || c.Step != steps {
			t.Errorf("%v: latest checkpoint %v at %v, stopped at %d", tc.sig, err, c, steps)
		}
		_, rows, _ := runio.ReadCSVLog(filepath.Join(dir, "metrics.csv"))
		if last := rows[len(rows)-1][0]; last != strconv.FormatInt(steps, 10) {
			t.Errorf("%v: last metrics row at step %s, stopped at %d", tc.sig, last, steps)
		}
		if code, out := runBinary(t, "train", "--resume", dir, "--quiet"); code != 0 {
			t.Fatalf("resume: %s", out)
		}
		sameOutputs(t, ref, dir)
	}
}

// A damaged newest checkpoint is detected, skipped with a warning, and the
// run resumes from the previous one, still to the uninterrupted result.
func TestResumeSkipsCorruptCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	ref, dir := filepath.Join(t.TempDir(), "ref"), filepath.Join(t.TempDir(), "run")
	args := func(out, steps string) []string {
		return []string{"train", "--trainer", "labelnoise", "--steps", steps, "--checkpoint-every", "1000", "--log-every", "500", "--quiet", "--out", out}
	}
	if code, out := runBinary(t, args(ref, "6000")...); code != 0 {
		t.Fatal(out)
	}
	if code, out := runBinary(t, args(dir, "4000")...); code != 0 {
		t.Fatal(out)
	}
	newest := filepath.Join(dir, checkpoint.Dir, "ckpt-000000004000.ckpt")
	data, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-20] ^= 1
	os.WriteFile(newest, data, 0o644)
	code, out := runBinary(t, "train", "--resume", dir, "--steps", "6000", "--quiet")
	if code != 0 || !strings.Contains(out, "warning: skipping checkpoint") || !strings.Contains(out, "SHA-256") {
		t.Fatalf("exit %d, output %q", code, out)
	}
	if !sameFile(t, filepath.Join(ref, "theta.npy"), filepath.Join(dir, "theta.npy")) {
		t.Error("Θ after resuming from the previous checkpoint differs from the uninterrupted run's")
	}
	if i, ok := sameRows(metricsWithoutWall(t, ref), metricsWithoutWall(t, dir)); !ok {
		t.Errorf("metrics.csv differs from the uninterrupted run's at row %d", i)
	}
}

func TestResumeRefusesConflicts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if _, stderr, s := flatmin(t, "train", "--steps", "300", "--eta", "0.05", "--checkpoint-every", "100", "--out", dir, "--quiet"); s != 0 {
		t.Fatal(stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--eta", "0.01", "--steps", "600"}, "eta"},
		{[]string{"--trainer", "gd", "--steps", "600"}, "trainer"},
		{[]string{"--nu", "0.3", "--steps", "600"}, "nu"},
		{[]string{"--seed", "9", "--steps", "600"}, "seed"},
		{[]string{}, "complete at step 300"},
		{[]string{"--steps", "600", "--out", "x"}, "--out"},
	} {
		_, stderr, s := flatmin(t, append([]string{"train", "--resume", dir}, tc.args...)...)
		if s != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q (want exit 2 naming %q)", tc.args, s, stderr, tc.want)
		}
	}
	// Settings equal to the saved ones are no conflict; a higher budget continues.
	if _, stderr, s := flatmin(t, "train", "--resume", dir, "--eta", "0.05", "--steps", "600", "--quiet"); s != 0 {
		t.Errorf("resume with the same η: %s", stderr)
	}
	if _, stderr, s := flatmin(t, "train", "--resume", t.TempDir()); s != 2 || !strings.Contains(stderr, "not a flatmin run") {
		t.Errorf("resume of an empty directory: %d %s", s, stderr)
	}
}

// The same command and seed give bit-identical outputs (but for wall time).
func TestSameCommandSameOutputs(t *testing.T) {
	for _, trainer := range []string{"labelnoise", "sam1", "riemannian"} {
		a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		for _, dir := range []string{a, b} {
			if _, stderr, s := flatmin(t, "train", "--trainer", trainer, "--steps", "2000", "--log-every", "250", "--snapshots", "3", "--out", dir, "--quiet"); s != 0 {
				t.Fatal(stderr)
			}
		}
		snaps, err := filepath.Glob(filepath.Join(a, "snapshots", "z_*.npy"))
		if err != nil || len(snaps) < 2 {
			t.Fatalf("%s: snapshots %v (%v)", trainer, snaps, err)
		}
		files := []string{"theta.npy", "theta0.npy", "x.npy", "y.npy"}
		for _, sn := range snaps {
			files = append(files, filepath.Join("snapshots", filepath.Base(sn)))
		}
		for _, f := range files {
			if !sameFile(t, filepath.Join(a, f), filepath.Join(b, f)) {
				t.Errorf("%s: %s differs between two identical runs", trainer, f)
			}
		}
		if i, ok := sameRows(metricsWithoutWall(t, a), metricsWithoutWall(t, b)); !ok {
			t.Errorf("%s: metrics.csv differs at row %d", trainer, i)
		}
		fa, fb := readJSON(t, filepath.Join(a, "summary.json"))["final"].(map[string]any), readJSON(t, filepath.Join(b, "summary.json"))["final"].(map[string]any)
		delete(fa, "wall_seconds")
		delete(fb, "wall_seconds")
		ja, _ := json.Marshal(fa)
		jb, _ := json.Marshal(fb)
		if !bytes.Equal(ja, jb) {
			t.Errorf("%s: summary final differs:\n%s\n%s", trainer, ja, jb)
		}
	}
}

// fullDisk returns a directory whose filesystem will soon run out of space:
// a small tmpfs where mounting is allowed (root), and the caller fills it.
// It returns "" where it is not.
func fullDisk(t *testing.T) string {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		return ""
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

func fill(t *testing.T, dir string) string {
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			return filler
		}
	}
}

// When the disk fills up, the run stops with a clear one-line error and the
// previous checkpoint stays intact; once there is room the run resumes.
func TestDiskFullKeepsPreviousCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	base := fullDisk(t)
	limited := base == ""
	if limited {
		base = t.TempDir() // no tmpfs: a file-size limit makes writes fail instead
	}
	dir := filepath.Join(base, "run")
	if code, out := runBinary(t, "train", "--steps", "2000", "--checkpoint-every", "500", "--log-every", "100", "--quiet", "--out", dir); code != 0 {
		t.Fatal(out)
	}
	before, _, err := checkpoint.Latest(dir)
	if err != nil || before.Step != 2000 {
		t.Fatalf("checkpoint before: %v %v", before, err)
	}
	var code int
	var out string
	if limited {
		// ulimit -f is in 1024-byte blocks in bash: metrics.csv is already larger.
		cmd := exec.Command("bash", "-c", `ulimit -f 4 && exec "$0" "$@"`, pureGoBinary(t), "train", "--resume", dir, "--steps", "4000", "--quiet")
		b, _ := cmd.CombinedOutput()
		code, out = cmd.ProcessState.ExitCode(), string(b)
	} else {
		filler := fill(t, base)
		code, out = runBinary(t, "train", "--resume", dir, "--steps", "4000", "--quiet")
		defer os.Remove(filler)
	}
	if code == 0 || strings.Count(strings.TrimSpace(out), "\n") != 0 || !(strings.Contains(out, "no space left") || strings.Contains(out, "too large")) {
		t.Fatalf("disk full: exit %d, output %q", code, out)
	}
	after, warnings, err := checkpoint.Latest(dir)
	if err != nil || len(warnings) != 0 || after.Step != 2000 {
		t.Fatalf("after the failure: checkpoint %v, warnings %v, %v", after, warnings, err)
	}
	b1, err1 := checkpoint.Encode(before)
	b2, err2 := checkpoint.Encode(after)
	if err1 != nil || err2 != nil || !bytes.Equal(b1, b2) {
		t.Fatalf("the previous checkpoint changed (%v, %v)", err1, err2)
	}
	if !limited {
		os.Remove(filepath.Join(base, "filler"))
	}
	if !limited {
		if code, out := runBinary(t, "train", "--resume", dir, "--steps", "4000", "--quiet"); code != 0 {
			t.Fatalf("resume once there is room: %s", out)
		}
	}
}

// A resume may switch engines: the run continues from the same Θ (formed
// from the feature engine's checkpoint) and ends where a run that never
// switched does, to rounding; summary.json names the engine in force.
func TestResumeSwitchesEngine(t *testing.T) {
	ref, dir := filepath.Join(t.TempDir(), "ref"), filepath.Join(t.TempDir(), "run")
	args := func(out, steps string) []string {
		return []string{"train", "--steps", steps, "--log-every", "500", "--quiet", "--out", out}
	}
	if code, out := flatminRun(t, args(ref, "4000")...); code != 0 {
		t.Fatal(out)
	}
	if code, out := flatminRun(t, args(dir, "2000")...); code != 0 {
		t.Fatal(out)
	}
	if code, out := flatminRun(t, "train", "--resume", dir, "--steps", "4000", "--engine", "theta", "--quiet"); code != 0 {
		t.Fatalf("resume with --engine theta: %s", out)
	}
	if e := readJSON(t, filepath.Join(ref, "summary.json"))["engine"]; e != "feature" {
		t.Errorf("reference run's engine %v, want feature (n = d = 3)", e)
	}
	if e := readJSON(t, filepath.Join(dir, "summary.json"))["engine"]; e != "theta" {
		t.Errorf("resumed run's engine %v, want theta", e)
	}
	if d := thetaDiff(t, ref, dir); !(d < 1e-9) {
		t.Errorf("Θ after switching engines differs by %.3g relative", d)
	}
}

// flatminRun runs the CLI in process and returns its status and output.
func flatminRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	stdout, stderr, status := flatmin(t, args...)
	return status, stdout + stderr
}

// --graphs runs the compiled graphs where SimpleGo would step on the host:
// the same trajectory to rounding, recorded in config.json; a resume may
// switch it off.
func TestGraphsFlagFollowsHost(t *testing.T) {
	for _, trainer := range []string{"labelnoise", "sam1", "riemannian"} {
		host, graphs := filepath.Join(t.TempDir(), "host"), filepath.Join(t.TempDir(), "graphs")
		args := func(out, steps string, extra ...string) []string {
			return append([]string{"train", "--trainer", trainer, "--steps", steps, "--log-every", "500", "--quiet", "--out", out}, extra...)
		}
		if code, out := flatminRun(t, args(host, "2000")...); code != 0 {
			t.Fatal(out)
		}
		if code, out := flatminRun(t, args(graphs, "1000", "--graphs")...); code != 0 {
			t.Fatal(out)
		}
		if g := readJSON(t, filepath.Join(graphs, "config.json"))["graphs"]; g != true {
			t.Errorf("%s: config.json graphs = %v", trainer, g)
		}
		if p := readJSON(t, filepath.Join(graphs, "summary.json"))["path"]; p != "graphs" {
			t.Errorf("%s: --graphs ran on path %v", trainer, p)
		}
		if code, out := flatminRun(t, "train", "--resume", graphs, "--steps", "2000", "--graphs=false", "--quiet"); code != 0 {
			t.Fatalf("%s: resume with --graphs=false: %s", trainer, out)
		}
		for _, dir := range []string{host, graphs} {
			if p := readJSON(t, filepath.Join(dir, "summary.json"))["path"]; p != "host" {
				t.Errorf("%s: %s ran on path %v, want host", trainer, filepath.Base(dir), p)
			}
		}
		if d := thetaDiff(t, host, graphs); !(d < 1e-9) {
			t.Errorf("%s: Θ with --graphs (then resumed on the host) differs by %.3g relative", trainer, d)
		}
	}
}

// thetaDiff returns ‖Θ_b − Θ_a‖/‖Θ_a‖ for the final Θ of run directories a and b.
func thetaDiff(t *testing.T, a, b string) float64 {
	t.Helper()
	x, _, _, err := model.ReadMatrix(filepath.Join(a, "theta.npy"), "theta")
	if err != nil {
		t.Fatal(err)
	}
	y, _, _, err := model.ReadMatrix(filepath.Join(b, "theta.npy"), "theta")
	if err != nil {
		t.Fatal(err)
	}
	num, den := 0.0, 0.0
	for i := range x {
		num += (x[i] - y[i]) * (x[i] - y[i])
		den += x[i] * x[i]
	}
	return math.Sqrt(num / den)
}
