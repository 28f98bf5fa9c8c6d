package sweep

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
)

func spec(t *testing.T, trainers []string, axes []string, seeds ...uint64) *Spec {
	t.Helper()
	s := &Spec{Base: runner.DefaultConfig(), Trainers: trainers, Seeds: seeds}
	for _, a := range axes {
		ax, err := ParseAxis(a)
		if err != nil {
			t.Fatal(err)
		}
		s.Axes = append(s.Axes, ax)
	}
	return s
}

func TestRunsExpandTheGrid(t *testing.T) {
	s := spec(t, []string{"gd", "labelnoise"}, []string{"labelnoise.sigma=0.01,0.1", "labelnoise.eta=0.01,0.02,auto"}, 3, 5)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	runs := s.Runs()
	if len(runs) != (1+2*3)*2 {
		t.Fatalf("%d runs, want 14", len(runs))
	}
	want := []string{"runs/0000-gd-seed3", "runs/0001-gd-seed5", "runs/0002-labelnoise-sigma=0.01-eta=0.01-seed3",
		"runs/0003-labelnoise-sigma=0.01-eta=0.01-seed5", "runs/0004-labelnoise-sigma=0.01-eta=0.02-seed3"}
	for k, w := range want {
		if runs[k].Dir != w || runs[k].Index != k {
			t.Errorf("run %d: %s, want %s", k, runs[k].Dir, w)
		}
	}
	cfg, err := s.Config(runs[len(runs)-1])
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Trainer != "labelnoise" || cfg.Sigma != 0.1 || cfg.EtaRule != runner.Auto || cfg.Seed != 5 {
		t.Errorf("last run's config: trainer %s sigma %v eta rule %q seed %d", cfg.Trainer, cfg.Sigma, cfg.EtaRule, cfg.Seed)
	}
	if _, err := s.Run(14); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("run 14 of 14: %v", err)
	}
}

func TestSpecCheckRefuses(t *testing.T) {
	for _, c := range []struct {
		trainers []string
		axes     []string
		seeds    []uint64
		want     string
	}{
		{nil, nil, []uint64{1}, "empty grid"},
		{[]string{"gd"}, nil, nil, "no seeds"},
		{[]string{"gd"}, []string{"gd.sigma=0.1"}, []uint64{1}, `gd has no setting "sigma"`},
		{[]string{"gd"}, []string{"gd.momentum=0.9"}, []uint64{1}, `gd has no setting "momentum"`},
		{[]string{"gd"}, []string{"sam1.rho=0.1"}, []uint64{1}, "not among --trainers"},
		{[]string{"gd"}, []string{"gd.eta=0.1", "gd.eta=0.2"}, []uint64{1}, "given twice"},
		{[]string{"gd"}, []string{"gd.eta=0.1,-1"}, []uint64{1}, "positive"},
		{[]string{"gd"}, []string{"gd.seed=1,2"}, []uint64{1}, "--seeds"},
		{[]string{"gd", "gd"}, nil, []uint64{1}, "twice"},
		{[]string{"adam"}, nil, []uint64{1}, "unknown trainer"},
		{[]string{"gd"}, nil, []uint64{1, 1}, "listed twice"},
	} {
		s := spec(t, c.trainers, c.axes, c.seeds...)
		if err := s.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v %v: %v, want %q", c.trainers, c.axes, c.seeds, err, c.want)
		}
	}
	if _, err := ParseAxis("gd.eta="); err == nil || !strings.Contains(err.Error(), "empty grid") {
		t.Errorf("gd.eta=: %v", err)
	}
}

