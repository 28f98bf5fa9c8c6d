package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/trainers"
)

// JSONFloat writes NaN as null.
type JSONFloat = trainers.JSONFloat

// Run statuses in sweep.json.
const (
	StatusDone    = "done"    // stopped by its budget or converged
	StatusFailed  = "failed"  // diverged, or stopped by an error
	StatusRunning = "running" // a process holds its directory
	StatusPending = "pending" // not started, or interrupted: a rerun starts or resumes it
)

// ErrorFile records why a run failed before it had a summary.json (a
// trainer refusing the data, a worker that died): the run is failed, and
// a rerun does not start it again.
const ErrorFile = "sweep-error.json"

// RunState is what a run directory says about its run.
type RunState struct {
	Status     string
	StopReason string // summary.json's, "" without one
	Error      string
	Summary    *runner.Summary
}

// State reads the run directory dir.
func State(dir string) RunState { return readState(dir, true) }

// readState reads dir; probe says whether to look at its lock (not when
// this process holds it: flock would see itself).
func readState(dir string, probe bool) RunState {
	var st RunState
	if data, err := os.ReadFile(filepath.Join(dir, ErrorFile)); err == nil {
		var e struct{ Error string }
		_ = json.Unmarshal(data, &e)
		return RunState{Status: StatusFailed, StopReason: trainers.StopError, Error: e.Error}
	}
	if data, err := os.ReadFile(filepath.Join(dir, runner.SummaryFile)); err == nil {
		var sum runner.Summary
		if json.Unmarshal(data, &sum) == nil {
			st.Summary, st.StopReason, st.Error = &sum, sum.StopReason, sum.Error
		}
	}
	switch st.StopReason {
	case trainers.StopConverged, trainers.StopSteps:
		st.Status = StatusDone
	case trainers.StopDiverged, trainers.StopError:
		st.Status = StatusFailed
		if st.Error == "" {
			st.Error = st.StopReason
		}
	default: // none yet, running, interrupted, or killed
		st.Status = StatusPending
		if probe && locked(dir) {
			st.Status = StatusRunning
		}
	}
	return st
}

// Finished reports whether a run needs no more work.
func (s RunState) Finished() bool { return s.Status == StatusDone || s.Status == StatusFailed }

// Tolerances are the time-to-threshold levels.
type Tolerances struct {
	Rank  float64 `json:"rank_tol"`  // σ2/σ1 of Z < Rank
	Gap   float64 `json:"gap_tol"`   // theory gap < Gap
	Trace float64 `json:"trace_tol"` // |Tr D²L_M / F* − 1| < Trace
}

// Defaults of the time-to-threshold levels.
const (
	DefaultRankTol  = 1e-2
	DefaultGapTol   = 1e-6
	DefaultTraceTol = 1e-4
)

// Hit is the first logged step at which a threshold held, with the run's
// wall time there.
type Hit struct {
	Step        int64     `json:"step"`
	WallSeconds JSONFloat `json:"wall_seconds"`
}

// TimeTo holds a run's hits; nil where a threshold was never reached.
type TimeTo struct {
	Rank  *Hit `json:"rank"`
	Gap   *Hit `json:"gap"`
	Trace *Hit `json:"trace"`
}

// Thresholds scans metrics.csv's rows, in order, for the first row at which
// each threshold holds. A NaN value never passes.
func Thresholds(path string, tol Tolerances) (TimeTo, error) {
	var out TimeTo
	header, rows, err := runio.ReadCSVLog(path)
	if err != nil {
		return out, err
	}
	col := func(name string) int { return slices.Index(header, name) }
	iStep, iWall, iS1, iS2 := col("step"), col("wall_seconds"), col("sv_z_1"), col("sv_z_2")
	iGap, iTr, iMin := col("theory_gap"), col("trace_hessian_manifold"), col("trace_min")
	if iStep < 0 || iWall < 0 {
		return out, fmt.Errorf("%s lacks step or wall_seconds", path)
	}
	for _, r := range rows {
		step, err := strconv.ParseInt(r[iStep], 10, 64)
		if err != nil {
			continue
		}
		hit := func() *Hit { return &Hit{Step: step, WallSeconds: JSONFloat(runio.CellFloat(r, iWall))} }
		if s1 := runio.CellFloat(r, iS1); out.Rank == nil && s1 > 0 && runio.CellFloat(r, iS2)/s1 < tol.Rank {
			out.Rank = hit()
		}
		if out.Gap == nil && runio.CellFloat(r, iGap) < tol.Gap {
			out.Gap = hit()
		}
		if out.Trace == nil && math.Abs(runio.CellFloat(r, iTr)/runio.CellFloat(r, iMin)-1) < tol.Trace {
			out.Trace = hit()
		}
	}
	return out, nil
}

