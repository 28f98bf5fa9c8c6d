package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/flatmin/flatmin/internal/runio"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Run is a run directory read back: its configuration, summary and problem.
type Run struct {
	Dir     string
	Config  Config
	Summary Summary // zero until the run has finished
	Problem *model.Problem
}

// LoadRun reads dir's configuration, the data files the run saved and, when
// the run has finished, its summary.
func LoadRun(dir string) (*Run, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	r := &Run{Dir: dir, Config: cfg}
	if data, err := runio.ReadFile(filepath.Join(dir, SummaryFile)); err == nil {
		if err := json.Unmarshal(data, &r.Summary); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, SummaryFile), err)
		}
	}
	if r.Problem, err = loadProblem(dir, cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// InspectRequest says what to inspect.
type InspectRequest struct {
	Problem   *model.Problem
	ThetaPath string
	Probes    int       // Hutchinson probes, 0 for none
	Seed      uint64    // Hutchinson's RNG seed
	Notes     io.Writer // where notes on metrics left NaN for the problem's size go, nil for none
}

// Inspect measures Θ from a file: the same metrics a run logs (without step
// and wall time), and Hutchinson's estimate of Tr D²L when asked.
func Inspect(b backends.Backend, req InspectRequest) (*InspectReport, error) {
	p := req.Problem
	theta, rows, cols, err := model.ReadMatrix(req.ThetaPath, "--theta")
	if err != nil {
		return nil, Input(err)
	}
	if rows != p.M || cols != p.D {
		return nil, Input(fmt.Errorf("--theta has shape [%d %d], but the problem has m=%d, d=%d", rows, cols, p.M, p.D))
	}
	ev, err := trainers.NewEvaluator(b, p)
	if err != nil {
		return nil, err
	}
	if req.Notes != nil {
		for _, n := range ev.Notes() {
			fmt.Fprintf(req.Notes, "flatmin: note: %s\n", n)
		}
	}
	t := tensors.FromFlatDataAndDimensions(theta, p.M, p.D)
	m, err := ev.Measure(t)
	if err != nil {
		return nil, err
	}
	report := &trainers.Report{Metrics: m}
	if report.TopEigenvalue, err = trainers.TopEigenvalue(b, p, t); err != nil {
		report.TopEigenvalue = math.NaN()
	}
	if req.Probes > 0 {
		if report.Hutchinson, err = trainers.Hutchinson(b, p, t, req.Probes, req.Seed); err != nil {
			return nil, err
		}
	}
	return &InspectReport{Report: report, Note: inspectNote(p, m)}, nil
}
