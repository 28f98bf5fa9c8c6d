// Package sweep owns `flatmin sweep`: expanding trainers × a grid of settings
// × seeds into numbered runs, the sweep's definition file that makes a rerun
// idempotent (and refuses a different sweep on the same directory), the
// status of each run read back from its run directory, the aggregation into
// sweep.json (medians, quartiles, time to threshold) and the Slurm array
// script. Running one run is runner's job; starting worker processes is the
// command's.
package sweep

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/trainers"
)

// Files of a sweep directory.
const (
	SpecFile   = "sweep-config.json" // the sweep's definition, written by its first invocation
	ResultFile = "sweep.json"        // runs and summary, rebuilt from the run directories
	SbatchFile = "sweep.sbatch"      // the Slurm array job (--slurm)
	RunsDir    = "runs"              // one run directory per run
	lockDir    = ".sweep-lock"       // holds the lock taken to write the files above
)

// Axis is one swept setting of one trainer: --param trainer.key=v1,v2,...
type Axis struct {
	Trainer string   `json:"trainer"`
	Key     string   `json:"key"`
	Values  []string `json:"values"`
}

// Run is one run of the sweep: a trainer, one value per axis of that
// trainer, and a seed.
type Run struct {
	Index   int            `json:"index"`
	Trainer string         `json:"trainer"`
	Params  []runner.Param `json:"-"`
	Seed    uint64         `json:"seed"`
	Dir     string         `json:"dir"` // relative to the sweep directory
}

// Spec is a sweep's definition: what its runs are. Two commands with the
// same Spec are the same sweep.
type Spec struct {
	// Base is the run configuration every run starts from (trainer and seed
	// are the sweep's); its JSON minus Volatile is compared on a rerun.
	Base     runner.Config `json:"config"`
	Trainers []string      `json:"trainers"`
	Axes     []Axis        `json:"grid"`
	Seeds    []uint64      `json:"seeds"`
}

// Volatile are the base settings a rerun may change: they change speed or
// checkpoint cadence, not results.
var Volatile = []string{"backend", "engine", "fuse", "graphs", "checkpoint_every"}

// commonKeys are the run settings every trainer has (seed is the sweep's).
var commonKeys = []string{"steps", "log_every"}

// Keys lists the --param keys trainer accepts in a sweep: its own settings
// (runner.TrainerKeys, from its trainers.Settings struct), then commonKeys.
// A key a trainer ignores would make runs that differ only in name.
func Keys(trainer string) []string {
	keys, _ := runner.TrainerKeys(trainer)
	return append(keys, commonKeys...)
}

// ParseAxis reads --param trainer.key=v1,v2,... with runner's syntax.
func ParseAxis(s string) (Axis, error) {
	p, err := runner.ParseParam(s)
	if err != nil {
		return Axis{}, err
	}
	a := Axis{Trainer: p.Trainer, Key: p.Key}
	for _, v := range strings.Split(p.Value, ",") {
		if v = strings.TrimSpace(v); v != "" {
			a.Values = append(a.Values, v)
		}
	}
	if len(a.Values) == 0 {
		return a, fmt.Errorf("--param %s.%s: empty grid: give at least one value", a.Trainer, a.Key)
	}
	return a, nil
}

// Check validates the spec before anything is written: known trainers, each
// listed once, a key each axis's trainer has, given once, every value valid
// (runner.Param.Apply), seeds given and distinct.
func (s *Spec) Check() error {
	if len(s.Trainers) == 0 {
		return errors.New("--trainers: empty grid: give at least one trainer")
	}
	known := trainers.Names()
	for k, n := range s.Trainers {
		if !slices.Contains(known, n) {
			return fmt.Errorf("--trainers: unknown trainer %q (use %s)", n, strings.Join(known, ", "))
		}
		if slices.Contains(s.Trainers[:k], n) {
			return fmt.Errorf("--trainers: %q is listed twice", n)
		}
	}
	if len(s.Seeds) == 0 {
		return errors.New("no seeds: give --seeds N ≥ 1 or --seed-list")
	}
	for k, sd := range s.Seeds {
		if slices.Contains(s.Seeds[:k], sd) {
			return fmt.Errorf("--seed-list: seed %d is listed twice", sd)
		}
	}
	if err := s.Base.Check(); err != nil {
		return err
	}
	for k, a := range s.Axes {
		if !slices.Contains(s.Trainers, a.Trainer) {
			return fmt.Errorf("--param %s.%s: %q is not among --trainers", a.Trainer, a.Key, a.Trainer)
		}
		if a.Key == "seed" {
			return fmt.Errorf("--param %s.seed: seeds are the sweep's: use --seeds or --seed-list", a.Trainer)
		}
		if !slices.Contains(Keys(a.Trainer), a.Key) {
			return fmt.Errorf("--param %s.%s: %s has no setting %q (it has %s)", a.Trainer, a.Key, a.Trainer, a.Key, strings.Join(Keys(a.Trainer), ", "))
		}
		for _, b := range s.Axes[:k] {
			if b.Trainer == a.Trainer && b.Key == a.Key {
				return fmt.Errorf("--param %s.%s is given twice: list its values in one --param", a.Trainer, a.Key)
			}
		}
		for j, v := range a.Values {
			if slices.Contains(a.Values[:j], v) {
				return fmt.Errorf("--param %s.%s: value %s is listed twice", a.Trainer, a.Key, v)
			}
			cfg := s.Base
			cfg.Trainer = a.Trainer
			if err := (runner.Param{Trainer: a.Trainer, Key: a.Key, Value: v}).Apply(&cfg); err != nil {
				return err
			}
		}
	}
	return nil
}

