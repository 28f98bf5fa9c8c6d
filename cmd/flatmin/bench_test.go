package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// benchKeys are the keys every line of `flatmin bench --json` has.
var benchKeys = []string{"work", "m", "d", "n", "engine", "backend", "path", "median_seconds", "steps_per_second", "gflops", "peak_rss_bytes"}

// quick keeps a bench row to milliseconds.
var quick = []string{"--min-time", "1ms", "--repeats", "3"}

// parseBenchJSON checks that out is one JSON object per line with every key.
func parseBenchJSON(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("line %q is not a JSON object: %v", line, err)
		}
		for _, k := range benchKeys {
			if _, ok := row[k]; !ok {
				t.Errorf("row %v lacks %q", row, k)
			}
		}
		for _, k := range []string{"median_seconds", "steps_per_second", "gflops"} {
			if v, ok := row[k].(float64); !ok || !(v > 0) {
				t.Errorf("%s = %v, want a positive number", k, row[k])
			}
		}
		for _, k := range []string{"engine", "backend"} {
			if v, ok := row[k].(string); !ok || v == "" {
				t.Errorf("%s = %v, want a name", k, row[k])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func TestBenchJSON(t *testing.T) {
	args := append([]string{"bench", "--only", "labelnoise", "--sizes", "10,3,3,12,4,2", "--json"}, quick...)
	stdout, stderr, status := flatmin(t, args...)
	if status != 0 || stderr != "" {
		t.Fatalf("status %d, stderr %q", status, stderr)
	}
	rows := parseBenchJSON(t, stdout)
	if len(rows) != 2 {
		t.Fatalf("want 2 rows, got %d:\n%s", len(rows), stdout)
	}
	first, second := rows[0], rows[1]
	if first["work"] != "labelnoise" || first["m"] != 10.0 || first["d"] != 3.0 || first["n"] != 3.0 || second["m"] != 12.0 || second["n"] != 2.0 {
		t.Errorf("rows %v", rows)
	}
	if first["backend"] != "go:ops_sequential" {
		t.Errorf("default backend %v", first["backend"])
	}
	// Small problems on SimpleGo step on the host, under either engine (below).
	if first["engine"] != "feature" || first["path"] != "host" {
		t.Errorf("(10,3,3) ran engine %v on path %v, want feature on the host", first["engine"], first["path"])
	}
	// (10,3,3) has PyTorch's 24 µs beside it; (12,4,2) has none.
	if first["reference_seconds"] != 24e-6 || !(first["speedup"].(float64) > 0) {
		t.Errorf("reference %v, speedup %v", first["reference_seconds"], first["speedup"])
	}
	if _, ok := second["reference_seconds"]; ok {
		t.Errorf("a reference for a size PyTorch was not timed at: %v", second)
	}
	// In-process (a test binary cannot re-execute itself as flatmin), the peak
	// is this process's so far: positive and never lower for a later row.
	if p1, p2 := first["peak_rss_bytes"].(float64), second["peak_rss_bytes"].(float64); !(p1 > 0) || p2 < p1 {
		t.Errorf("in-process peak RSS %v then %v", p1, p2)
	}
	// --engine reaches the trainer.
	stdout, stderr, status = flatmin(t, append([]string{"bench", "--only", "labelnoise", "--sizes", "10,3,3", "--json", "--engine", "theta"}, quick...)...)
	if status != 0 {
		t.Fatalf("--engine theta: status %d, %s", status, stderr)
	}
	if row := parseBenchJSON(t, stdout)[0]; row["engine"] != "theta" || row["path"] != "host" {
		t.Errorf("--engine theta ran engine %v on path %v", row["engine"], row["path"])
	}
	// --graphs keeps the steps in compiled graphs.
	stdout, stderr, status = flatmin(t, append([]string{"bench", "--only", "labelnoise", "--sizes", "10,3,3", "--json", "--graphs"}, quick...)...)
	if status != 0 {
		t.Fatalf("--graphs: status %d, %s", status, stderr)
	}
	if row := parseBenchJSON(t, stdout)[0]; row["engine"] != "feature" || row["path"] != "graphs" {
		t.Errorf("--graphs ran engine %v on path %v", row["engine"], row["path"])
	}
	stdout, stderr, status = flatmin(t, append([]string{"bench", "--only", "hutchinson", "--sizes", "10,3,3", "--json", "--graphs"}, quick...)...)
	if status != 0 {
		t.Fatalf("hutchinson --graphs: status %d, %s", status, stderr)
	}
	if row := parseBenchJSON(t, stdout)[0]; row["path"] != "graphs" {
		t.Errorf("hutchinson --graphs ran on path %v", row["path"])
	}
}

func TestBenchTable(t *testing.T) {
	args := append([]string{"bench", "--only", "labelnoise,tts", "--sizes", "10,3,3"}, quick...)
	stdout, stderr, status := flatmin(t, args...)
	if status != 0 || stderr != "" {
		t.Fatalf("status %d, stderr %q", status, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header, 2 rows and the tts note:\n%s", stdout)
	}
	for _, want := range []string{"time/step", "GFLOP/s", "peak RSS", "PyTorch", "speedup"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("header lacks %q: %s", want, lines[0])
		}
	}
	if !strings.HasPrefix(lines[1], "labelnoise") || !strings.Contains(lines[1], "24 µs") || !strings.Contains(lines[1], "×") {
		t.Errorf("labelnoise row lacks PyTorch's 24 µs and the speedup: %s", lines[1])
	}
	if !strings.HasPrefix(lines[2], "tts") || !strings.Contains(lines[3], "theory gap below 1e-06 after") {
		t.Errorf("tts row and note:\n%s\n%s", lines[2], lines[3])
	}
}

func TestBenchBadFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown work", []string{"--only", "adam"}, "adam"},
		{"empty only", []string{"--only", ","}, "no work"},
		{"sizes not triples", []string{"--sizes", "10,3"}, "multiple of 3"},
		{"zero size", []string{"--sizes", "10,0,3"}, "positive"},
		{"negative size", []string{"--sizes", "-10,3,3"}, "positive"},
		{"non-number size", []string{"--sizes", "ten,3,3"}, "ten"},
		{"sizes without a sized row", []string{"--only", "fig1a", "--sizes", "10,3,3"}, "--sizes"},
		{"unknown engine", []string{"--engine", "gpu"}, "gpu"},
		{"negative fuse", []string{"--fuse", "-1"}, "--fuse"},
		{"zero repeats", []string{"--repeats", "0"}, "--repeats"},
		{"negative min-time", []string{"--min-time", "-1s"}, "--min-time"},
		{"min-time not a duration", []string{"--min-time", "fast"}, "min-time"},
		{"zero probes", []string{"--probes", "0"}, "--probes"},
		{"unknown backend", []string{"--backend", "tpu"}, "tpu"},
		{"unknown flag", []string{"--size", "10,3,3"}, "size"},
		{"stray argument", []string{"labelnoise"}, "labelnoise"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, status := flatmin(t, append([]string{"bench"}, c.args...)...)
			if status != 2 || stdout != "" {
				t.Errorf("status %d, want 2 (stdout %q)", status, stdout)
			}
			if strings.Count(strings.TrimRight(stderr, "\n"), "\n") != 0 || !strings.HasPrefix(stderr, "flatmin bench: ") {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("message %q does not mention %q", stderr, c.want)
			}
		})
	}
}