// Final is a run's final metrics in sweep.json.
type Final struct {
	Steps                int64     `json:"steps"`
	WallSeconds          JSONFloat `json:"wall_seconds"`
	Loss                 JSONFloat `json:"loss"`
	TraceHessian         JSONFloat `json:"trace_hessian"`
	TraceHessianManifold JSONFloat `json:"trace_hessian_manifold"`
	TraceMin             JSONFloat `json:"trace_min"`
	TraceRatio           JSONFloat `json:"trace_ratio"` // trace_hessian_manifold / trace_min
	TheoryGap            JSONFloat `json:"theory_gap"`
	Sigma21              JSONFloat `json:"sigma2_over_sigma1"` // σ2/σ1 of Z
	EffectiveRank        JSONFloat `json:"effective_rank"`
	GradNorm             JSONFloat `json:"grad_norm"`
	RiemannianGradNorm   JSONFloat `json:"riemannian_grad_norm"`
}

func finalOf(s *runner.Summary) *Final {
	f := s.Final
	sigma := math.NaN()
	if len(f.SingularValuesZ) > 1 && f.SingularValuesZ[0] > 0 {
		sigma = f.SingularValuesZ[1] / f.SingularValuesZ[0]
	}
	return &Final{
		Steps: s.Steps, WallSeconds: JSONFloat(s.WallSeconds), Loss: JSONFloat(f.Loss),
		TraceHessian: JSONFloat(f.TraceHessian), TraceHessianManifold: JSONFloat(f.TraceHessianManifold),
		TraceMin: JSONFloat(f.TraceMin), TraceRatio: JSONFloat(f.TraceHessianManifold / f.TraceMin),
		TheoryGap: JSONFloat(f.TheoryGap), Sigma21: JSONFloat(sigma), EffectiveRank: JSONFloat(f.EffectiveRank),
		GradNorm: JSONFloat(f.GradNorm), RiemannianGradNorm: JSONFloat(f.RiemannianGradNorm),
	}
}

// RunResult is one run's entry in sweep.json.
type RunResult struct {
	Index      int            `json:"index"`
	Trainer    string         `json:"trainer"`
	Seed       uint64         `json:"seed"`
	Params     map[string]any `json:"params"`
	Dir        string         `json:"dir"`
	Status     string         `json:"status"`
	StopReason string         `json:"stop_reason"`
	Error      string         `json:"error,omitempty"`
	Final      *Final         `json:"final"`
	TimeTo     *TimeTo        `json:"time_to"`
}

// SummaryRow aggregates one trainer × setting over its seeds: Runs counts
// the done runs the statistics are over.
type SummaryRow struct {
	Trainer string          `json:"trainer"`
	Params  map[string]any  `json:"params"`
	Runs    int             `json:"runs"`
	Failed  int             `json:"failed"`
	Total   int             `json:"total"`
	Metrics map[string]Stat `json:"metrics"`
}

// Result is sweep.json.
type Result struct {
	Tolerances Tolerances   `json:"thresholds"`
	Runs       []RunResult  `json:"runs"`
	Summary    []SummaryRow `json:"summary"`
}