// Settings lists a trainer's settings: the product of its axes, in the
// order the axes were given, the last varying fastest. A trainer without
// axes has one setting, its defaults.
func (s *Spec) Settings(trainer string) [][]runner.Param {
	out := [][]runner.Param{nil}
	for _, a := range s.Axes {
		if a.Trainer != trainer {
			continue
		}
		var next [][]runner.Param
		for _, prefix := range out {
			for _, v := range a.Values {
				next = append(next, append(slices.Clone(prefix), runner.Param{Trainer: trainer, Key: a.Key, Value: v}))
			}
		}
		out = next
	}
	return out
}

// Runs expands the spec: for each trainer, each setting, each seed.
func (s *Spec) Runs() []Run {
	var runs []Run
	for _, t := range s.Trainers {
		for _, ps := range s.Settings(t) {
			for _, sd := range s.Seeds {
				runs = append(runs, Run{Index: len(runs), Trainer: t, Params: ps, Seed: sd})
			}
		}
	}
	width := max(4, len(strconv.Itoa(len(runs)-1)))
	for k := range runs {
		runs[k].Dir = filepath.Join(RunsDir, runs[k].name(width))
	}
	return runs
}

// name is the run's directory name: index, trainer, settings, seed.
func (r Run) name(width int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%0*d-%s", width, r.Index, r.Trainer)
	for _, p := range r.Params {
		b.WriteString("-" + p.Key + "=" + safe(p.Value))
	}
	fmt.Fprintf(&b, "-seed%d", r.Seed)
	return b.String()
}

// safe keeps a value readable in a file name (values are numbers or auto).
func safe(v string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".+-_", r) {
			return r
		}
		return '_'
	}, v)
}

// Config is run r's configuration: the base, its trainer, settings and seed.
func (s *Spec) Config(r Run) (runner.Config, error) {
	cfg := s.Base
	cfg.Trainer, cfg.Seed = r.Trainer, r.Seed
	for _, p := range r.Params {
		if err := p.Apply(&cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// ParamsJSON is a run's settings as a JSON object, numbers as numbers.
func ParamsJSON(ps []runner.Param) map[string]any {
	out := map[string]any{}
	for _, p := range ps {
		if _, err := strconv.ParseFloat(p.Value, 64); err == nil {
			out[p.Key] = json.Number(p.Value)
		} else {
			out[p.Key] = p.Value
		}
	}
	return out
}

// identity is the spec as compared on a rerun.
func (s *Spec) identity() map[string]json.RawMessage {
	base := s.Base
	base.Trainer, base.Seed = "", 0
	data, _ := json.Marshal(base)
	var m map[string]json.RawMessage
	_ = json.Unmarshal(data, &m)
	for _, k := range Volatile {
		delete(m, k)
	}
	for k, v := range map[string]any{"trainers": s.Trainers, "grid": s.Axes, "seeds": s.Seeds} {
		m[k], _ = json.Marshal(v)
	}
	return m
}

// Difference names the first setting in which two specs differ, "" if none.
func Difference(saved, given *Spec) string {
	a, b := saved.identity(), given.identity()
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if string(a[k]) != string(b[k]) {
			return fmt.Sprintf("%s is %s there, %s here", k, show(a[k]), show(b[k]))
		}
	}
	return ""
}

func show(raw json.RawMessage) string {
	if raw == nil {
		return "unset"
	}
	if s, err := strconv.Unquote(string(raw)); err == nil {
		return strconv.Quote(s)
	}
	return string(raw)
}

// specFile is SpecFile's content.
type specFile struct {
	Spec
	Runs []Run `json:"runs"`
}

// Claim makes dir the sweep of spec: a new or empty directory gets the
// spec file; a directory that holds the same sweep is taken as it is; one
// with another sweep or anything else is refused, naming the difference.
// It writes under the sweep's lock, through a temporary file and a rename.
func Claim(dir string, s *Spec) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("--out %s is not a directory", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	return WithLock(dir, func() error {
		saved, err := LoadSpec(dir)
		switch {
		case err == nil:
			if d := Difference(saved, s); d != "" {
				return fmt.Errorf("--out %s holds a different sweep: %s (rerun its own command, or choose another --out)", dir, d)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("--out: %w", err)
		}
		for _, e := range entries {
			if n := e.Name(); n != lockDir && n != runio.LockFile {
				return fmt.Errorf("--out %s is not empty and holds no sweep (%s): choose a new or empty directory", dir, n)
			}
		}
		return runio.WriteJSON(filepath.Join(dir, SpecFile), specFile{Spec: *s, Runs: s.Runs()})
	})
}

// LoadSpec reads a sweep directory's definition.
func LoadSpec(dir string) (*Spec, error) {
	data, err := os.ReadFile(filepath.Join(dir, SpecFile))
	if err != nil {
		return nil, err
	}
	var f specFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, SpecFile), err)
	}
	return &f.Spec, nil
}
