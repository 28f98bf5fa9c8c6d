package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/internal/runner"
	"github.com/flatmin/flatmin/model"
	"github.com/spf13/pflag"
)

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	cfg := runner.DefaultConfig()
	fs := newFlagSet("inspect", "inspect --theta T.npy [data/model flags] | --run DIR", stdout)
	thetaPath := fs.String("theta", "", "Θ to inspect, .npy m×d")
	runDir := fs.String("run", "", "a run directory: its data, model and final Θ (theta.npy)")
	probes := fs.Int("probes", 0, "also estimate Tr D²L by Hutchinson with this many probes")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of Hutchinson's probes")
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
	req := runner.InspectRequest{ThetaPath: *thetaPath}
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
	req.Probes, req.Seed, req.Notes = *probes, cfg.Seed, stderr
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
	dims, err := model.NpyShape(path)
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
