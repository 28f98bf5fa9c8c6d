package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/trainers"
	"github.com/spf13/pflag"
)

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	cfg := runner.DefaultConfig()
	fs := newFlagSet("inspect", "inspect --theta T.npy [data/model flags] | --run DIR", stdout)
	thetaPath := fs.String("theta", "", "Θ to inspect, .npy m×d")
	runDir := fs.String("run", "", "a run directory: its data, model and final Θ (theta.npy)")
	probes := fs.Int("probes", 0, "also estimate Tr D²L stochastically with this many probes (Hessian-vector products)")
	estimator := fs.String("trace-estimator", trainers.EstimatorHutchinson, "with --probes: hutchinson (error ∝ 1/√K) or hutchpp (Hutch++, K ≥ 3; error ∝ 1/K on a decaying spectrum)")
	topK := fs.Int("top-k", 0, "also the K largest eigenvalues of D²L and the smallest, by Lanczos (1 ≤ K ≤ m·d)")
	density := fs.Bool("density", false, "also the spectral density of D²L by stochastic Lanczos quadrature")
	densityProbes := fs.Int("density-probes", 10, "--density: random probes V")
	lanczosSteps := fs.Int("lanczos-steps", 80, "--density: Lanczos steps S per probe (at most m·d are taken; S vectors of m·d values are kept)")
	densitySigma := fs.String("density-sigma", "auto", "--density: width of the Gaussian each Ritz value is smoothed by (> 0), or auto: 1% of the Ritz values' range")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the stochastic estimates' probes")
	graphs := fs.Bool("graphs", false, "with --probes (Hutchinson): estimate in compiled GoMLX graphs also where SimpleGo would on the host (the reference: slower, equal to rounding)")
	problemFlags(fs, &cfg)
	fs.Lookup("m").Usage = "neurons (default: --theta's rows; --w's length must agree)"
	fs.Lookup("d").Usage = "input dimension of synthetic data (default: --theta's columns; must match files if given)"
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkSizes(fs, &cfg); err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return runner.Input(err)
	}
	if *probes < 0 {
		return runner.Input(fmt.Errorf("--probes must be ≥ 0, got %d", *probes))
	}
	if *estimator != trainers.EstimatorHutchinson && *estimator != trainers.EstimatorHutchPP {
		return runner.Input(fmt.Errorf("--trace-estimator must be hutchinson or hutchpp, got %q", *estimator))
	}
	if *estimator == trainers.EstimatorHutchPP && *probes > 0 && *probes < 3 {
		return runner.Input(fmt.Errorf("--probes must be ≥ 3 for --trace-estimator hutchpp, got %d", *probes))
	}
	if fs.Changed("trace-estimator") && *probes == 0 {
		return runner.Input(fmt.Errorf("--trace-estimator needs --probes K"))
	}
	if fs.Changed("top-k") && *topK <= 0 {
		return runner.Input(fmt.Errorf("--top-k must be ≥ 1, got %d", *topK))
	}
	if *densityProbes <= 0 {
		return runner.Input(fmt.Errorf("--density-probes must be ≥ 1, got %d", *densityProbes))
	}
	if *lanczosSteps <= 0 {
		return runner.Input(fmt.Errorf("--lanczos-steps must be ≥ 1, got %d", *lanczosSteps))
	}
	sigma := 0.0
	if *densitySigma != "auto" {
		v, err := strconv.ParseFloat(*densitySigma, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return runner.Input(fmt.Errorf("--density-sigma must be a number > 0 or auto, got %q", *densitySigma))
		}
		sigma = v
	}
	req := runner.InspectRequest{ThetaPath: *thetaPath, Estimator: *estimator, TopK: *topK, Density: *density,
		DensityProbes: *densityProbes, LanczosSteps: *lanczosSteps, DensitySigma: sigma}
	switch {
	case *runDir != "":
		r, err := runner.LoadRun(*runDir)
		if err != nil {
			return runner.Input(err)
		}
		req.Problem = r.Problem
		if req.ThetaPath == "" {
			req.ThetaPath = filepath.Join(*runDir, runner.ThetaFile)
		}
	case *thetaPath == "":
		return runner.Input(fmt.Errorf("give --theta T.npy (with the run's data/model flags) or --run DIR"))
	default:
		if err := shapeFromTheta(fs, &cfg, *thetaPath); err != nil {
			return runner.Input(err)
		}
		p, err := cfg.Problem()
		if err != nil {
			return runner.Input(err)
		}
		req.Problem = p
	}
	req.Probes, req.Seed, req.Notes, req.Graphs = *probes, cfg.Seed, stderr, *graphs
	b, err := backend.Open(cfg.Backend)
	if err != nil {
		return runner.Input(err)
	}
	report, err := runner.Inspect(b, req)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(report)
}

// shapeFromTheta takes m and d from Θ's shape where no flag or file gives
// them, and checks --m and --d against it.
func shapeFromTheta(fs *pflag.FlagSet, cfg *runner.Config, path string) error {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil // a pipe can be read once: Inspect checks Θ against the flags
	}
	dims, err := npy.Shape(path)
	if err != nil {
		return fmt.Errorf("--theta: %w", err)
	}
	if len(dims) != 2 {
		return nil // ReadMatrix says what is wrong
	}
	rows, cols := dims[0], dims[1]
	if fs.Changed("m") && cfg.M != rows {
		return fmt.Errorf("--m %d does not match --theta's %d rows", cfg.M, rows)
	}
	if fs.Changed("d") && cfg.D != cols {
		return fmt.Errorf("--d %d does not match --theta's %d columns", cfg.D, cols)
	}
	if cfg.WPath == "" {
		cfg.M = rows
	}
	if cfg.XPath == "" && cfg.YPath == "" && cfg.DataPath == "" {
		cfg.D = cols
	}
	return nil
}
