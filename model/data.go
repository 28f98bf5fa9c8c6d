package model

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/numpy"
)

// Labels says how synthetic labels are drawn. Kinds:
//   - "uniform:LO,HI": y_i ~ U[LO, HI];
//   - "normal:MU,SD": y_i ~ N(MU, SD²);
//   - "const:V": y_i = V;
//   - "teacher:K": y_i = Σ_k φ(θ*_k·x_i) for a random teacher of K neurons, θ*_k ~ N(0, I/d).
type Labels struct {
	Kind string
	A, B float64
	K    int
}

// String returns the label spec in the syntax ParseLabels reads.
func (l Labels) String() string {
	switch l.Kind {
	case "const":
		return fmt.Sprintf("const:%g", l.A)
	case "teacher":
		return fmt.Sprintf("teacher:%d", l.K)
	default:
		return fmt.Sprintf("%s:%g,%g", l.Kind, l.A, l.B)
	}
}

// ParseLabels reads a label spec such as "uniform:1,2" (see Labels).
func ParseLabels(s string) (Labels, error) {
	kind, args, _ := strings.Cut(strings.TrimSpace(s), ":")
	var nums []float64
	if args != "" {
		for _, f := range strings.Split(args, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return Labels{}, fmt.Errorf("--labels %q: %q is not a finite number", s, f)
			}
			nums = append(nums, v)
		}
	}
	want := map[string]int{"uniform": 2, "normal": 2, "const": 1, "teacher": 1}
	n, ok := want[kind]
	if !ok {
		return Labels{}, fmt.Errorf("--labels %q: unknown kind %q, use uniform:LO,HI, normal:MU,SD, const:V or teacher:K", s, kind)
	}
	if len(nums) != n {
		return Labels{}, fmt.Errorf("--labels %q: %s takes %d number(s), got %d", s, kind, n, len(nums))
	}
	l := Labels{Kind: kind, A: nums[0]}
	if n == 2 {
		l.B = nums[1]
	}
	switch {
	case kind == "uniform" && !(l.A <= l.B):
		return Labels{}, fmt.Errorf("--labels %q: need LO ≤ HI", s)
	case kind == "normal" && l.B < 0:
		return Labels{}, fmt.Errorf("--labels %q: the standard deviation must be ≥ 0", s)
	case kind == "teacher":
		if l.A != math.Trunc(l.A) || l.A < 1 || l.A > 1e6 {
			return Labels{}, fmt.Errorf("--labels %q: the teacher's width must be a positive integer", s)
		}
		l.K, l.A = int(l.A), 0
	}
	return l, nil
}

// Synthetic draws the paper's data: entries of X uniform on [0, 1], each row
// normalised to unit norm, labels from spec (the teacher uses act). The same
// seed gives the same data.
func Synthetic(n, d int, spec Labels, act Activation, seed uint64) (x, y []float64, err error) {
	if n <= 0 || d <= 0 {
		return nil, nil, fmt.Errorf("synthetic data needs n > 0 and d > 0, got n = %d, d = %d", n, d)
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed_da7a))
	x = make([]float64, n*d)
	for i := range n {
		for {
			norm := 0.0
			for k := range d {
				v := rng.Float64()
				x[i*d+k] = v
				norm += v * v
			}
			if norm > 0 { // an all-zero row has probability 0, but do not divide by it
				norm = math.Sqrt(norm)
				for k := range d {
					x[i*d+k] /= norm
				}
				break
			}
		}
	}
	y = make([]float64, n)
	switch spec.Kind {
	case "uniform":
		for i := range y {
			y[i] = spec.A + (spec.B-spec.A)*rng.Float64()
		}
	case "normal":
		for i := range y {
			y[i] = spec.A + spec.B*rng.NormFloat64()
		}
	case "const":
		for i := range y {
			y[i] = spec.A
		}
	case "teacher":
		teacher := make([]float64, spec.K*d)
		for i := range teacher {
			teacher[i] = rng.NormFloat64() / math.Sqrt(float64(d))
		}
		for i := range n {
			for k := range spec.K {
				z := 0.0
				for c := range d {
					z += teacher[k*d+c] * x[i*d+c]
				}
				y[i] += act.Host(z, 0)
			}
		}
	default:
		return nil, nil, fmt.Errorf("unknown label kind %q", spec.Kind)
	}
	return x, y, nil
}

