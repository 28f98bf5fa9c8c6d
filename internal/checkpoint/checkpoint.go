// Package checkpoint writes and reads a run's checkpoints: everything needed
// to continue it bit for bit (step, Θ, RNG state, the trainer's scalars, wall
// time, configuration), one self-verifying file per checkpoint.
//
// A file is a short text header — magic line, payload length, SHA-256 of the
// payload — then a JSON payload with Θ as base64 .npy bytes and the RNG state
// as decimal strings (uint64 does not fit JSON numbers). A truncated or
// altered file fails its length or hash check and is never loaded.
package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/internal/runio"
	"github.com/flatmin/flatmin/model"
)

// Dir is the checkpoints' folder inside a run directory.
const Dir = "checkpoints"

// Keep is how many checkpoints are kept: the newest and one to fall back on.
const Keep = 2

const magic = "FLATMIN-CHECKPOINT 1"

// Checkpoint is one saved state of a run.
type Checkpoint struct {
	Step        int64
	Theta       []float64 // M×D, row-major
	M, D        int
	RNG         []uint64
	Extra       map[string]float64
	WallSeconds float64
	Config      json.RawMessage // the run's configuration, as in config.json
	// The feature engine's representation, Θ₀ (Base, M×D) and the features
	// Zᵀ (Features, M×N), nil under the Θ engine; with them a resume is bit-identical.
	Base, Features []float64
	N              int
}

type payload struct {
	Step        int64              `json:"step"`
	ThetaNpy    string             `json:"theta_npy"`
	RNG         []string           `json:"rng"`
	Extra       map[string]float64 `json:"extra"`
	WallSeconds float64            `json:"wall_seconds"`
	Config      json.RawMessage    `json:"config"`
	BaseNpy     string             `json:"base_npy,omitempty"`
	FeaturesNpy string             `json:"features_npy,omitempty"`
}

// Encode returns the checkpoint's file contents.
func Encode(c *Checkpoint) ([]byte, error) {
	if len(c.Theta) != c.M*c.D {
		return nil, fmt.Errorf("checkpoint: Θ has %d values for %d×%d", len(c.Theta), c.M, c.D)
	}
	for k, v := range c.Extra {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("checkpoint: %s is %v", k, v)
		}
	}
	npy, err := runio.EncodeNpy(c.Theta, c.M, c.D)
	if err != nil {
		return nil, err
	}
	p := payload{Step: c.Step, ThetaNpy: base64.StdEncoding.EncodeToString(npy), Extra: c.Extra,
		WallSeconds: c.WallSeconds, Config: c.Config}
	if c.Features != nil {
		if len(c.Base) != c.M*c.D || len(c.Features) != c.M*c.N {
			return nil, fmt.Errorf("checkpoint: feature representation has %d and %d values for m=%d d=%d n=%d", len(c.Base), len(c.Features), c.M, c.D, c.N)
		}
		for _, a := range []struct {
			v    []float64
			dims []int
			out  *string
		}{{c.Base, []int{c.M, c.D}, &p.BaseNpy}, {c.Features, []int{c.M, c.N}, &p.FeaturesNpy}} {
			b, err := runio.EncodeNpy(a.v, a.dims...)
			if err != nil {
				return nil, err
			}
			*a.out = base64.StdEncoding.EncodeToString(b)
		}
	}
	for _, r := range c.RNG {
		p.RNG = append(p.RNG, strconv.FormatUint(r, 10))
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	header := fmt.Sprintf("%s\nlength %d\nsha256 %s\n\n", magic, len(body), hex.EncodeToString(sum[:]))
	return append([]byte(header), body...), nil
}

