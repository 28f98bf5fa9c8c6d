package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/checkpoint"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// oneLineExit2 checks a refusal: exit status 2 and, besides warnings, one
// line on stderr that contains want.
func oneLineExit2(t *testing.T, what string, stderr string, status int, want string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.Contains(l, "warning:") {
			lines = append(lines, l)
		}
	}
	if status != 2 || len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Errorf("%s: exit %d, stderr %q (want exit 2 and one line naming %q)", what, status, stderr, want)
	}
}

// snapshotDir returns every file's content under dir, by relative path.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func sameSnapshot(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// --out never writes into a directory that is not empty and not the
// command's own: the user's files stay as they were, the refusal is one line.
func TestOutRefusesForeignDirectories(t *testing.T) {
	user := t.TempDir()
	writeNpy(t, filepath.Join(user, "x.npy"), []float64{3, 4, 0, 1, 1, 1}, 2, 3)
	writeNpy(t, filepath.Join(user, "y.npy"), []float64{0.5, 0.7}, 2)
	notes := t.TempDir()
	writeFile(t, notes, "notes.txt", "mine")
	trainRun := filepath.Join(t.TempDir(), "run")
	if _, stderr, s := flatmin(t, "train", "--steps", "20", "--out", trainRun, "--quiet"); s != 0 {
		t.Fatal(stderr)
	}
	compareRun := filepath.Join(t.TempDir(), "cmp")
	if _, stderr, s := flatmin(t, "compare", "--trainers", "gd", "--steps", "20", "--out", compareRun, "--quiet"); s != 0 {
		t.Fatal(stderr)
	}
	for _, tc := range []struct {
		name string
		dir  string
		args []string
	}{
		{"train into the data's folder", user, []string{"train", "--x", filepath.Join(user, "x.npy"), "--y", filepath.Join(user, "y.npy"), "--normalize", "--steps", "5"}},
		{"train into a folder of notes", notes, []string{"train", "--steps", "5"}},
		{"train into a train run", trainRun, []string{"train", "--steps", "5"}},
		{"train into a comparison", compareRun, []string{"train", "--steps", "5"}},
		{"compare into a train run", trainRun, []string{"compare", "--trainers", "gd", "--steps", "5"}},
		{"compare into a comparison", compareRun, []string{"compare", "--trainers", "gd", "--steps", "5"}},
		{"compare into a folder of notes", notes, []string{"compare", "--trainers", "gd", "--steps", "5"}},
		{"repro into a train run", trainRun, []string{"repro", "fig1a", "--quick"}},
		{"repro into a folder of notes", notes, []string{"repro", "fig1a", "--quick"}},
	} {
		before := snapshotDir(t, tc.dir)
		_, stderr, s := flatmin(t, append(tc.args, "--out", tc.dir)...)
		oneLineExit2(t, tc.name, stderr, s, tc.dir)
		if !sameSnapshot(before, snapshotDir(t, tc.dir)) {
			t.Errorf("%s: the directory's files changed", tc.name)
		}
	}
	// An empty directory is fine.
	empty := t.TempDir()
	if _, stderr, s := flatmin(t, "train", "--steps", "5", "--out", empty, "--quiet"); s != 0 {
		t.Errorf("train into an empty directory: %d %s", s, stderr)
	}
	emptyCmp := t.TempDir()
	if _, stderr, s := flatmin(t, "compare", "--trainers", "gd", "--steps", "5", "--out", emptyCmp, "--quiet"); s != 0 {
		t.Errorf("compare into an empty directory: %d %s", s, stderr)
	}
}

