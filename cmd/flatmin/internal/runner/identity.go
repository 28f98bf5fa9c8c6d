package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/checkpoint"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
)

// DataFiles are the run directory's inputs a checkpoint's identity covers.
var DataFiles = []string{XFile, YFile, WFile, Theta0File}

// dataPathKeys are the settings that name input files: what matters is the
// files' content (DataFiles), not where they were read from.
var dataPathKeys = []string{"x", "y", "data", "w", "theta0"}

// trajectorySettings are the configuration's settings that a checkpoint
// must agree with: all but those a resume may change and the input paths.
func trajectorySettings(c Config) map[string]json.RawMessage {
	m := configMap(c)
	for _, k := range append(slices.Clone(resumeMayChange), dataPathKeys...) {
		delete(m, k)
	}
	return m
}

// ConfigDigest is the SHA-256 of c's trajectory-relevant settings.
func ConfigDigest(c Config) string {
	data, _ := json.Marshal(trajectorySettings(c)) // map keys come out sorted
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// DataDigests returns the SHA-256 of each of the run directory's DataFiles.
func DataDigests(dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range DataFiles {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
		out[name] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

// RunIdentity is the identity of the run in dir with configuration cfg.
func RunIdentity(dir string, cfg Config) (*checkpoint.Identity, error) {
	data, err := DataDigests(dir)
	if err != nil {
		return nil, err
	}
	return &checkpoint.Identity{Config: ConfigDigest(cfg), Data: data}, nil
}

// VerifyCheckpoint checks that c belongs to the run with configuration cfg,
// identity id and problem size m×d (n data points): its own configuration's
// trajectory-relevant settings, its identity (when it has one: flatmin 0.1's
// checkpoints have none) and its arrays' sizes. The error names what differs.
func VerifyCheckpoint(c *checkpoint.Checkpoint, cfg Config, id *checkpoint.Identity, m, d, n int) error {
	var own Config
	if err := json.Unmarshal(c.Config, &own); err != nil {
		return fmt.Errorf("its configuration does not parse: %v", err)
	}
	want, got := trajectorySettings(cfg), trajectorySettings(own)
	var diffs []string
	for _, k := range slices.Sorted(keys(want, got)) {
		if string(want[k]) != string(got[k]) {
			diffs = append(diffs, fmt.Sprintf("%s %s (config.json: %s)", k, orNone(got[k]), orNone(want[k])))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("it is from another run: its %s", strings.Join(diffs, ", "))
	}
	if c.Identity != nil {
		if c.Identity.Config != id.Config {
			return errors.New("its configuration digest is not the run's")
		}
		for _, name := range DataFiles {
			if c.Identity.Data[name] != id.Data[name] {
				return fmt.Errorf("it was written with another %s than the run directory's", name)
			}
		}
	}
	if c.M != m || c.D != d || (c.Features != nil && c.N != n) {
		return fmt.Errorf("it is for m=%d d=%d, the run's problem has m=%d d=%d n=%d", c.M, c.D, m, d, n)
	}
	return nil
}

func keys(a, b map[string]json.RawMessage) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range a {
			if !yield(k) {
				return
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok && !yield(k) {
				return
			}
		}
	}
}

func orNone(raw json.RawMessage) string {
	if raw == nil {
		return "(none)"
	}
	return unquote(raw)
}

// checkResumeData compares the data flags given with --resume (--data,
// --x, --y, --w, --theta0) by content with what the run saved, after the
// run's normalization: a resume continues the run's data or none.
func checkResumeData(dir string, saved, given Config, changed []string, p *model.Problem) error {
	differs := func(flag, path, what string) error {
		return fmt.Errorf("--resume: --%s %s differs from the run's %s (a resume continues the data it started with)", flag, path, what)
	}
	// x equals the run's rows as given or after the run's normalization
	// (the run directory's own x.npy is normalized already).
	sameX := func(x []float64, n, d int) bool {
		if n != p.N || d != p.D {
			return false
		}
		if sameBits(x, p.X) {
			return true
		}
		if saved.Normalize {
			model.NormalizeRows(x, n, d)
		}
		return sameBits(x, p.X)
	}
	for _, flag := range changed {
		switch flag {
		case "data":
			x, y, n, d, err := model.ReadCSV(given.DataPath)
			if err != nil {
				return fmt.Errorf("--data: %w", err)
			}
			if !sameX(x, n, d) || !sameBits(y, p.Y) {
				return differs(flag, given.DataPath, XFile+" and "+YFile)
			}
		case "x":
			x, n, d, err := model.ReadMatrix(given.XPath, "--x")
			if err != nil {
				return err
			}
			if !sameX(x, n, d) {
				return differs(flag, given.XPath, XFile)
			}
		case "y":
			y, err := model.ReadVector(given.YPath, "--y")
			if err != nil {
				return err
			}
			if !sameBits(y, p.Y) {
				return differs(flag, given.YPath, YFile)
			}
		case "w":
			w, err := model.ReadVector(given.WPath, "--w")
			if err != nil {
				return err
			}
			if !sameBits(w, p.W) {
				return differs(flag, given.WPath, WFile)
			}
		case "theta0":
			th, m, d, err := model.ReadMatrix(given.Theta0Path, "--theta0")
			if err != nil {
				return err
			}
			saved0, _, _, err := model.ReadMatrix(filepath.Join(dir, Theta0File), Theta0File)
			if err != nil {
				return fmt.Errorf("--resume: %w", err)
			}
			if m != p.M || d != p.D || !sameBits(th, saved0) {
				return differs(flag, given.Theta0Path, Theta0File)
			}
		}
	}
	return nil
}

// sameBits compares two arrays bit for bit.
func sameBits(a, b []float64) bool {
	return slices.EqualFunc(a, b, func(x, y float64) bool {
		return math.Float64bits(x) == math.Float64bits(y)
	})
}

// metricsFromRow reads one metrics.csv row back into Metrics (floats
// round-trip exactly: CSVRecord writes the shortest exact form).
func metricsFromRow(header, row, extras []string) (*trainers.Metrics, error) {
	if len(row) != len(header) {
		return nil, fmt.Errorf("a metrics row has %d fields for %d columns", len(row), len(header))
	}
	m := &trainers.Metrics{Extra: map[string]float64{}}
	scalars := map[string]*float64{"loss": &m.Loss, "trace_hessian": &m.TraceHessian, "trace_hessian_manifold": &m.TraceHessianManifold,
		"trace_min": &m.TraceMin, "theory_gap": &m.TheoryGap, "grad_norm": &m.GradNorm, "riemannian_grad_norm": &m.RiemannianGradNorm,
		"effective_rank": &m.EffectiveRank, "wall_seconds": &m.WallSeconds}
	for i, col := range header {
		if col == "step" {
			s, err := strconv.ParseInt(row[i], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("metrics.csv has a bad step %q", row[i])
			}
			m.Step = s
			continue
		}
		v, err := strconv.ParseFloat(row[i], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics.csv: bad %s %q", col, row[i])
		}
		switch {
		case scalars[col] != nil:
			*scalars[col] = v
		case strings.HasPrefix(col, "sv_z_"):
			m.SingularValuesZ = append(m.SingularValuesZ, v)
		case strings.HasPrefix(col, "sv_theta_"):
			m.SingularValuesTheta = append(m.SingularValuesTheta, v)
		case slices.Contains(extras, col):
			m.Extra[col] = v
		default:
			return nil, fmt.Errorf("metrics.csv: unknown column %q", col)
		}
	}
	return m, nil
}