// SummaryMetrics are the metrics of a summary row, in the printed order.
var SummaryMetrics = []string{"loss", "sigma2_over_sigma1", "theory_gap", "trace_ratio", "effective_rank", "steps", "wall_seconds",
	"steps_to_rank", "wall_seconds_to_rank", "steps_to_gap", "wall_seconds_to_gap", "steps_to_trace", "wall_seconds_to_trace"}

// value is a summary metric of one run (NaN: null or never reached).
func (r *RunResult) value(name string) float64 {
	f := r.Final
	hit := func(h *Hit, wall bool) float64 {
		switch {
		case h == nil:
			return math.NaN()
		case wall:
			return float64(h.WallSeconds)
		default:
			return float64(h.Step)
		}
	}
	var t TimeTo
	if r.TimeTo != nil {
		t = *r.TimeTo
	}
	switch name {
	case "loss":
		return float64(f.Loss)
	case "sigma2_over_sigma1":
		return float64(f.Sigma21)
	case "theory_gap":
		return float64(f.TheoryGap)
	case "trace_ratio":
		return float64(f.TraceRatio)
	case "effective_rank":
		return float64(f.EffectiveRank)
	case "steps":
		return float64(f.Steps)
	case "wall_seconds":
		return float64(f.WallSeconds)
	case "steps_to_rank":
		return hit(t.Rank, false)
	case "wall_seconds_to_rank":
		return hit(t.Rank, true)
	case "steps_to_gap":
		return hit(t.Gap, false)
	case "wall_seconds_to_gap":
		return hit(t.Gap, true)
	case "steps_to_trace":
		return hit(t.Trace, false)
	case "wall_seconds_to_trace":
		return hit(t.Trace, true)
	}
	return math.NaN()
}

// Collect reads every run directory of the sweep in dir and aggregates it.
func Collect(dir string, s *Spec, tol Tolerances) (*Result, error) {
	res := &Result{Tolerances: tol, Runs: []RunResult{}, Summary: []SummaryRow{}}
	runs := s.Runs()
	for _, r := range runs {
		rd := filepath.Join(dir, r.Dir)
		st := State(rd)
		rr := RunResult{Index: r.Index, Trainer: r.Trainer, Seed: r.Seed, Params: ParamsJSON(r.Params), Dir: r.Dir,
			Status: st.Status, StopReason: st.StopReason, Error: st.Error}
		if st.Summary != nil && st.Summary.StopReason != runner.StopRunning {
			rr.Final = finalOf(st.Summary)
		}
		if st.Summary != nil {
			t, err := Thresholds(filepath.Join(rd, runner.MetricsFile), tol)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			if err == nil {
				rr.TimeTo = &t
			}
		}
		res.Runs = append(res.Runs, rr)
	}
	// Runs of one setting are adjacent: seeds vary fastest.
	for k := 0; k < len(runs); k += len(s.Seeds) {
		group := res.Runs[k : k+len(s.Seeds)]
		row := SummaryRow{Trainer: group[0].Trainer, Params: group[0].Params, Total: len(group), Metrics: map[string]Stat{}}
		var done []RunResult
		for _, r := range group {
			switch r.Status {
			case StatusDone:
				done = append(done, r)
			case StatusFailed:
				row.Failed++
			}
		}
		row.Runs = len(done)
		for _, m := range SummaryMetrics {
			values := make([]float64, len(done))
			for i := range done {
				values[i] = done[i].value(m)
			}
			row.Metrics[m] = Describe(values)
		}
		res.Summary = append(res.Summary, row)
	}
	return res, nil
}

// Write collects the sweep in dir and writes sweep.json under the sweep's
// lock, through a temporary file and a rename.
func Write(dir string, s *Spec, tol Tolerances) (*Result, error) {
	var res *Result
	err := WithLock(dir, func() error {
		var err error
		if res, err = Collect(dir, s, tol); err != nil {
			return err
		}
		return runio.WriteJSON(filepath.Join(dir, ResultFile), res)
	})
	return res, err
}

// Counts tallies runs by status.
func (r *Result) Counts() map[string]int {
	c := map[string]int{}
	for _, run := range r.Runs {
		c[run.Status]++
	}
	return c
}
