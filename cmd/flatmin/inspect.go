package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/internal/runner"
)

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	cfg := runner.DefaultConfig()
	fs := newFlagSet("inspect", "inspect --theta T.npy [data/model flags] | --run DIR", stdout)
	thetaPath := fs.String("theta", "", "Θ to inspect, .npy m×d")
	runDir := fs.String("run", "", "a run directory: its data, model and final Θ (theta.npy)")
	probes := fs.Int("probes", 0, "also estimate Tr D²L by Hutchinson with this many probes")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of Hutchinson's probes")
	problemFlags(fs, &cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkSizes(fs, &cfg); err != nil {
		return err
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
