package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/trainers"
)

// TestOutputsMatchGolden reruns the commands of testdata/golden/commands.txt
// and asks for the bytes saved from main before the house refactor (issue
// 13): theta.npy exactly, metrics.csv exactly but for wall_seconds. A
// refactor that reorders any floating-point sum on the host path fails here.
// To refresh after an intended change: see testdata/golden/README.md.
func TestOutputsMatchGolden(t *testing.T) {
	if trainers.GraphsForced() {
		t.Skip("the saved outputs are the host path's; $FLATMIN_GRAPHS=1 asks for the graphs")
	}
	golden := filepath.Join("testdata", "golden")
	f, err := os.Open(filepath.Join(golden, "commands.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		name, args := fields[0], fields[1:]
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			_, stderr, status := flatmin(t, append(args, "--out", out, "--quiet")...)
			if status != 0 {
				t.Fatalf("%v: status %d: %s", args, status, stderr)
			}
			want, err := os.ReadFile(filepath.Join(golden, name, "theta.npy"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(out, "theta.npy"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("theta.npy differs from the saved one")
			}
			wantRows := readCSVWithout(t, filepath.Join(golden, name, "metrics.csv"), "wall_seconds")
			gotRows := readCSVWithout(t, filepath.Join(out, "metrics.csv"), "wall_seconds")
			if len(gotRows) != len(wantRows) {
				t.Fatalf("metrics.csv: %d rows, saved %d", len(gotRows), len(wantRows))
			}
			for i := range wantRows {
				if !slices.Equal(gotRows[i], wantRows[i]) {
					t.Errorf("metrics.csv row %d:\n got  %v\n want %v", i, gotRows[i], wantRows[i])
				}
			}
		})
	}
}

// readCSVWithout reads a CSV file and drops the column named drop.
func readCSVWithout(t *testing.T, path, drop string) [][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(rows) == 0 {
		return nil
	}
	col := slices.Index(rows[0], drop)
	if col < 0 {
		return rows
	}
	for i, r := range rows {
		rows[i] = slices.Delete(slices.Clone(r), col, col+1)
	}
	return rows
}
