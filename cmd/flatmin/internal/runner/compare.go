package runner

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
)

// CompareFile is the comparison's table, in the comparison's directory.
const CompareFile = "compare.json"

// Param is one per-trainer override "trainer.key=value".
type Param struct {
	Trainer, Key, Value string
}

// ParseParam reads "trainer.key=value".
func ParseParam(s string) (Param, error) {
	lhs, value, ok := strings.Cut(s, "=")
	trainer, key, ok2 := strings.Cut(lhs, ".")
	if !ok || !ok2 || trainer == "" || key == "" {
		return Param{}, fmt.Errorf("--param %q: want trainer.key=value, e.g. riemannian.eta=0.5", s)
	}
	return Param{Trainer: trainer, Key: key, Value: value}, nil
}

// Apply sets one of the run settings a trainer may override.
func (p Param) Apply(c *Config) error {
	keys, err := TrainerKeys(p.Trainer)
	if err != nil {
		return fmt.Errorf("--param %s.%s: %v", p.Trainer, p.Key, err)
	}
	keys = append(keys, runKeys...)
	if !slices.Contains(keys, p.Key) {
		return fmt.Errorf("--param %s.%s: %s has no setting %q (use %s)", p.Trainer, p.Key, p.Trainer, p.Key, strings.Join(keys, ", "))
	}
	err = c.setKey(p.Key, p.Value)
	if err == nil {
		err = c.Check()
	}
	if err != nil {
		return fmt.Errorf("--param %s.%s=%s: %v", p.Trainer, p.Key, p.Value, err)
	}
	return nil
}

// CompareRow is one trainer's line of the comparison.
type CompareRow struct {
	Trainer     string             `json:"trainer"`
	Dir         string             `json:"dir"`
	Steps       int64              `json:"steps"`
	WallSeconds float64            `json:"wall_seconds"`
	Loss        trainers.JSONFloat `json:"loss"`
	TraceRatio  trainers.JSONFloat `json:"trace_ratio"` // trace_hessian_manifold / trace_min
	TheoryGap   trainers.JSONFloat `json:"theory_gap"`
	Sigma21     trainers.JSONFloat `json:"sigma2_over_sigma1"` // σ2/σ1 of Z
	Diverged    bool               `json:"diverged"`
	StopReason  string             `json:"stop_reason"` // as in the run's summary.json
	Error       string             `json:"error,omitempty"`
}

// Compare runs each trainer on the same data from the same Θ₀, each into
// dir/<trainer>, and writes dir/compare.json. A trainer that stops early
// (diverged, an error) is reported in its row with its stop reason and the
// others still run; bad settings stop everything before any run starts.
// dir must be new or empty; it is locked while the comparison runs.
func Compare(ctx context.Context, base Config, names []string, params []Param, b backends.Backend, dir string, opt Options) ([]CompareRow, error) {
	if len(names) == 0 {
		return nil, Input(errors.New("--trainers: give at least one trainer"))
	}
	for k, n := range names {
		if slices.Contains(names[:k], n) {
			return nil, Input(fmt.Errorf("--trainers: %q is listed twice", n))
		}
	}
	for _, p := range params {
		if !slices.Contains(names, p.Trainer) {
			return nil, Input(fmt.Errorf("--param %s.%s: %q is not among --trainers", p.Trainer, p.Key, p.Trainer))
		}
	}
	if err := base.Check(); err != nil {
		return nil, Input(err)
	}
	problem, err := base.Problem()
	if err != nil {
		return nil, Input(err)
	}
	theta0, err := base.Theta0(problem)
	if err != nil {
		return nil, Input(err)
	}
	opt.Problem, opt.Theta0 = problem, theta0
	setups := make([]*Setup, len(names))
	for k, name := range names {
		cfg := base
		cfg.Trainer = name
		for _, p := range params {
			if p.Trainer == name {
				if err := p.Apply(&cfg); err != nil {
					return nil, Input(err)
				}
			}
		}
		if setups[k], err = Prepare(cfg, b, opt); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	out, err := ClaimOutDir(dir, "--out")
	if err != nil {
		return nil, Input(err)
	}
	rows, err := compare(ctx, setups, names, b, dir, opt)
	if err != nil && out.Empty() {
		out.Discard() // no run got as far as its first step
	} else {
		out.Close()
	}
	return rows, err
}

// compare runs the prepared setups into dir's subdirectories.
func compare(ctx context.Context, setups []*Setup, names []string, b backends.Backend, dir string, opt Options) ([]CompareRow, error) {
	var rows []CompareRow
	for k, s := range setups {
		sub := filepath.Join(dir, names[k])
		sum, err := s.Train(ctx, b, sub, opt)
		row := CompareRow{Trainer: names[k], Dir: sub, StopReason: trainers.StopError}
		if err != nil {
			row.Error = err.Error()
		}
		if sum != nil {
			f := sum.Final
			row.Steps, row.WallSeconds, row.Diverged, row.StopReason, row.Error = sum.Steps, sum.WallSeconds, sum.Diverged, sum.StopReason, sum.Error
			row.Loss = trainers.JSONFloat(f.Loss)
			row.TraceRatio = trainers.JSONFloat(f.TraceHessianManifold / f.TraceMin)
			row.TheoryGap = trainers.JSONFloat(f.TheoryGap)
			row.Sigma21 = trainers.JSONFloat(math.NaN())
			if len(f.SingularValuesZ) > 1 {
				row.Sigma21 = trainers.JSONFloat(f.SingularValuesZ[1] / f.SingularValuesZ[0])
			}
		}
		rows = append(rows, row)
		if ctx.Err() != nil {
			break
		}
	}
	return rows, runio.WriteJSON(filepath.Join(dir, CompareFile), rows)
}