// A run that fails before its first step leaves no directory behind (and a
// directory that existed empty, empty), so that the same --out works again.
func TestFailureBeforeFirstStepLeavesNothing(t *testing.T) {
	data := t.TempDir()
	// Two equal rows: J Jᵀ is singular and the Riemannian flow cannot start.
	writeNpy(t, filepath.Join(data, "x.npy"), []float64{0.6, 0.8, 0, 0.6, 0.8, 0}, 2, 3)
	writeNpy(t, filepath.Join(data, "y.npy"), []float64{0.5, 0.7}, 2)
	args := []string{"train", "--trainer", "riemannian", "--x", filepath.Join(data, "x.npy"), "--y", filepath.Join(data, "y.npy"), "--steps", "10", "--quiet"}
	parent := t.TempDir()
	fresh := filepath.Join(parent, "a", "b", "run")
	_, stderr, s := flatmin(t, append(args, "--out", fresh)...)
	if s != 2 {
		t.Fatalf("singular J Jᵀ: exit %d, %s", s, stderr)
	}
	if entries, _ := os.ReadDir(parent); len(entries) != 0 {
		t.Errorf("a failed run left %v in its parent", entries)
	}
	empty := t.TempDir()
	if _, _, s := flatmin(t, append(args, "--out", empty)...); s != 2 {
		t.Fatalf("exit %d", s)
	}
	if entries, err := os.ReadDir(empty); err != nil || len(entries) != 0 {
		t.Errorf("a failed run left %v (%v) in the empty directory it was given", entries, err)
	}
	// The same --out then takes a good run.
	if _, stderr, s := flatmin(t, "train", "--steps", "5", "--quiet", "--out", fresh); s != 0 {
		t.Errorf("rerun into the same --out: %s", stderr)
	}
}