func TestClaimRefusesAnotherSweep(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sw")
	a := spec(t, []string{"gd"}, []string{"gd.eta=0.1,0.2"}, 1, 2)
	if err := Claim(dir, a); err != nil {
		t.Fatal(err)
	}
	if err := Claim(dir, spec(t, []string{"gd"}, []string{"gd.eta=0.1,0.2"}, 1, 2)); err != nil {
		t.Errorf("the same sweep again: %v", err)
	}
	b := spec(t, []string{"gd"}, []string{"gd.eta=0.1,0.3"}, 1, 2)
	if err := Claim(dir, b); err == nil || !strings.Contains(err.Error(), `grid is [{"trainer":"gd","key":"eta","values":["0.1","0.2"]}] there`) {
		t.Errorf("another grid: %v", err)
	}
	c := spec(t, []string{"gd"}, []string{"gd.eta=0.1,0.2"}, 1, 2)
	c.Base.Steps = 7
	if err := Claim(dir, c); err == nil || !strings.Contains(err.Error(), "steps is 1000000 there, 7 here") {
		t.Errorf("other steps: %v", err)
	}
	c = spec(t, []string{"gd"}, []string{"gd.eta=0.1,0.2"}, 1, 2)
	c.Base.Backend, c.Base.CheckpointEvery = "xla:cpu", 5
	if err := Claim(dir, c); err != nil {
		t.Errorf("backend and checkpoint cadence may change: %v", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "summary.json"), []byte("{}"), 0o644)
	if err := Claim(other, a); err == nil || !strings.Contains(err.Error(), "holds no sweep") {
		t.Errorf("a directory with other files: %v", err)
	}
}

// Time to threshold: the first logged row at which each holds, against rows
// written here; NaN never passes.
func TestThresholds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.csv")
	csv := `step,loss,trace_hessian_manifold,trace_min,theory_gap,sv_z_1,sv_z_2,wall_seconds
0,1,30,10,0.5,2,1,0.01
100,0.1,10.5,10,NaN,2,0.03,0.5
200,0.01,10.0001,10,1e-7,2,0.019,1.5
300,0.01,10.002,10,2e-7,2,0.001,2.5
`
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Thresholds(path, Tolerances{Rank: 1e-2, Gap: 1e-6, Trace: 1e-4})
	if err != nil {
		t.Fatal(err)
	}
	if got.Rank == nil || got.Rank.Step != 200 || got.Rank.WallSeconds != 1.5 {
		t.Errorf("rank: %+v, want step 200 (0.019/2 < 0.01) at 1.5 s", got.Rank)
	}
	if got.Gap == nil || got.Gap.Step != 200 {
		t.Errorf("gap: %+v, want step 200 (NaN at 100 does not pass)", got.Gap)
	}
	if got.Trace == nil || got.Trace.Step != 200 || got.Trace.WallSeconds != 1.5 {
		t.Errorf("trace: %+v, want step 200 (|10.0001/10 − 1| = 1e-5)", got.Trace)
	}
	got, _ = Thresholds(path, Tolerances{Rank: 1e-4, Gap: 1e-9, Trace: 0.06})
	if got.Rank != nil || got.Gap != nil || got.Trace == nil || got.Trace.Step != 100 {
		t.Errorf("tighter rank, gap, looser trace: %+v %+v %+v", got.Rank, got.Gap, got.Trace)
	}
}

func TestSbatchQuotes(t *testing.T) {
	s := Sbatch(4, "/opt/flat min/flatmin", "/home/u", "/home/u/sw/slurm", []string{"--out=sw", "--labels=uniform:0.5,1", "--data=it's.csv"}, Slurm{Partition: "gpu", Time: "1:00:00"})
	for _, want := range []string{"#SBATCH --array=0-3\n", "#SBATCH --partition=gpu\n", "#SBATCH --time=1:00:00\n",
		"exec '/opt/flat min/flatmin' sweep --out=sw --labels=uniform:0.5,1 '--data=it'\\''s.csv' --task \"$SLURM_ARRAY_TASK_ID\" --quiet\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("sbatch lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "--mem") {
		t.Errorf("--mem without a value:\n%s", s)
	}
}

// Describe drops NaN as null and gives type-7 quartiles of the rest.
func TestDescribe(t *testing.T) {
	s := Describe([]float64{4, math.NaN(), 1, 3, 2})
	if s.N != 4 || s.Null != 1 || s.Median != 2.5 || s.Q1 != 1.75 || s.Q3 != 3.25 || s.Min != 1 || s.Max != 4 {
		t.Errorf("Describe: %+v", s)
	}
}
