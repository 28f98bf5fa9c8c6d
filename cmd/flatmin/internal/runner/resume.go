package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/checkpoint"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
)

// resumeMayChange are the settings a resume may change: none alters the
// trajectory (a change of engine or of graphs, only at rounding level).
var resumeMayChange = []string{"steps", "backend", "checkpoint_every", "engine", "fuse", "graphs"}

// LoadConfig reads a run directory's configuration (config.json).
func LoadConfig(dir string) (Config, error) {
	var cfg Config
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		if os.IsNotExist(err) {
			return cfg, fmt.Errorf("%s is not a flatmin run directory (no %s)", dir, ConfigFile)
		}
		return cfg, err
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", filepath.Join(dir, ConfigFile), err)
	}
	return cfg, nil
}

// loadProblem rebuilds a run's problem from the data files it saved.
func loadProblem(dir string, cfg Config) (*model.Problem, error) {
	act, err := model.NewActivation(cfg.Activation, cfg.Nu, cfg.K)
	if err != nil {
		return nil, err
	}
	x, n, d, err := model.ReadMatrix(filepath.Join(dir, XFile), "x")
	if err != nil {
		return nil, err
	}
	y, err := model.ReadVector(filepath.Join(dir, YFile), "y")
	if err != nil {
		return nil, err
	}
	w, err := model.ReadVector(filepath.Join(dir, WFile), "w")
	if err != nil {
		return nil, err
	}
	p, err := model.NewProblem(x, n, d, y, w, len(w), act)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return p, nil
}

// CheckResumeConflicts compares the settings the user gave again (flag names
// in changed, values in given) with the run's saved configuration.
func CheckResumeConflicts(saved, given Config, changed []string) error {
	if slices.Contains(changed, "track-sharpness") && given.TrackSharpness != saved.TrackSharpness {
		// Not in a saved config.json when off (omitempty), so checked here.
		return fmt.Errorf("--resume: --track-sharpness=%v conflicts with the run's track_sharpness = %v (metrics.csv's columns are fixed at the start)", given.TrackSharpness, saved.TrackSharpness)
	}
	a, b := configMap(saved), configMap(given)
	for _, flag := range changed {
		key := KeyOfFlag(flag)
		want, known := a[key]
		if !known || slices.Contains(resumeMayChange, key) || slices.Contains(dataPathKeys, key) {
			continue // data files are compared by content (checkResumeData)
		}
		if got := b[key]; string(got) != string(want) {
			return fmt.Errorf("--resume: --%s %s conflicts with the run's %s = %s (a resume may change only --steps, --backend, --engine, --fuse, --graphs and --checkpoint-every)",
				flag, unquote(got), key, unquote(want))
		}
	}
	return nil
}

func configMap(c Config) map[string]json.RawMessage {
	data, _ := json.Marshal(c)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(data, &m)
	return m
}

func unquote(raw json.RawMessage) string {
	if s, err := strconv.Unquote(string(raw)); err == nil {
		return s
	}
	return string(raw)
}