// Decode parses and verifies a checkpoint file's contents.
func Decode(data []byte) (*Checkpoint, error) {
	head, body, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		return nil, errors.New("not a checkpoint: no header")
	}
	lines := strings.Split(string(head), "\n")
	if len(lines) != 3 || lines[0] != magic {
		return nil, errors.New("not a flatmin checkpoint (bad header)")
	}
	length, err := strconv.Atoi(strings.TrimPrefix(lines[1], "length "))
	if err != nil || !strings.HasPrefix(lines[1], "length ") {
		return nil, errors.New("bad checkpoint header: length")
	}
	if len(body) != length {
		return nil, fmt.Errorf("checkpoint is %d bytes, its header says %d (truncated?)", len(body), length)
	}
	sum := sha256.Sum256(body)
	if lines[2] != "sha256 "+hex.EncodeToString(sum[:]) {
		return nil, errors.New("checkpoint fails its SHA-256 check (corrupted)")
	}
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("checkpoint payload: %w", err)
	}
	npy, err := base64.StdEncoding.DecodeString(p.ThetaNpy)
	if err != nil {
		return nil, fmt.Errorf("checkpoint Θ: %w", err)
	}
	theta, dims, err := model.DecodeNpy(npy)
	if err != nil {
		return nil, fmt.Errorf("checkpoint Θ: %w", err)
	}
	if len(dims) != 2 {
		return nil, fmt.Errorf("checkpoint Θ has shape %v", dims)
	}
	if err := model.CheckFinite("checkpoint Θ", theta); err != nil {
		return nil, err
	}
	c := &Checkpoint{Step: p.Step, Theta: theta, M: dims[0], D: dims[1], Extra: p.Extra, WallSeconds: p.WallSeconds, Config: p.Config}
	if (p.BaseNpy == "") != (p.FeaturesNpy == "") {
		return nil, errors.New("checkpoint has half a feature representation")
	}
	if p.FeaturesNpy != "" {
		if c.Base, _, err = decodeMatrix("base", p.BaseNpy, c.M, c.D); err != nil {
			return nil, err
		}
		var n int
		if c.Features, n, err = decodeMatrix("features", p.FeaturesNpy, c.M, -1); err != nil {
			return nil, err
		}
		c.N = n
	}
	if c.Extra == nil {
		c.Extra = map[string]float64{}
	}
	if p.Step < 0 {
		return nil, fmt.Errorf("checkpoint step %d", p.Step)
	}
	for _, s := range p.RNG {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("checkpoint RNG state: %w", err)
		}
		c.RNG = append(c.RNG, v)
	}
	return c, nil
}

// decodeMatrix decodes a base64 .npy matrix of rows×cols (cols < 0: any) and returns it with its column count.
func decodeMatrix(name, b64 string, rows, cols int) ([]float64, int, error) {
	npy, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	v, dims, err := model.DecodeNpy(npy)
	if err != nil {
		return nil, 0, fmt.Errorf("checkpoint %s: %w", name, err)
	}
	if len(dims) != 2 || dims[0] != rows || (cols >= 0 && dims[1] != cols) {
		return nil, 0, fmt.Errorf("checkpoint %s has shape %v", name, dims)
	}
	if err := model.CheckFinite("checkpoint "+name, v); err != nil {
		return nil, 0, err
	}
	return v, dims[1], nil
}

// fileName orders checkpoints by step.
func fileName(step int64) string { return fmt.Sprintf("ckpt-%012d.ckpt", step) }

// Write saves c in runDir's checkpoint folder (atomically) and removes all but
// the newest Keep checkpoints. An error leaves the earlier checkpoints as they were.
func Write(runDir string, c *Checkpoint) error {
	data, err := Encode(c)
	if err != nil {
		return err
	}
	dir := filepath.Join(runDir, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := runio.WriteFileAtomic(filepath.Join(dir, fileName(c.Step)), data); err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", c.Step, err)
	}
	// Temporary files of writes cut short by a crash are garbage now.
	if stale, err := filepath.Glob(filepath.Join(dir, ".ckpt-*.tmp-*")); err == nil {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	files, _ := list(dir)
	for len(files) > Keep {
		os.Remove(filepath.Join(dir, files[0]))
		files = files[1:]
	}
	return nil
}

func list(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "ckpt-") && strings.HasSuffix(e.Name(), ".ckpt") {
			files = append(files, e.Name())
		}
	}
	slices.Sort(files)
	return files, nil
}

// ErrNone means a run directory has no valid checkpoint.
var ErrNone = errors.New("no valid checkpoint")

// Latest returns the newest checkpoint that verifies, and a warning for each
// newer one that did not (skipped in its favour).
func Latest(runDir string) (*Checkpoint, []string, error) {
	dir := filepath.Join(runDir, Dir)
	files, err := list(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, err
	}
	var warnings []string
	for k := len(files) - 1; k >= 0; k-- {
		path := filepath.Join(dir, files[k])
		data, err := os.ReadFile(path)
		if err == nil {
			var c *Checkpoint
			if c, err = Decode(data); err == nil {
				return c, warnings, nil
			}
		}
		warnings = append(warnings, fmt.Sprintf("skipping checkpoint %s: %v", path, err))
	}
	return nil, warnings, fmt.Errorf("%w in %s", ErrNone, dir)
}