// A run directory is locked for a run's whole life: a second train, a
// resume or a compare into it is refused with the holder's pid, before
// anything is written; once the holder is gone the run resumes.
func TestRunDirectoryIsLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	dir := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(pureGoBinary(t), trainArgs("labelnoise", dir)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if done, _ := filepath.Glob(filepath.Join(dir, checkpoint.Dir, "ckpt-*.ckpt")); len(done) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	config, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	theta0, _ := os.ReadFile(filepath.Join(dir, "theta0.npy"))
	pid := "pid " + strconv.Itoa(cmd.Process.Pid)
	for _, args := range [][]string{
		{"train", "--seed", "7", "--steps", "100", "--out", dir},
		{"train", "--resume", dir, "--steps", "8000000"},
		{"compare", "--trainers", "gd", "--steps", "5", "--out", dir},
	} {
		code, out := runBinary(t, args...)
		oneLineExit2(t, strings.Join(args, " "), out, code, "in use by another flatmin process ("+pid+")")
		// In process too.
		_, errOut, s := flatmin(t, args...)
		oneLineExit2(t, "in process: "+strings.Join(args, " "), errOut, s, pid)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if now, _ := os.ReadFile(filepath.Join(dir, "config.json")); !bytes.Equal(now, config) {
		t.Error("config.json changed under the running process")
	}
	if now, _ := os.ReadFile(filepath.Join(dir, "theta0.npy")); !bytes.Equal(now, theta0) {
		t.Error("theta0.npy changed under the running process")
	}
	// The kernel drops a dead process's lock: the run resumes.
	if code, out := runBinary(t, "train", "--resume", dir, "--quiet"); code != 0 {
		t.Fatalf("resume after the holder died: %d %s", code, out)
	}
}

// runToResume makes a small run (300 steps, a checkpoint every 100) and
// returns its directory.
func runToResume(t *testing.T, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	args := append([]string{"train", "--steps", "300", "--checkpoint-every", "100", "--log-every", "50", "--quiet", "--out", dir}, extra...)
	if _, stderr, s := flatmin(t, args...); s != 0 {
		t.Fatal(stderr)
	}
	return dir
}

func ckptPath(dir string, step int64) string {
	return filepath.Join(dir, checkpoint.Dir, "ckpt-"+strings.Repeat("0", 12-len(strconv.FormatInt(step, 10)))+strconv.FormatInt(step, 10)+".ckpt")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint that is not the run's (another run's, renamed to another
// step, or a config.json edited under it, or data files replaced) is skipped
// with a warning naming what differs, and refused when none is left.
func TestResumeChecksCheckpointIdentity(t *testing.T) {
	t.Run("another run's checkpoints", func(t *testing.T) {
		dir := runToResume(t)
		other := runToResume(t, "--seed", "9", "--eta", "0.01")
		os.RemoveAll(filepath.Join(dir, checkpoint.Dir))
		os.Mkdir(filepath.Join(dir, checkpoint.Dir), 0o755)
		copyFile(t, ckptPath(other, 300), ckptPath(dir, 300))
		_, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "600", "--quiet")
		oneLineExit2(t, "foreign checkpoint", stderr, s, "no valid checkpoint")
		if !strings.Contains(stderr, "seed") || !strings.Contains(stderr, "eta") {
			t.Errorf("the warning does not name seed and eta: %q", stderr)
		}
	})
	t.Run("a newer foreign checkpoint is skipped", func(t *testing.T) {
		dir := runToResume(t)
		other := runToResume(t, "--seed", "9", "--steps", "400")
		copyFile(t, ckptPath(other, 400), ckptPath(dir, 400))
		_, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "600", "--quiet")
		if s != 0 || !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "seed") {
			t.Errorf("exit %d, stderr %q (want a warning naming the seed, then the run's own checkpoint)", s, stderr)
		}
		ref := filepath.Join(t.TempDir(), "ref")
		if _, stderr, s := flatmin(t, "train", "--steps", "600", "--checkpoint-every", "100", "--log-every", "50", "--quiet", "--out", ref); s != 0 {
			t.Fatal(stderr)
		}
		if !sameFile(t, filepath.Join(ref, "theta.npy"), filepath.Join(dir, "theta.npy")) {
			t.Error("Θ differs from the uninterrupted run's")
		}
	})
	t.Run("renamed to a later step", func(t *testing.T) {
		dir := runToResume(t)
		os.Rename(ckptPath(dir, 200), ckptPath(dir, 900))
		_, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "1000", "--quiet")
		if s != 0 || !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "step 200") {
			t.Errorf("exit %d, stderr %q (want a warning naming the real step)", s, stderr)
		}
		dir = runToResume(t)
		os.Remove(ckptPath(dir, 300))
		os.Rename(ckptPath(dir, 200), ckptPath(dir, 300))
		_, stderr, s = flatmin(t, "train", "--resume", dir, "--steps", "600", "--quiet")
		oneLineExit2(t, "only a renamed checkpoint", stderr, s, "no valid checkpoint")
	})
	t.Run("config.json edited", func(t *testing.T) {
		dir := runToResume(t)
		path := filepath.Join(dir, "config.json")
		cfg, _ := os.ReadFile(path)
		os.WriteFile(path, bytes.Replace(cfg, []byte(`"trainer": "labelnoise"`), []byte(`"trainer": "gd"`), 1), 0o644)
		_, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "600", "--quiet")
		oneLineExit2(t, "edited trainer", stderr, s, "no valid checkpoint")
		if !strings.Contains(stderr, "trainer") {
			t.Errorf("nothing names the trainer: %q", stderr)
		}
	})
	for _, f := range []string{"x.npy", "y.npy", "w.npy", "theta0.npy"} {
		t.Run(f+" replaced", func(t *testing.T) {
			dir := runToResume(t)
			path := filepath.Join(dir, f)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			v, dims, err := npy.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			v[0] *= 0.5
			writeNpy(t, path, v, dims...)
			_, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "600", "--quiet")
			oneLineExit2(t, f+" replaced", stderr, s, "no valid checkpoint")
			if !strings.Contains(stderr, f) {
				t.Errorf("nothing names %s: %q", f, stderr)
			}
		})
	}
}

