package runner

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
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
	Seed      uint64    // Hutchinson's RNG seed (and SLQ's and Lanczos')
	Notes     io.Writer // where notes on metrics left NaN for the problem's size go, nil for none
	Estimator string    // trainers.EstimatorHutchinson (default) or EstimatorHutchPP
	Graphs    bool      // Hutchinson in compiled graphs also on SimpleGo (trainers.Config.Graphs)
	TopK      int       // Lanczos' top-k eigenvalues (and the smallest), 0 for none
	// Density asks for the SLQ spectral density with DensityProbes probes of
	// LanczosSteps steps and Gaussian width DensitySigma (0: automatic).
	Density       bool
	DensityProbes int
	LanczosSteps  int
	DensitySigma  float64
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
	if dim := p.M * p.D; req.TopK > dim {
		return nil, Input(fmt.Errorf("--top-k %d is more than the Hessian's m·d = %d eigenvalues", req.TopK, dim))
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
	report := &Report{Metrics: m}
	if report.TopEigenvalue, err = trainers.TopEigenvalue(b, p, t); err != nil {
		report.TopEigenvalue = math.NaN()
	}
	if req.Probes > 0 {
		if req.Estimator == trainers.EstimatorHutchPP {
			report.Hutchinson, err = trainers.HutchPlusPlus(b, p, t, req.Probes, req.Seed)
		} else {
			report.Hutchinson, err = trainers.Hutchinson(b, p, t, req.Probes, req.Seed, req.Graphs)
		}
		if err != nil {
			return nil, err
		}
	}
	if req.TopK > 0 {
		if report.Eigen, err = trainers.TopEigenvalues(b, p, t, req.TopK); err != nil {
			// Like top_eigenvalue: null values (a Θ whose products overflow).
			nan := make([]float64, req.TopK)
			for i := range nan {
				nan[i] = math.NaN()
			}
			report.Eigen = &trainers.EigenReport{Top: nan, Min: math.NaN()}
		}
	}
	if req.Density {
		if report.Density, err = trainers.SpectralDensity(b, p, t, req.DensityProbes, req.LanczosSteps, req.DensitySigma, req.Seed); err != nil {
			return nil, err
		}
	}
	return &InspectReport{Report: report, Note: inspectNote(p, m)}, nil
}

// Report is what `flatmin inspect` prints: the metrics of one Θ (without the
// step and wall time of a run) and optional estimates.
type Report struct {
	Metrics       trainers.Metrics
	TopEigenvalue float64 // λ_max of the loss Hessian, NaN if power iteration failed
	Hutchinson    *trainers.HutchinsonReport
	Eigen         *trainers.EigenReport   // Lanczos' top-k and smallest, when asked
	Density       *trainers.DensityReport // SLQ, when asked
}

// MarshalJSON writes the metrics' fields, "top_eigenvalue" and "hutchinson"
// (null when not asked), then, when asked, "top_eigenvalues",
// "min_eigenvalue", "lanczos_steps", "lanczos_converged" and "spectral_density".
func (r Report) MarshalJSON() ([]byte, error) {
	var fields []trainers.Field
	for _, f := range r.Metrics.Fields() {
		if f.Name != "step" && f.Name != "wall_seconds" {
			fields = append(fields, f)
		}
	}
	fields = append(fields, trainers.Field{Name: "top_eigenvalue", Value: trainers.JSONFloat(r.TopEigenvalue)}, trainers.Field{Name: "hutchinson", Value: r.Hutchinson})
	if r.Eigen != nil {
		fields = append(fields, trainers.Field{Name: "top_eigenvalues", Value: trainers.JSONFloats(r.Eigen.Top)}, trainers.Field{Name: "min_eigenvalue", Value: trainers.JSONFloat(r.Eigen.Min)},
			trainers.Field{Name: "lanczos_steps", Value: r.Eigen.Steps}, trainers.Field{Name: "lanczos_converged", Value: r.Eigen.Converged})
	}
	if r.Density != nil {
		fields = append(fields, trainers.Field{Name: "spectral_density", Value: r.Density})
	}
	return trainers.MarshalFields(fields)
}
