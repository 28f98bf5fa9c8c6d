package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// One trainer's failure does not stop the others: the flow cannot start on
// data with a repeated point (J Jᵀ singular), and gd still runs; the table
// and compare.json give each trainer's stop reason, and the exit status is
// 1, naming the trainer that failed.
func TestCompareGoesOnPastAFailure(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data.csv")
	if err := os.WriteFile(data, []byte("0.6,0.8,0,0.5\n0.6,0.8,0,0.5\n0,0.6,0.8,0.7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "cmp")
	stdout, stderr, s := flatmin(t, "compare", "--trainers", "riemannian,gd", "--data", data, "--steps", "300", "--log-every", "100", "--out", dir)
	if s != 1 || !strings.Contains(stderr, "1 of 2 trainers failed: riemannian (error)") {
		t.Fatalf("exit %d, want 1 naming riemannian: %s", s, stderr)
	}
	var rows []map[string]any
	readJSONInto(t, filepath.Join(dir, "compare.json"), &rows)
	if len(rows) != 2 {
		t.Fatalf("compare.json has %d rows", len(rows))
	}
	if rows[0]["stop_reason"] != "error" || !strings.Contains(rows[0]["error"].(string), "singular") {
		t.Errorf("riemannian row: %v", rows[0])
	}
	if rows[1]["stop_reason"] != "steps" || rows[1]["steps"].(float64) != 300 {
		t.Errorf("gd row: %v", rows[1])
	}
	if !strings.Contains(stdout, "  error: ") || !strings.Contains(stdout, "  steps") {
		t.Errorf("table does not show the stop reasons:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "gd", "theta.npy")); err != nil {
		t.Error(err)
	}
}

func readJSONInto(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}
