package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/bench"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
)

// benchInProcess runs every row in this process: the tests set it, as their
// binary cannot be re-executed as flatmin.
var benchInProcess bool

const benchNotes = `
Rows (--only; all of them by default; README.md gives run times):
  labelnoise  one label-noise SGD step at (m,d,n) = (10,3,3), (1000,64,32),
              (10000,256,64) and (100000,256,64), on synthetic data as flatmin
              train makes it; η = 0.05, or 1/λ_max(2JJᵀ) at Θ₀ where 0.05
              would diverge (m ≥ 1000). (100000,256,64) peaks near 0.6 GB.
  riemannian  one Riemannian flow step, retraction included, at (1000,64,32)
  hutchinson  Hutchinson's estimate of Tr D²L with --probes probes at (1000,64,32)
  lanczos     one Lanczos run for the top 3 eigenvalues of D²L (and the
              smallest), 50 steps, at (1000,64,32); its time per step is
              that of the whole run
  fig1a       a whole --fig1a-steps run of Figure 1a's label-noise SGD;
              its time per step is total/steps
  tts         time to solution: the Riemannian flow on Figure 1a until the
              theory gap is below 1e-6; its median_seconds is that time
--sizes replaces the sizes of labelnoise, riemannian, hutchinson and lanczos.

A step's time is the median over --repeats batches of at least --min-time
each, after compiling and warming up. Each row runs in a process of its own,
whose peak RSS is reported (with --in-process: this process's peak so far).
GFLOP/s divides an estimate of a step's flops by its time. Beside each row:
PyTorch 1.13 on CPU (float64, 2 threads) for the same work, and the speedup
over it (above 1: flatmin is faster).
`

func cmdBench(args []string, stdout, stderr io.Writer) error {
	opt := bench.DefaultOptions()
	fs := newFlagSet("bench", "bench [--only WORK[,WORK]] [--sizes m,d,n[,m,d,n...]] [flags]", stdout)
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(stdout, benchNotes) }
	only := fs.String("only", "", "rows to run, comma-separated: labelnoise, riemannian, hutchinson, lanczos, fig1a, tts (default all)")
	sizes := fs.String("sizes", "", "m,d,n[,m,d,n...]: the sizes of the labelnoise, riemannian, hutchinson and lanczos rows instead of theirs")
	fs.StringVar(&opt.Backend, "backend", "", "GoMLX backend: go (SimpleGo, default), xla:cpu, xla:cuda; default from $GOMLX_BACKEND")
	engine := fs.String("engine", "auto", engineHelp)
	fs.IntVar(&opt.Fuse, "fuse", opt.Fuse, fuseHelp)
	fs.BoolVar(&opt.Graphs, "graphs", opt.Graphs, graphsHelp)
	fs.DurationVar(&opt.MinTime, "min-time", opt.MinTime, "least duration of one timed batch of steps")
	fs.IntVar(&opt.Repeats, "repeats", opt.Repeats, "timed batches per row, whose median is reported (tts: runs, at most 3)")
	fs.IntVar(&opt.Probes, "probes", opt.Probes, "Hutchinson probes of the hutchinson row (PyTorch's figure is for 10)")
	fs.Int64Var(&opt.Fig1aSteps, "fig1a-steps", opt.Fig1aSteps, "steps of the fig1a run (PyTorch's figure is for 4800000)")
	fs.Int64Var(&opt.TTSMaxSteps, "tts-max-steps", opt.TTSMaxSteps, "the tts row fails if the theory gap is not below 1e-6 after this many steps")
	jsonOut := fs.Bool("json", false, "print one JSON object per row instead of the table")
	inProcess := fs.Bool("in-process", false, "measure every row in this process instead of one process each")
	child := fs.String("child", "", "measure one row given as JSON and print its result (how flatmin bench runs a row)")
	fs.Lookup("child").Hidden = true
	if err := parse(fs, args); err != nil {
		return err
	}
	if *child != "" {
		return bench.ChildMain(*child, stdout)
	}
	works, err := bench.ParseWorks(*only)
	if err != nil {
		return runner.Input(fmt.Errorf("--only: %w", err))
	}
	var ss []bench.Size
	if fs.Changed("sizes") {
		if ss, err = bench.ParseSizes(*sizes); err != nil {
			return runner.Input(fmt.Errorf("--sizes: %w", err))
		}
		if !slices.ContainsFunc(works, bench.Sized) {
			return runner.Input(errors.New("--sizes applies to labelnoise, riemannian, hutchinson and lanczos, and --only picks none of them"))
		}
	}
	if _, err := trainers.ChooseEngine(*engine, &model.Problem{N: 1, D: 1}); err != nil {
		return runner.Input(err)
	}
	opt.Engine = *engine
	if err := opt.Check(); err != nil {
		return runner.Input(err)
	}
	// Sizes the machine cannot hold are refused before any row runs.
	for _, row := range bench.Plan(works, ss) {
		cfg := runner.DefaultConfig()
		cfg.Engine = opt.Engine
		if row.Work == "riemannian" {
			cfg.Trainer = "riemannian"
		}
		if err := cfg.CheckMemory(row.Size.M, row.Size.N, row.Size.D); err != nil {
			return runner.Input(fmt.Errorf("--sizes %s: %w", row.Size, err))
		}
	}
	b, err := backend.Open(opt.Backend)
	if err != nil {
		return runner.Input(err)
	}
	opt.Backend = backend.Resolve(opt.Backend)

	// Each row in a child process, for its own peak RSS; not from a test
	// binary, which is not flatmin (the CLI tests run rows in-process).
	measure := func(row bench.Row) (bench.Result, error) { return bench.Measure(b, row, opt) }
	if exe, err := os.Executable(); err == nil && !*inProcess && !benchInProcess {
		c := bench.Child{Path: exe, Args: []string{"bench", "--child"}}
		measure = func(row bench.Row) (bench.Result, error) { return c.Measure(context.Background(), row, opt) }
	}
	var table *bench.Table
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	if !*jsonOut {
		table = bench.NewTable(stdout, opt)
	}
	failed := 0
	for _, row := range bench.Plan(works, ss) {
		res, err := measure(row)
		if err != nil {
			fmt.Fprintf(stderr, "flatmin bench: %s: %s\n", row.Label(), oneLine(err.Error()))
			failed++
			continue
		}
		if table != nil {
			table.Row(res)
		} else if err := enc.Encode(res); err != nil {
			return err
		}
	}
	if table != nil {
		table.Close()
	}
	if failed > 0 {
		return &exitStatus{code: exitFailure}
	}
	return nil
}