func TestBenchHelp(t *testing.T) {
	stdout, stderr, status := flatmin(t, "bench", "--help")
	if status != 0 || stderr != "" {
		t.Fatalf("status %d, stderr %q", status, stderr)
	}
	for _, want := range []string{"--only", "--sizes", "--backend", "--engine", "--fuse", "--json", "--min-time", "--repeats", "fig1a", "0.6 GB", "PyTorch"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("bench --help lacks %q", want)
		}
	}
	if strings.Contains(stdout, "--child") {
		t.Error("bench --help shows the internal --child flag")
	}
}

// The real binary runs each row in a child process of its own: the peak RSS
// of a small row after a large one is the small row's, not the large one's,
// which a measurement in one process could never show.
func TestBenchChildProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs bench rows in child processes")
	}
	bin := pureGoBinary(t)
	args := append([]string{"bench", "--only", "hutchinson", "--sizes", "1000,64,32,10,3,3", "--json"}, quick...)
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	rows := parseBenchJSON(t, string(out))
	if len(rows) != 2 {
		t.Fatalf("want 2 rows:\n%s", out)
	}
	large, small := rows[0]["peak_rss_bytes"].(float64), rows[1]["peak_rss_bytes"].(float64)
	if !(small > 4<<20) || !(small < large) {
		t.Errorf("peak RSS: (1000,64,32) %.0f bytes, then (10,3,3) %.0f bytes; want each row's own", large, small)
	}
	if rows[0]["reference_seconds"] != 13e-3 {
		t.Errorf("hutchinson (1000,64,32) reference %v, want PyTorch's 13 ms", rows[0]["reference_seconds"])
	}
	if rows[0]["path"] != "host" {
		t.Errorf("hutchinson ran on path %v, want host", rows[0]["path"])
	}
	// A row that fails in its child is reported on one line; the others still run.
	cmd := exec.Command(bin, append([]string{"bench", "--only", "labelnoise,tts", "--sizes", "10,3,3", "--tts-max-steps", "3", "--json"}, quick...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("a failing row: %v, want exit status 1", err)
	}
	if rows := parseBenchJSON(t, string(out)); len(rows) != 1 || rows[0]["work"] != "labelnoise" {
		t.Errorf("rows before the failure: %s", out)
	}
	if msg := stderr.String(); strings.Count(strings.TrimRight(msg, "\n"), "\n") != 0 || !strings.HasPrefix(msg, "flatmin bench: tts m=10,d=3,n=3: ") || !strings.Contains(msg, "--tts-max-steps") {
		t.Errorf("stderr %q", msg)
	}
}
