// Package runner turns a run's configuration into a problem, an initial Θ and
// a trained run directory. cmd/flatmin parses flags into a Config and calls
// it, so that train, compare and repro share one path from flags to files.
package runner

import (
	"errors"
	"fmt"
	"math"

	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
)

// Config is a run's full configuration; its JSON is summary.json's "config".
// Zero sizes mean "take it from the files, else the default".
type Config struct {
	// The problem.
	M          int     `json:"m"`
	N          int     `json:"n"`
	D          int     `json:"d"`
	Activation string  `json:"activation"`
	Nu         float64 `json:"nu"`
	K          int     `json:"k"`
	Labels     string  `json:"labels"`
	DataSeed   uint64  `json:"data_seed"`
	Normalize  bool    `json:"normalize"`
	XPath      string  `json:"x,omitempty"`
	YPath      string  `json:"y,omitempty"`
	DataPath   string  `json:"data,omitempty"`
	WPath      string  `json:"w,omitempty"`

	// The run.
	Trainer string  `json:"trainer"`
	Eta     float64 `json:"eta"`
	// EtaRule names the rule that chose Eta: Auto before it is chosen, a
	// Rule* constant after, "" when the user gave η.
	EtaRule string  `json:"eta_rule,omitempty"`
	Sigma   float64 `json:"sigma"`
	Rho     float64 `json:"rho"`
	// RhoRule names the rule that chose Rho, as EtaRule does for Eta.
	RhoRule    string  `json:"rho_rule,omitempty"`
	SAMBatch   int     `json:"sam_batch"`
	Lambda     float64 `json:"lambda"`
	RetractTol float64 `json:"retract_tol"`
	// Gtol ends a riemannian run once ‖grad_M F‖ ≤ Gtol (0: at its rounding floor).
	Gtol      float64 `json:"gtol"`
	Steps     int64   `json:"steps"`
	LogEvery  int64   `json:"log_every"`
	Seed      uint64  `json:"seed"`
	InitScale float64 `json:"init_scale"`
	// InitScaleRule names the rule that chose InitScale, as EtaRule does for Eta.
	InitScaleRule string  `json:"init_scale_rule,omitempty"`
	Theta0Path    string  `json:"theta0,omitempty"`
	MaxLoss       float64 `json:"max_loss"`
	Backend       string  `json:"backend"`
	// Engine, Fuse and Graphs change speed only, not results (beyond
	// rounding for Engine and Graphs).
	Engine string `json:"engine,omitempty"`
	Fuse   int    `json:"fuse,omitempty"`
	Graphs bool   `json:"graphs,omitempty"`
	// CheckpointEvery and Snapshots do not change the trajectory.
	CheckpointEvery int64 `json:"checkpoint_every"`
	Snapshots       int   `json:"snapshots"` // neuron snapshots spread over the run, 0 for none
	// TrackSharpness logs λ_max and λ_min of D²L at each log step.
	TrackSharpness bool `json:"track_sharpness,omitempty"`
}

// Defaults for sizes no flag or file gives: the paper's Figure 1a.
const (
	DefaultM = 10
	DefaultN = 3
	DefaultD = 3
)

// DefaultConfig is `flatmin train` with no flags: Figure 1a's data (m=10,
// d=3, n=3) and σ=0.03 with label-noise SGD, η and the initial scale chosen
// automatically (AutoEta, model.AutoInitScale).
func DefaultConfig() Config {
	tc := trainers.DefaultConfig()
	return Config{
		Activation: "cubic", Nu: DefaultNu, K: 1, Labels: DefaultLabels, DataSeed: 1,
		Trainer: "labelnoise", EtaRule: Auto, Sigma: tc.Sigma, RhoRule: Auto, SAMBatch: tc.SAMBatch,
		Lambda: tc.Lambda, RetractTol: tc.RetractTol,
		Steps: DefaultSteps, LogEvery: 2000, Seed: 1, InitScaleRule: Auto, MaxLoss: trainers.DefaultMaxLoss,
		CheckpointEvery: DefaultCheckpointEvery,
	}
}

// Defaults the paper leaves open. ν = 0.1 rather than the cube (ν = 0): with
// φ'(0) = 0 the cube's manifold has stationary points with some z_ij = 0 that
// the flow can stall at, and Assumptions 1 and 3 fail. Labels in [0.5, 1] keep
// η = 0.05 stable at the optimum (λ_max(D²L)·η ≈ 1 there; labels in [1, 2]
// put it near 2, the edge of stability for the cube).
const (
	DefaultNu     = 0.1
	DefaultLabels = "uniform:0.5,1"
	// DefaultSteps is Figure 1a's run in about half a second on 2 cores.
	DefaultSteps = 1_000_000
)

// DefaultCheckpointEvery is the default checkpoint cadence in steps.
const DefaultCheckpointEvery = 100_000

// TrainerConfig extracts the trainers' hyperparameters and execution.
func (c *Config) TrainerConfig() trainers.Config {
	return trainers.Config{Eta: c.Eta, Sigma: c.Sigma, Rho: c.Rho, SAMBatch: c.SAMBatch, Lambda: c.Lambda, RetractTol: c.RetractTol,
		Gtol: c.Gtol, Execution: trainers.Execution{Engine: c.Engine, Fuse: c.Fuse, Graphs: c.Graphs}}
}

