package runner

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/trainers"
)

func TestSnapshotSteps(t *testing.T) {
	for _, tc := range []struct {
		k     int
		steps int64
		want  []int64
	}{
		{1, 100, []int64{100}},
		{2, 100, []int64{0, 100}},
		{5, 100, []int64{0, 25, 50, 75, 100}},
		{4, 2, []int64{0, 1, 2}}, // more snapshots than steps: each step once
	} {
		if got := SnapshotSteps(tc.k, tc.steps); !slices.Equal(got, tc.want) {
			t.Errorf("SnapshotSteps(%d, %d) = %v, want %v", tc.k, tc.steps, got, tc.want)
		}
	}
}

func TestCheckResumeConflicts(t *testing.T) {
	saved := DefaultConfig()
	saved.Eta, saved.Trainer = 0.05, "labelnoise"
	given := DefaultConfig()
	given.Eta, given.Steps, given.Backend, given.Nu = 0.05, 5, "xla:cpu", 0.7
	given.Engine, given.Fuse, given.Graphs = "theta", 3, true
	// Equal values and the settings a resume may change are no conflict.
	if err := CheckResumeConflicts(saved, given, []string{"eta", "steps", "backend", "checkpoint-every", "engine", "fuse", "graphs"}); err != nil {
		t.Errorf("no conflict expected: %v", err)
	}
	err := CheckResumeConflicts(saved, given, []string{"steps", "nu"})
	if err == nil || !strings.Contains(err.Error(), "--nu 0.7") || !strings.Contains(err.Error(), "nu = 0.1") {
		t.Errorf("ν conflict: %v", err)
	}
	given.DataSeed = 9
	if err := CheckResumeConflicts(saved, given, []string{"data-seed"}); err == nil || !strings.Contains(err.Error(), "data_seed") {
		t.Errorf("data seed conflict: %v", err)
	}
}

func TestParamApply(t *testing.T) {
	cfg := DefaultConfig()
	for _, s := range []string{"sam1.rho=0.2", "sam1.sam_batch=4", "gd.steps=77", "riemannian.eta=0.5", "gd.seed=3"} {
		p, err := ParseParam(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Apply(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.Rho != 0.2 || cfg.SAMBatch != 4 || cfg.Steps != 77 || cfg.Eta != 0.5 || cfg.Seed != 3 {
		t.Errorf("got %+v", cfg)
	}
	for _, s := range []string{"gd.eta=-1", "gd.eta=abc", "gd.momentum=1", "gd.steps=1.5", "gd.sigma=0.1", "x.seed=3", "sam1.rho=NaN", "labelnoise.seed=-1"} {
		p, err := ParseParam(s)
		if err == nil {
			err = p.Apply(&cfg)
		}
		if err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

// Every field of every trainer's settings struct has a config.json key, so
// that a library error naming the field (trainers.FieldError) reaches the
// user as the flag (FlagError), and --param can set it.
func TestTrainerSettingsHaveKeys(t *testing.T) {
	for _, name := range trainers.Names() {
		st, err := trainers.Config{}.Settings(name)
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := TrainerKeys(name)
		if n := reflect.TypeOf(st).NumField(); len(keys) != n || n == 0 {
			t.Errorf("%s: %d fields, keys %v", name, n, keys)
		}
	}
	err := FlagError(&trainers.FieldError{Field: "SAMBatch", Value: 0, Want: "at least 1"})
	if err.Error() != "--sam-batch must be at least 1, got 0" {
		t.Errorf("FlagError: %v", err)
	}
}