// --resume with data flags compares their content (after the run's
// normalization) with the data the run saved: equal is fine, different refused.
func TestResumeComparesDataFlags(t *testing.T) {
	data := t.TempDir()
	x := []float64{3, 4, 0, 0, 1, 1, 1, 2, 2}
	writeNpy(t, filepath.Join(data, "x.npy"), x, 3, 3)
	writeNpy(t, filepath.Join(data, "y.npy"), []float64{0.5, 0.7, 0.9}, 3)
	writeNpy(t, filepath.Join(data, "x2.npy"), []float64{3, 4, 0, 0, 1, 1, 1, 2, 2.5}, 3, 3)
	writeNpy(t, filepath.Join(data, "y2.npy"), []float64{0.5, 0.7, 0.8}, 3)
	writeNpy(t, filepath.Join(data, "w.npy"), []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5}, 10)
	writeNpy(t, filepath.Join(data, "w1.npy"), []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 10)
	writeFile(t, data, "d.csv", "3,4,0,0.5\n0,1,1,0.7\n1,2,2,0.9\n")
	writeFile(t, data, "d2.csv", "3,4,0,0.5\n0,1,1,0.7\n1,2,2,0.8\n")
	dir := runToResume(t, "--x", filepath.Join(data, "x.npy"), "--y", filepath.Join(data, "y.npy"), "--normalize")
	th0 := filepath.Join(dir, "theta0.npy")
	writeNpy(t, filepath.Join(data, "theta0.npy"), make([]float64, 30), 10, 3)
	budget := 300
	for _, tc := range []struct {
		args []string
		want string // "" for accepted
	}{
		{[]string{"--x", filepath.Join(data, "x2.npy"), "--y", filepath.Join(data, "y.npy")}, "--x"},
		{[]string{"--x", filepath.Join(data, "x.npy"), "--y", filepath.Join(data, "y2.npy")}, "--y"},
		{[]string{"--data", filepath.Join(data, "d2.csv")}, "--data"},
		{[]string{"--w", filepath.Join(data, "w.npy")}, "--w"},
		{[]string{"--theta0", filepath.Join(data, "theta0.npy")}, "--theta0"},
		{[]string{"--x", filepath.Join(data, "x.npy"), "--y", filepath.Join(data, "y.npy")}, ""},
		{[]string{"--x", filepath.Join(dir, "x.npy"), "--y", filepath.Join(dir, "y.npy")}, ""},
		{[]string{"--data", filepath.Join(data, "d.csv")}, ""},
		{[]string{"--w", filepath.Join(data, "w1.npy")}, ""},
		{[]string{"--theta0", th0}, ""},
	} {
		budget += 100 // an accepted resume runs 100 steps more
		args := append([]string{"train", "--resume", dir, "--quiet", "--steps", strconv.Itoa(budget)}, tc.args...)
		_, stderr, s := flatmin(t, args...)
		if tc.want == "" {
			if s != 0 {
				t.Errorf("%v: exit %d, %s", tc.args, s, stderr)
			}
			continue
		}
		oneLineExit2(t, strings.Join(tc.args, " "), stderr, s, tc.want)
	}
	// A synthetic run resumed with files of other data.
	syn := runToResume(t)
	_, stderr, s := flatmin(t, "train", "--resume", syn, "--steps", "600", "--x", filepath.Join(data, "x.npy"), "--y", filepath.Join(data, "y.npy"))
	oneLineExit2(t, "synthetic run, file data", stderr, s, "--x")
}

// summaryWithoutWall reads summary.json without its wall-clock fields.
func summaryWithoutWall(t *testing.T, dir string) string {
	t.Helper()
	sum := readJSON(t, filepath.Join(dir, "summary.json"))
	delete(sum, "wall_seconds")
	for _, k := range []string{"final", "initial"} {
		if m, ok := sum[k].(map[string]any); ok {
			delete(m, "wall_seconds")
		}
	}
	data, _ := json.Marshal(sum)
	return string(data)
}

