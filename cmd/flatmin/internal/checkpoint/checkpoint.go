// Package checkpoint writes and reads a run's checkpoints: everything needed
// to continue it bit for bit (step, Θ or the feature engine's Θ₀ and
// features, RNG state, the trainer's scalars, wall time, configuration), one
// self-verifying file per checkpoint.
//
// A file is a short text header — magic line, payload length, SHA-256 of the
// payload — then the payload: one JSON line (step, RNG state as decimal
// strings since uint64 does not fit JSON numbers, scalars, configuration, and
// the list of arrays) followed by the arrays as raw .npy. A truncated or
// altered file fails its length or hash check and is never loaded. Arrays are
// streamed from their tensors, twice (hash, then write), so that a checkpoint
// of a 200 MB Θ costs no second copy of it in memory. Version 1 files (arrays
// as base64 inside the JSON) are still read.
package checkpoint

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/numpy"
)

// Dir is the checkpoints' folder inside a run directory.
const Dir = "checkpoints"

// Keep is how many checkpoints are kept: the newest and one to fall back on.
const Keep = 2

const (
	magic   = "FLATMIN-CHECKPOINT 2"
	magicV1 = "FLATMIN-CHECKPOINT 1"
)

// Checkpoint is one saved state of a run. A Θ-engine state has Theta (M×D);
// a feature-engine state has Base (Θ₀, M×D) and Features (Zᵀ, M×N) instead,
// from which Θ follows.
type Checkpoint struct {
	Step           int64
	M, D, N        int
	Theta          *tensors.Tensor
	Base, Features *tensors.Tensor
	RNG            []uint64
	Extra          map[string]float64
	WallSeconds    float64
	Config         json.RawMessage // the run's configuration, as in config.json
	// Identity ties the checkpoint to its run; nil in files written before it existed.
	Identity *Identity
}

// Identity is what a checkpoint must agree with to continue a run: digests
// of the run's trajectory-relevant settings and of its data files.
type Identity struct {
	Config string            `json:"config_sha256"`
	Data   map[string]string `json:"data_sha256"` // file in the run directory → its SHA-256
}

// meta is the payload's JSON line (version 2).
type meta struct {
	Step        int64              `json:"step"`
	RNG         []string           `json:"rng"`
	Extra       map[string]float64 `json:"extra"`
	WallSeconds float64            `json:"wall_seconds"`
	Config      json.RawMessage    `json:"config"`
	Identity    *Identity          `json:"identity,omitempty"`
	Arrays      []arrayMeta        `json:"arrays"`
}

type arrayMeta struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// arrays lists c's arrays in file order.
func (c *Checkpoint) arrays() ([]string, []*tensors.Tensor, error) {
	switch {
	case c.Features != nil && c.Base != nil:
		if err := checkDims("base", c.Base, c.M, c.D); err != nil {
			return nil, nil, err
		}
		if err := checkDims("features", c.Features, c.M, c.N); err != nil {
			return nil, nil, err
		}
		return []string{"base", "features"}, []*tensors.Tensor{c.Base, c.Features}, nil
	case c.Theta != nil:
		if err := checkDims("Θ", c.Theta, c.M, c.D); err != nil {
			return nil, nil, err
		}
		return []string{"theta"}, []*tensors.Tensor{c.Theta}, nil
	}
	return nil, nil, errors.New("checkpoint: no Θ and no features")
}

func checkDims(name string, t *tensors.Tensor, rows, cols int) error {
	if d := t.Shape().Dimensions; len(d) != 2 || d[0] != rows || d[1] != cols {
		return fmt.Errorf("checkpoint: %s has shape %v, want [%d %d]", name, d, rows, cols)
	}
	return nil
}

// encodeTo writes c's payload to w; sizes are the arrays' .npy sizes (nil: count them).
func (c *Checkpoint) encodeTo(w io.Writer, names []string, ts []*tensors.Tensor, sizes []int64) error {
	for k, v := range c.Extra {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("checkpoint: %s is %v", k, v)
		}
	}
	m := meta{Step: c.Step, Extra: c.Extra, WallSeconds: c.WallSeconds, Config: c.Config, Identity: c.Identity}
	for _, r := range c.RNG {
		m.RNG = append(m.RNG, strconv.FormatUint(r, 10))
	}
	for i, name := range names {
		m.Arrays = append(m.Arrays, arrayMeta{Name: name, Bytes: sizes[i]})
	}
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return err
	}
	for _, t := range ts {
		if err := writeArray(w, t); err != nil {
			return err
		}
	}
	return nil
}

// writeArray streams t as .npy; a local copy made of an on-device tensor to
// read it is dropped again.
func writeArray(w io.Writer, t *tensors.Tensor) error {
	hadLocal := t.IsLocal()
	err := numpy.ToNpyWriter(t, w)
	if !hadLocal && !t.IsShared() && t.IsOnAnyDevice() {
		t.FinalizeLocal()
	}
	return err
}