// InitTheta draws Θ₀ with i.i.d. N(0, scale²) entries from seed.
func InitTheta(m, d int, scale float64, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 0x1417_7e7a))
	theta := make([]float64, m*d)
	for i := range theta {
		theta[i] = scale * rng.NormFloat64()
	}
	return theta
}

// maxNpyBytes bounds what ReadNpy accepts, so a bad header cannot ask for terabytes.
const maxNpyBytes = 1 << 32

var npyShapeRE = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
var npyDescrRE = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)

// ReadNpy reads a numeric .npy array as float64 values with its dimensions.
func ReadNpy(path string) ([]float64, []int, error) {
	data, err := readBounded(path, maxNpyBytes)
	if err != nil {
		return nil, nil, err
	}
	values, dims, err := DecodeNpy(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return values, dims, nil
}

// DecodeNpy parses the bytes of a .npy file. It checks the header against the
// data length before GoMLX's reader allocates anything, and accepts only
// little-endian (or single-byte) numeric arrays in C order or Fortran order.
func DecodeNpy(data []byte) (values []float64, dims []int, err error) {
	header, body, err := npyHeader(data)
	if err != nil {
		return nil, nil, err
	}
	m := npyDescrRE.FindStringSubmatch(header)
	if m == nil {
		return nil, nil, errors.New("not a .npy file: the header has no 'descr'")
	}
	descr := m[1]
	if strings.HasPrefix(descr, ">") {
		return nil, nil, fmt.Errorf("big-endian array (dtype %q) is not supported: save it little-endian", descr)
	}
	sm := npyShapeRE.FindStringSubmatch(header)
	if sm == nil {
		return nil, nil, errors.New("not a .npy file: the header has no 'shape'")
	}
	size := 1
	for _, f := range strings.Split(sm[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, perr := strconv.Atoi(f)
		if perr != nil || v < 0 || v > maxNpyBytes {
			return nil, nil, fmt.Errorf("bad dimension %q in the .npy header", f)
		}
		size *= v
		if size > maxNpyBytes {
			return nil, nil, errors.New("the .npy header declares an array too large to read")
		}
		dims = append(dims, v)
	}
	itemSize, ok := map[string]int{"f8": 8, "f4": 4, "f2": 2, "i8": 8, "i4": 4, "i2": 2, "i1": 1, "u8": 8, "u4": 4, "u2": 2, "u1": 1}[strings.TrimLeft(descr, "<|=")]
	if !ok {
		return nil, nil, fmt.Errorf("unsupported dtype %q: want a float or integer array", descr)
	}
	if len(body) != size*itemSize {
		return nil, nil, fmt.Errorf("the .npy data has %d bytes, but its header declares %d values of %d bytes (truncated or corrupt file)", len(body), size, itemSize)
	}
	t, err := decodeWithGoMLX(data)
	if err != nil {
		return nil, nil, err
	}
	values, err = toFloat64(t)
	if err != nil {
		return nil, nil, err
	}
	return values, dims, nil
}

func decodeWithGoMLX(data []byte) (t *tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed .npy file: %v", r)
		}
	}()
	return numpy.FromNpyReader(bytes.NewReader(data))
}

// npyHeader splits a .npy file into its header text and its data.
func npyHeader(data []byte) (string, []byte, error) {
	if len(data) < 10 || string(data[:6]) != "\x93NUMPY" {
		return "", nil, errors.New("not a .npy file (bad magic bytes)")
	}
	var hlen, start int
	switch data[6] {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(data[8:10])), 10
	case 2, 3:
		if len(data) < 12 {
			return "", nil, errors.New("truncated .npy header")
		}
		hlen, start = int(binary.LittleEndian.Uint32(data[8:12])), 12
		if hlen > 0xFFFF {
			return "", nil, errors.New("the .npy header is too long")
		}
	default:
		return "", nil, fmt.Errorf("unsupported .npy version %d", data[6])
	}
	if start+hlen > len(data) {
		return "", nil, errors.New("truncated .npy header")
	}
	return string(data[start : start+hlen]), data[start+hlen:], nil
}