// Resume continues the run in dir from its newest valid checkpoint, appending
// to metrics.csv after dropping rows logged past that checkpoint. given and
// changed are the settings the user passed with --resume (see
// CheckResumeConflicts; data flags are compared by content with the run's
// files). The run directory is locked while it runs. A checkpoint that is
// damaged or not the run's (VerifyCheckpoint) is skipped with a warning.
func Resume(ctx context.Context, dir string, given Config, changed []string, b backends.Backend, opt Options) (*Summary, []string, error) {
	if _, err := LoadConfig(dir); err != nil {
		return nil, nil, Input(fmt.Errorf("--resume: %w", err))
	}
	lock, err := runio.TryLock(dir)
	if err != nil {
		return nil, nil, Input(lockError("--resume", dir, err))
	}
	defer lock.Unlock()
	saved, err := LoadConfig(dir)
	if err != nil {
		return nil, nil, Input(fmt.Errorf("--resume: %w", err))
	}
	if err := CheckResumeConflicts(saved, given, changed); err != nil {
		return nil, nil, Input(err)
	}
	cfg := saved
	for _, flag := range changed {
		switch flag {
		case "steps":
			cfg.Steps = given.Steps
		case "checkpoint-every":
			cfg.CheckpointEvery = given.CheckpointEvery
		case "backend":
			cfg.Backend = given.Backend
		case "engine":
			cfg.Engine = given.Engine
		case "fuse":
			cfg.Fuse = given.Fuse
		case "graphs":
			cfg.Graphs = given.Graphs
		}
	}
	p, err := loadProblem(dir, cfg)
	if err != nil {
		return nil, nil, Input(fmt.Errorf("--resume: %w", err))
	}
	if err := checkResumeData(dir, saved, given, changed, p); err != nil {
		return nil, nil, Input(err)
	}
	id, err := RunIdentity(dir, saved)
	if err != nil {
		return nil, nil, Input(fmt.Errorf("--resume: %w", err))
	}
	ckpt, warnings, err := checkpoint.LatestValid(dir, func(c *checkpoint.Checkpoint) error {
		return VerifyCheckpoint(c, saved, id, p.M, p.D, p.N)
	})
	if err != nil {
		return nil, warnings, Input(fmt.Errorf("--resume: %w", err))
	}
	if ckpt.Step >= cfg.Steps {
		return nil, warnings, Input(fmt.Errorf("--resume: the run is complete at step %d; give --steps above %d to continue it", ckpt.Step, ckpt.Step))
	}
	setup, err := Prepare(cfg, b, Options{Problem: p, resumed: true})
	if err != nil {
		return nil, warnings, err
	}
	setup.identity = id
	state, err := trainers.RestoreState(p, ckpt.Step, ckpt.Theta, ckpt.Base, ckpt.Features, ckpt.RNG, ckpt.Extra)
	if err != nil {
		return nil, warnings, Input(fmt.Errorf("--resume: checkpoint at step %d: %w", ckpt.Step, err))
	}
	extras := setup.extras()
	log, initial, err := truncateMetrics(dir, trainers.CSVHeader(p, extras), extras, ckpt.Step, cfg.LogEvery)
	if err != nil {
		return nil, warnings, err
	}
	if err := runio.WriteJSON(filepath.Join(dir, ConfigFile), setup.Config); err != nil {
		log.Close()
		return nil, warnings, err
	}
	opt.initial = initial
	sum, err := setup.run(ctx, b, dir, state, log, false, time.Duration(ckpt.WallSeconds*float64(time.Second)), opt)
	return sum, warnings, err
}

// truncateMetrics keeps metrics.csv's header and the rows an uninterrupted
// run has up to step: rows logged after the checkpoint will be logged again,
// and a row off the log cadence (where an interrupted run or an earlier
// budget stopped) is not one of them. It returns the log opened for
// appending and the metrics at Θ₀ (step 0's row, nil if absent).
func truncateMetrics(dir string, header, extras []string, step, logEvery int64) (*runio.CSVLog, *trainers.Metrics, error) {
	path := filepath.Join(dir, MetricsFile)
	got, rows, err := runio.ReadCSVLog(path)
	if err != nil {
		return nil, nil, Input(fmt.Errorf("--resume: %w", err))
	}
	if !slices.Equal(got, header) {
		return nil, nil, Input(errors.New("--resume: metrics.csv's columns do not match the run's configuration"))
	}
	var kept [][]string
	var initial *trainers.Metrics
	for _, r := range rows {
		s, err := strconv.ParseInt(r[0], 10, 64)
		if err != nil {
			return nil, nil, Input(fmt.Errorf("--resume: metrics.csv has a bad step %q", r[0]))
		}
		if s <= step && s%logEvery == 0 {
			kept = append(kept, r)
		}
		if s == 0 && initial == nil {
			if initial, err = metricsFromRow(header, r, extras); err != nil {
				return nil, nil, Input(fmt.Errorf("--resume: %w", err))
			}
		}
	}
	if err := runio.RewriteCSVLog(path, header, kept); err != nil {
		return nil, nil, err
	}
	log, err := runio.AppendCSVLog(path)
	return log, initial, err
}
