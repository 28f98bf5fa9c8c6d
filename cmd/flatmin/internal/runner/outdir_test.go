package runner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// ClaimOutDir creates and locks a new directory, takes an empty one, and
// refuses one in use or with anything in it, writing nothing there.
func TestClaimOutDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "a", "b")
	o, err := ClaimOutDir(dir, "--out")
	if err != nil {
		t.Fatal(err)
	}
	_, err = ClaimOutDir(dir, "--out")
	var inUse *runio.InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Errorf("second claim: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "x.npy"), []byte("data"), 0o644)
	// Discard removes what this process made: the file, b, and a.
	if err := o.Discard(); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, parent); len(got) != 0 {
		t.Errorf("after Discard the parent holds %v", got)
	}

	empty := t.TempDir()
	o, err = ClaimOutDir(empty, "--out")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(empty, "metrics.csv"), []byte("step\n"), 0o644)
	o.Discard()
	if _, err := os.Stat(empty); err != nil || len(entries(t, empty)) != 0 {
		t.Errorf("Discard of a directory that existed: %v, %v", err, entries(t, empty))
	}

	for _, tc := range []struct{ file, want string }{
		{"metrics.csv", "already holds a run (metrics.csv)"},
		{"compare.json", "already holds a run (compare.json)"},
		{"report.md", "already holds a run (report.md)"},
		{"notes.txt", "is not empty (notes.txt)"},
	} {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, tc.file), []byte("mine"), 0o644)
		if _, err := ClaimOutDir(d, "--out"); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), d) {
			t.Errorf("%s: %v", tc.file, err)
		}
		if got := entries(t, d); len(got) != 1 || got[0] != tc.file {
			t.Errorf("%s: refused directory now holds %v", tc.file, got)
		}
	}

	// Close keeps what was written and lets the next claim see it.
	kept := filepath.Join(t.TempDir(), "run")
	o, err = ClaimOutDir(kept, "--out")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(kept, "config.json"), []byte("{}"), 0o644)
	o.Close()
	if got := entries(t, kept); len(got) != 1 || got[0] != "config.json" {
		t.Errorf("after Close: %v", got)
	}
	if _, err := ClaimOutDir(kept, "--out"); err == nil || !strings.Contains(err.Error(), "already holds a run") {
		t.Errorf("claim of a finished run: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := ClaimOutDir(file, "--out"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("claim of a file: %v", err)
	}
}