func toFloat64(t *tensors.Tensor) ([]float64, error) {
	var out []float64
	var err error
	t.MustConstFlatData(func(flat any) {
		switch f := flat.(type) {
		case []float64:
			out = append([]float64(nil), f...)
		case []float32:
			out = widen(f)
		case []int64:
			out = widen(f)
		case []int32:
			out = widen(f)
		case []int16:
			out = widen(f)
		case []int8:
			out = widen(f)
		case []uint64:
			out = widen(f)
		case []uint32:
			out = widen(f)
		case []uint16:
			out = widen(f)
		case []uint8:
			out = widen(f)
		default:
			if t.DType() == dtypes.Float16 {
				err = errors.New("float16 arrays are not supported: save as float32 or float64")
				return
			}
			err = fmt.Errorf("unsupported dtype %s", t.DType())
		}
	})
	return out, err
}

func widen[T int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | float32](values []T) []float64 {
	out := make([]float64, len(values))
	for i, v := range values {
		out[i] = float64(v)
	}
	return out
}

// ReadMatrix reads a 2-D .npy array (or 1-D, as one row per value when cols == 1).
func ReadMatrix(path, what string) (values []float64, rows, cols int, err error) {
	values, dims, err := ReadNpy(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", what, err)
	}
	if len(dims) != 2 {
		return nil, 0, 0, fmt.Errorf("%s: %s has shape %v, want a 2-D array", what, path, dims)
	}
	if err := CheckFinite(what, values); err != nil {
		return nil, 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return values, dims[0], dims[1], nil
}

// ReadVector reads a 1-D .npy array; shapes [k, 1] and [1, k] are accepted too.
func ReadVector(path, what string) ([]float64, error) {
	values, dims, err := ReadNpy(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !(len(dims) == 1 || len(dims) == 2 && (dims[0] == 1 || dims[1] == 1)) {
		return nil, fmt.Errorf("%s: %s has shape %v, want a vector", what, path, dims)
	}
	if err := CheckFinite(what, values); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return values, nil
}

// ReadCSV reads data from CSV: one row per data point, the last column is y.
// Blank lines and lines starting with '#' are skipped; a first line that does
// not parse as numbers is taken as a header.
func ReadCSV(path string) (x []float64, y []float64, n, d int, err error) {
	data, err := readBounded(path, maxNpyBytes)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	x, y, n, d, err = ParseCSV(data)
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return x, y, n, d, nil
}

// ParseCSV parses CSV bytes as ReadCSV does.
func ParseCSV(data []byte) (x []float64, y []float64, n, d int, err error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	cols := -1
	for first := true; ; first = false {
		rec, rerr := r.Read()
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, nil, 0, 0, fmt.Errorf("malformed CSV: %v", rerr)
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		vals := make([]float64, len(rec))
		bad := -1
		for i, f := range rec {
			v, perr := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if perr != nil {
				bad = i
				break
			}
			vals[i] = v
		}
		if bad >= 0 {
			if first {
				continue // a header
			}
			return nil, nil, 0, 0, fmt.Errorf("line %d, column %d: %q is not a number", line, bad+1, rec[bad])
		}
		if cols < 0 {
			cols = len(rec)
			if cols < 2 {
				return nil, nil, 0, 0, fmt.Errorf("line %d: need at least 2 columns (features, then the label y), got %d", line, cols)
			}
		} else if len(rec) != cols {
			return nil, nil, 0, 0, fmt.Errorf("line %d has %d columns, earlier lines have %d", line, len(rec), cols)
		}
		for i, v := range vals {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, 0, 0, fmt.Errorf("line %d, column %d is %v", line, i+1, v)
			}
		}
		x = append(x, vals[:cols-1]...)
		y = append(y, vals[cols-1])
		n++
	}
	if n == 0 {
		return nil, nil, 0, 0, errors.New("no data rows")
	}
	return x, y, n, cols - 1, nil
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a file", path)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return io.ReadAll(io.LimitReader(f, limit+1))
}