// Check validates the run settings that do not depend on the data.
func (c *Config) Check() error {
	switch {
	case c.Steps <= 0:
		return fmt.Errorf("--steps must be positive, got %d", c.Steps)
	case c.LogEvery <= 0:
		return fmt.Errorf("--log-every must be positive, got %d", c.LogEvery)
	case c.EtaRule == "" && (!(c.Eta > 0) || math.IsInf(c.Eta, 0)):
		return fmt.Errorf("--eta must be positive and finite (or auto), got %v", c.Eta)
	case !(c.InitScale >= 0) || math.IsInf(c.InitScale, 0):
		return fmt.Errorf("--init-scale must be ≥ 0 and finite, got %v", c.InitScale)
	case !(c.MaxLoss > 0) || math.IsInf(c.MaxLoss, 0):
		return fmt.Errorf("--max-loss must be positive and finite, got %v", c.MaxLoss)
	case c.CheckpointEvery < 0:
		return fmt.Errorf("--checkpoint-every must be ≥ 0, got %d", c.CheckpointEvery)
	case c.Snapshots < 0 || c.Snapshots > 10000:
		return fmt.Errorf("--snapshots must be between 0 and 10000, got %d", c.Snapshots)
	case c.M < 0 || c.N < 0 || c.D < 0:
		return fmt.Errorf("sizes must be positive: m=%d n=%d d=%d", c.M, c.N, c.D)
	}
	return c.checkTrainerSettings()
}

// checkTrainerSettings checks every trainer's settings (trainers'
// Config.ValidateAll), also those the chosen trainer ignores: a NaN there is
// a mistake all the same (and would reach config.json). η is checked in Check
// (it may be auto), and so is ρ when auto.
func (c *Config) checkTrainerSettings() error {
	tc := c.TrainerConfig()
	if c.RhoRule != "" {
		tc.Rho = 1
	}
	if err := tc.ValidateAll(); err != nil {
		return FlagError(err)
	}
	switch {
	case !(math.Abs(c.Nu) <= math.MaxFloat64):
		return fmt.Errorf("--nu must be finite, got %v", c.Nu)
	case c.K < 1 || c.K > 10:
		return fmt.Errorf("--k must be between 1 and 10, got %d", c.K)
	}
	return nil
}

// Problem builds the problem: data from --data (CSV) or --x/--y (.npy), else
// the paper's synthetic data; w from --w, else ones. Sizes given both by a
// flag and by a file must agree. It fills in c's sizes.
func (c *Config) Problem() (*model.Problem, error) {
	act, err := model.NewActivation(c.Activation, c.Nu, c.K)
	if err != nil {
		return nil, fmt.Errorf("--activation %s: %w", c.Activation, err)
	}
	var x, y []float64
	var n, d int
	switch {
	case c.DataPath != "" && (c.XPath != "" || c.YPath != ""):
		return nil, errors.New("give either --data or --x/--y, not both")
	case c.DataPath != "":
		if x, y, n, d, err = model.ReadCSV(c.DataPath); err != nil {
			return nil, fmt.Errorf("--data: %w", err)
		}
	case c.XPath != "" || c.YPath != "":
		if c.XPath == "" || c.YPath == "" {
			return nil, errors.New("--x and --y go together")
		}
		if x, n, d, err = model.ReadMatrix(c.XPath, "--x"); err != nil {
			return nil, err
		}
		if y, err = model.ReadVector(c.YPath, "--y"); err != nil {
			return nil, err
		}
		if len(y) != n {
			return nil, fmt.Errorf("--y has %d labels but --x has %d rows", len(y), n)
		}
	default:
		n, d = orDefault(c.N, DefaultN), orDefault(c.D, DefaultD)
		spec, err := model.ParseLabels(c.Labels)
		if err != nil {
			return nil, fmt.Errorf("--labels: %w", err)
		}
		// Before the n×d data exist: they can be too large themselves.
		if err := c.CheckMemory(orDefault(c.M, DefaultM), n, d); err != nil {
			return nil, err
		}
		if x, y, err = model.Synthetic(n, d, spec, act, c.DataSeed); err != nil {
			return nil, err
		}
	}
	if c.N != 0 && c.N != n {
		return nil, fmt.Errorf("--n %d does not match the data's %d rows", c.N, n)
	}
	if c.D != 0 && c.D != d {
		return nil, fmt.Errorf("--d %d does not match the data's %d columns", c.D, d)
	}
	if c.Normalize {
		model.NormalizeRows(x, n, d)
	}
	var w []float64
	if c.WPath != "" {
		if w, err = model.ReadVector(c.WPath, "--w"); err != nil {
			return nil, err
		}
		if c.M != 0 && c.M != len(w) {
			return nil, fmt.Errorf("--m %d does not match --w's %d entries", c.M, len(w))
		}
		c.M = len(w)
	}
	if c.M == 0 && c.Theta0Path != "" {
		if _, rows, _, err := model.ReadMatrix(c.Theta0Path, "--theta0"); err == nil {
			c.M = rows
		}
	}
	c.M = orDefault(c.M, DefaultM)
	c.N, c.D = n, d
	// Before Θ₀, the n×n Gram matrices and the graphs are allocated.
	if err := c.CheckMemory(c.M, n, d); err != nil {
		return nil, err
	}
	p, err := model.NewProblem(x, n, d, y, w, c.M, act)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Theta0 is --theta0 if given (checked against m×d), else N(0, init_scale²)
// entries from --seed, the scale chosen first if it is automatic.
func (c *Config) Theta0(p *model.Problem) ([]float64, error) {
	if c.Theta0Path == "" {
		c.resolveInitScale(p)
		return model.InitTheta(p.M, p.D, c.InitScale, c.Seed), nil
	}
	if c.InitScaleRule == Auto {
		c.InitScale, c.InitScaleRule = 0, "" // Θ₀ is the user's
	}
	theta, rows, cols, err := model.ReadMatrix(c.Theta0Path, "--theta0")
	if err != nil {
		return nil, err
	}
	if rows != p.M || cols != p.D {
		return nil, fmt.Errorf("--theta0 has shape [%d %d], want [m d] = [%d %d]", rows, cols, p.M, p.D)
	}
	return theta, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