// counter counts and hashes what is written to it.
type counter struct {
	n    int64
	hash io.Writer
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.hash.Write(p)
}

// encode writes the whole file to w: a first pass over the arrays measures and
// hashes the payload, the second writes it.
func (c *Checkpoint) encode(w io.Writer) error {
	names, ts, err := c.arrays()
	if err != nil {
		return err
	}
	sizes := make([]int64, len(ts))
	for i, t := range ts {
		cnt := &counter{hash: io.Discard}
		if err := writeArray(cnt, t); err != nil {
			return err
		}
		sizes[i] = cnt.n
	}
	h := sha256.New()
	cnt := &counter{hash: h}
	if err := c.encodeTo(cnt, names, ts, sizes); err != nil {
		return err
	}
	header := fmt.Sprintf("%s\nlength %d\nsha256 %s\n\n", magic, cnt.n, hex.EncodeToString(h.Sum(nil)))
	if _, err := io.WriteString(w, header); err != nil {
		return err
	}
	return c.encodeTo(w, names, ts, sizes)
}

// Encode returns the checkpoint's file contents.
func Encode(c *Checkpoint) ([]byte, error) {
	var buf bytes.Buffer
	if err := c.encode(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode parses and verifies a checkpoint file's contents.
func Decode(data []byte) (*Checkpoint, error) {
	return read(bytes.NewReader(data), int64(len(data)))
}

// maxMetaLine bounds the metadata line: a file that is not a
// checkpoint is refused without reading it whole.
const maxMetaLine = 64 << 20

// read parses and verifies a checkpoint of size bytes from r, streaming: the
// arrays are decoded into their values as the payload goes through the hash
// (npy.ReadFrom), so that loading a checkpoint costs its arrays, not also its
// bytes; a bad length or hash still rejects it, once read.
func read(r io.Reader, size int64) (*Checkpoint, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	var lines []string
	for len(lines) < 4 {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return nil, errors.New("not a checkpoint: no header")
		}
		lines = append(lines, strings.TrimSuffix(string(line), "\n"))
	}
	if lines[3] != "" || (lines[0] != magic && lines[0] != magicV1) {
		return nil, errors.New("not a flatmin checkpoint (bad header)")
	}
	length, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "length "), 10, 64)
	if err != nil || !strings.HasPrefix(lines[1], "length ") || length < 0 {
		return nil, errors.New("bad checkpoint header: length")
	}
	headerLen := int64(len(lines[0]) + len(lines[1]) + len(lines[2]) + 4)
	if body := size - headerLen; body != length {
		return nil, fmt.Errorf("checkpoint is %d bytes, its header says %d (truncated?)", body, length)
	}
	h := sha256.New()
	body := bufio.NewReaderSize(io.TeeReader(io.LimitReader(br, length), h), 1<<16)
	verify := func() error {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return err
		}
		if lines[2] != "sha256 "+hex.EncodeToString(h.Sum(nil)) {
			return errors.New("checkpoint fails its SHA-256 check (corrupted)")
		}
		return nil
	}
	if lines[0] == magicV1 {
		all, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		if err := verify(); err != nil {
			return nil, err
		}
		return decodeV1(all)
	}
	line, err := readLine(body, maxMetaLine)
	if err != nil {
		if verr := verify(); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("checkpoint payload: %w", err)
	}
	var m meta
	if err := json.Unmarshal(line, &m); err != nil {
		if verr := verify(); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("checkpoint payload: %w", err)
	}
	c := &Checkpoint{Step: m.Step, Extra: m.Extra, WallSeconds: m.WallSeconds, Config: m.Config, Identity: m.Identity}
	if err := c.setScalars(m.Step, m.RNG); err != nil {
		return nil, err
	}
	arrays := map[string]*tensors.Tensor{}
	dims := map[string][]int{}
	left := length - int64(len(line)) - 1
	for _, a := range m.Arrays {
		if a.Bytes < 0 || a.Bytes > left {
			return nil, fmt.Errorf("checkpoint array %s: %d bytes of %d left", a.Name, a.Bytes, left)
		}
		t, err := npy.ReadTensorFrom(io.LimitReader(body, a.Bytes), a.Bytes)
		if err != nil {
			if verr := verify(); verr != nil {
				return nil, verr
			}
			return nil, fmt.Errorf("checkpoint %s: %w", a.Name, err)
		}
		d := t.Shape().Dimensions
		if len(d) != 2 || d[0] < 1 || d[1] < 1 {
			return nil, fmt.Errorf("checkpoint %s has shape %v", a.Name, d)
		}
		var ferr error
		tensors.MustConstFlatData(t, func(v []float64) { ferr = model.CheckFinite("checkpoint "+a.Name, v) })
		if ferr != nil {
			return nil, ferr
		}
		arrays[a.Name], dims[a.Name] = t, d
		left -= a.Bytes
	}
	if left != 0 {
		return nil, fmt.Errorf("checkpoint has %d bytes after its arrays", left)
	}
	if err := verify(); err != nil {
		return nil, err
	}
	tensor := func(name string) *tensors.Tensor { return arrays[name] }
	switch {
	case arrays["theta"] != nil && arrays["base"] == nil && arrays["features"] == nil:
		c.Theta = tensor("theta")
		c.M, c.D = dims["theta"][0], dims["theta"][1]
	case arrays["theta"] == nil && arrays["base"] != nil && arrays["features"] != nil:
		c.Base, c.Features = tensor("base"), tensor("features")
		c.M, c.D, c.N = dims["base"][0], dims["base"][1], dims["features"][1]
		if dims["features"][0] != c.M {
			return nil, fmt.Errorf("checkpoint: features %v do not match Θ₀ %v", dims["features"], dims["base"])
		}
	default:
		return nil, fmt.Errorf("checkpoint: unexpected arrays %v", slices.Sorted(maps.Keys(arrays)))
	}
	return c, nil
}