// writeV1 rewrites the checkpoint at path in flatmin 0.1's format (Θ as
// base64 .npy inside the JSON, no identity), with config in place of its own.
func writeV1(t *testing.T, path string, config json.RawMessage) {
	t.Helper()
	c, err := checkpoint.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	npy, err := npy.Encode(tensors.MustCopyFlatData[float64](c.Theta), c.M, c.D)
	if err != nil {
		t.Fatal(err)
	}
	var rng []string
	for _, r := range c.RNG {
		rng = append(rng, strconv.FormatUint(r, 10))
	}
	body, _ := json.Marshal(map[string]any{"step": c.Step, "theta_npy": base64.StdEncoding.EncodeToString(npy), "rng": rng,
		"extra": c.Extra, "wall_seconds": c.WallSeconds, "config": config})
	sum := sha256.Sum256(body)
	file := fmt.Sprintf("FLATMIN-CHECKPOINT 1\nlength %d\nsha256 %s\n\n%s", len(body), hex.EncodeToString(sum[:]), body)
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
}

// flatmin 0.1's checkpoints (no identity) still resume when they agree with
// the run, to the uninterrupted result; one with another run's settings is refused.
func TestResumeFromVersion1Checkpoint(t *testing.T) {
	ref := filepath.Join(t.TempDir(), "ref")
	if _, stderr, s := flatmin(t, "train", "--engine", "theta", "--steps", "600", "--checkpoint-every", "100", "--log-every", "50", "--quiet", "--out", ref); s != 0 {
		t.Fatal(stderr)
	}
	for _, foreign := range []bool{false, true} {
		dir := runToResume(t, "--engine", "theta")
		os.Remove(ckptPath(dir, 200))
		c, err := checkpoint.Load(ckptPath(dir, 300))
		if err != nil {
			t.Fatal(err)
		}
		config := c.Config
		if foreign {
			config = bytes.Replace(config, []byte(`"seed":1`), []byte(`"seed":9`), 1)
		}
		writeV1(t, ckptPath(dir, 300), config)
		_, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "600", "--quiet")
		if foreign {
			oneLineExit2(t, "a version 1 checkpoint of another run", stderr, s, "no valid checkpoint")
			if !strings.Contains(stderr, "seed") {
				t.Errorf("the warning does not name the seed: %q", stderr)
			}
			continue
		}
		if s != 0 {
			t.Fatalf("resume from a version 1 checkpoint: %s", stderr)
		}
		if !sameFile(t, filepath.Join(ref, "theta.npy"), filepath.Join(dir, "theta.npy")) {
			t.Error("Θ after resuming from a version 1 checkpoint differs from the uninterrupted run's")
		}
	}
}

// A resume past where a run stopped off its log cadence (an earlier
// --steps) ends with the outputs of a run that never stopped: no extra
// metrics row, and summary.json's "initial" is the metrics at Θ₀.
func TestResumeOutputsEqualUninterrupted(t *testing.T) {
	for _, trainer := range []string{"labelnoise", "riemannian"} {
		ref, dir := filepath.Join(t.TempDir(), "ref"), filepath.Join(t.TempDir(), "run")
		args := func(out, steps string) []string {
			return []string{"train", "--trainer", trainer, "--steps", steps, "--log-every", "500", "--checkpoint-every", "1000", "--quiet", "--out", out}
		}
		if _, stderr, s := flatmin(t, args(ref, "3000")...); s != 0 {
			t.Fatal(stderr)
		}
		if _, stderr, s := flatmin(t, args(dir, "2100")...); s != 0 {
			t.Fatal(stderr)
		}
		if _, stderr, s := flatmin(t, "train", "--resume", dir, "--steps", "3000", "--quiet"); s != 0 {
			t.Fatal(stderr)
		}
		if i := readJSON(t, filepath.Join(dir, "summary.json"))["initial"].(map[string]any)["step"]; i != 0.0 {
			t.Errorf("%s: summary initial is at step %v, want 0", trainer, i)
		}
		sameOutputs(t, ref, dir)
	}
}