// readLine reads one line (without its newline) of at most max bytes.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		part, err := r.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > max {
			return nil, fmt.Errorf("a line longer than %d bytes", max)
		}
		if err == nil {
			return line[:len(line)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return nil, errors.New("no metadata line")
		}
	}
}

func (c *Checkpoint) setScalars(step int64, rng []string) error {
	if c.Extra == nil {
		c.Extra = map[string]float64{}
	}
	if step < 0 {
		return fmt.Errorf("checkpoint step %d", step)
	}
	for _, s := range rng {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("checkpoint RNG state: %w", err)
		}
		c.RNG = append(c.RNG, v)
	}
	return nil
}

// payloadV1 is version 1's payload: Θ as base64 .npy inside the JSON.
type payloadV1 struct {
	Step        int64              `json:"step"`
	ThetaNpy    string             `json:"theta_npy"`
	RNG         []string           `json:"rng"`
	Extra       map[string]float64 `json:"extra"`
	WallSeconds float64            `json:"wall_seconds"`
	Config      json.RawMessage    `json:"config"`
}

func decodeV1(body []byte) (*Checkpoint, error) {
	var p payloadV1
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("checkpoint payload: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(p.ThetaNpy)
	if err != nil {
		return nil, fmt.Errorf("checkpoint Θ: %w", err)
	}
	theta, dims, err := npy.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("checkpoint Θ: %w", err)
	}
	if len(dims) != 2 || dims[0] < 1 || dims[1] < 1 {
		return nil, fmt.Errorf("checkpoint Θ has shape %v", dims)
	}
	if err := model.CheckFinite("checkpoint Θ", theta); err != nil {
		return nil, err
	}
	c := &Checkpoint{Step: p.Step, Theta: tensors.FromFlatDataAndDimensions(theta, dims...), M: dims[0], D: dims[1],
		Extra: p.Extra, WallSeconds: p.WallSeconds, Config: p.Config}
	if err := c.setScalars(p.Step, p.RNG); err != nil {
		return nil, err
	}
	return c, nil
}

// fileName orders checkpoints by step.
func fileName(step int64) string { return fmt.Sprintf("ckpt-%012d.ckpt", step) }

// Write saves c in runDir's checkpoint folder (atomically) and removes all but
// the newest Keep checkpoints. An error leaves the earlier checkpoints as they were.
func Write(runDir string, c *Checkpoint) error {
	dir := filepath.Join(runDir, Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := runio.WriteAtomic(filepath.Join(dir, fileName(c.Step)), c.encode); err != nil {
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
	return LatestValid(runDir, nil)
}

// LatestValid is Latest for checkpoints that also pass check (the run's own
// consistency checks; nil for none). A checkpoint whose step is not the one
// its file name says is skipped too.
func LatestValid(runDir string, check func(c *Checkpoint) error) (*Checkpoint, []string, error) {
	dir := filepath.Join(runDir, Dir)
	files, err := list(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, err
	}
	var warnings []string
	for k := len(files) - 1; k >= 0; k-- {
		path := filepath.Join(dir, files[k])
		c, err := Load(path)
		if err == nil && check != nil {
			err = check(c)
		}
		if err == nil {
			return c, warnings, nil
		}
		warnings = append(warnings, fmt.Sprintf("skipping checkpoint %s: %v", path, err))
	}
	return nil, warnings, fmt.Errorf("%w in %s", ErrNone, dir)
}

// Load reads and verifies one checkpoint file, its step against its name.
func Load(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	c, err := read(f, st.Size())
	if err != nil {
		return nil, err
	}
	if err := CheckName(filepath.Base(path), c.Step); err != nil {
		return nil, err
	}
	return c, nil
}

// CheckName checks that a checkpoint file's name is the one Write gives a
// checkpoint of this step (a file renamed to another step is not trusted).
func CheckName(name string, step int64) error {
	if name != fileName(step) {
		return fmt.Errorf("it holds step %d, but its name is %s (want %s)", step, name, fileName(step))
	}
	return nil
}
