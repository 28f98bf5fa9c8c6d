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
// The header is read and checked first; the data is then read only as far
// as the header says, and a regular file must hold exactly that much (a
// pipe or device is read up to that bound, no further).
func ReadNpy(path string) ([]float64, []int, error) {
	f, size, err := openInput(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := readNpyBytes(f, size)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	values, dims, err := DecodeNpy(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return values, dims, nil
}

// openInput opens a user's file; size is its length for a regular file, -1
// when unknown (a pipe, a device, an empty-looking /proc file).
func openInput(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is a directory, not a file", path)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return f, -1, nil
	}
	return f, st.Size(), nil
}

// NpyShape reads only the header of a .npy file and returns its dimensions.
func NpyShape(path string) ([]int, error) {
	f, _, err := openInput(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	_, dims, _, _, err := readNpyHead(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return dims, nil
}

// readNpyHead reads a .npy file's prefix and header from r and returns
// their bytes with the layout they declare.
func readNpyHead(r io.Reader) (head []byte, dims []int, count, itemSize int, err error) {
	pre := make([]byte, 12)
	if n, err := io.ReadFull(r, pre[:10]); err != nil {
		if n == 0 {
			return nil, nil, 0, 0, errors.New("not a .npy file (empty)")
		}
		if string(pre[:n]) != "\x93NUMPY"[:min(n, 6)] {
			return nil, nil, 0, 0, errors.New("not a .npy file (bad magic bytes)")
		}
		return nil, nil, 0, 0, errors.New("truncated .npy header")
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return nil, nil, 0, 0, errors.New("not a .npy file (bad magic bytes)")
	}
	start := 10
	if pre[6] == 2 || pre[6] == 3 {
		if _, err := io.ReadFull(r, pre[10:12]); err != nil {
			return nil, nil, 0, 0, errors.New("truncated .npy header")
		}
		start = 12
	}
	hlen, _, err := npyHeaderLen(pre[:start])
	if err != nil {
		return nil, nil, 0, 0, err
	}
	head = make([]byte, start+hlen)
	copy(head, pre[:start])
	if _, err := io.ReadFull(r, head[start:]); err != nil {
		return nil, nil, 0, 0, errors.New("truncated .npy header")
	}
	dims, _, count, itemSize, err = npyLayout(string(head[start:]))
	return head, dims, count, itemSize, err
}

// readNpyBytes reads one .npy file from r: the header first, then exactly
// the data it declares. size is the file's length, -1 if unknown.
func readNpyBytes(r io.Reader, size int64) ([]byte, error) {
	head, _, count, itemSize, err := readNpyHead(r)
	if err != nil {
		return nil, err
	}
	body := int64(count) * int64(itemSize)
	total := int64(len(head)) + body
	if size >= 0 && size != total {
		return nil, npySizeError(size-int64(len(head)), count, itemSize)
	}
	if size >= 0 {
		data := make([]byte, total)
		copy(data, head)
		if _, err := io.ReadFull(r, data[len(head):]); err != nil {
			return nil, fmt.Errorf("reading the .npy data: %w", err)
		}
		return data, nil
	}
	// Unknown size: read at most one byte more than declared, growing as
	// data arrives, so a stream that lies costs what it sent, not what it claimed.
	var buf bytes.Buffer
	buf.Write(head)
	n, err := io.Copy(&buf, io.LimitReader(r, body+1))
	if err != nil {
		return nil, fmt.Errorf("reading the .npy data: %w", err)
	}
	if n != body {
		return nil, npySizeError(n, count, itemSize)
	}
	return buf.Bytes(), nil
}

// npySizeError says how got bytes of data disagree with count values of itemSize bytes.
func npySizeError(got int64, count, itemSize int) error {
	want := int64(count) * int64(itemSize)
	if got < want {
		return fmt.Errorf("truncated .npy file: its header declares %d values of %d bytes, but only %d bytes of data follow", count, itemSize, got)
	}
	return fmt.Errorf("the .npy file holds more data than its header declares (%d values of %d bytes)", count, itemSize)
}

// DecodeNpy parses the bytes of a .npy file. It checks the header against the
// data length before GoMLX's reader allocates anything, and accepts only
// little-endian (or single-byte) numeric arrays in C order or Fortran order.
func DecodeNpy(data []byte) (values []float64, dims []int, err error) {
	header, body, err := npyHeader(data)
	if err != nil {
		return nil, nil, err
	}
	dims, _, count, itemSize, err := npyLayout(header)
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) != int64(count)*int64(itemSize) {
		return nil, nil, npySizeError(int64(len(body)), count, itemSize)
	}
	if count == 0 {
		return []float64{}, dims, nil // valid, but GoMLX's reader cannot take it
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

// npyLayout reads a .npy header's dimensions, dtype, value count and item size.
func npyLayout(header string) (dims []int, descr string, count, itemSize int, err error) {
	m := npyDescrRE.FindStringSubmatch(header)
	if m == nil {
		return nil, "", 0, 0, errors.New("not a .npy file: the header has no 'descr'")
	}
	descr = m[1]
	if strings.HasPrefix(descr, ">") {
		return nil, "", 0, 0, fmt.Errorf("big-endian array (dtype %q) is not supported: save it little-endian", descr)
	}
	sm := npyShapeRE.FindStringSubmatch(header)
	if sm == nil {
		return nil, "", 0, 0, errors.New("not a .npy file: the header has no 'shape'")
	}
	count = 1
	for _, f := range strings.Split(sm[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, perr := strconv.Atoi(f)
		if perr != nil || v < 0 {
			return nil, "", 0, 0, fmt.Errorf("bad dimension %q in the .npy header", f)
		}
		if v > maxNpyBytes || v > 0 && count > maxNpyBytes/v {
			return nil, "", 0, 0, fmt.Errorf("the .npy header declares an array too large to read (shape (%s))", sm[1])
		}
		count *= v
		dims = append(dims, v)
	}
	itemSize, ok := map[string]int{"f8": 8, "f4": 4, "f2": 2, "i8": 8, "i4": 4, "i2": 2, "i1": 1, "u8": 8, "u4": 4, "u2": 2, "u1": 1}[strings.TrimLeft(descr, "<|=")]
	if !ok {
		return nil, "", 0, 0, fmt.Errorf("unsupported dtype %q: want a float or integer array", descr)
	}
	if int64(count)*int64(itemSize) > maxNpyBytes {
		return nil, "", 0, 0, fmt.Errorf("the .npy header declares an array too large to read (shape (%s))", sm[1])
	}
	return dims, descr, count, itemSize, nil
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
	hlen, start, err := npyHeaderLen(data)
	if err != nil {
		return "", nil, err
	}
	if start+hlen > len(data) {
		return "", nil, errors.New("truncated .npy header")
	}
	return string(data[start : start+hlen]), data[start+hlen:], nil
}

// npyHeaderLen reads the header length from a .npy prefix (magic bytes,
// version, length: 10 bytes, 12 from version 2), and where the header starts.
func npyHeaderLen(pre []byte) (hlen, start int, err error) {
	switch pre[6] {
	case 1:
		return int(binary.LittleEndian.Uint16(pre[8:10])), 10, nil
	case 2, 3:
		if len(pre) < 12 {
			return 0, 0, errors.New("truncated .npy header")
		}
		hlen = int(binary.LittleEndian.Uint32(pre[8:12]))
		if hlen > 0xFFFF {
			return 0, 0, errors.New("the .npy header is too long")
		}
		return hlen, 12, nil
	}
	return 0, 0, fmt.Errorf("unsupported .npy version %d", pre[6])
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
	if dims[0] == 0 || dims[1] == 0 {
		part := "no rows"
		if dims[0] > 0 {
			part = "no columns"
		}
		return nil, 0, 0, fmt.Errorf("%s: %s is empty: shape %v has %s", what, path, dims, part)
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
	if len(values) == 0 {
		return nil, fmt.Errorf("%s: %s is empty (shape %v)", what, path, dims)
	}
	if err := CheckFinite(what, values); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return values, nil
}

// ReadCSV reads data from CSV: one row per data point, the last column is y.
// Blank lines and lines starting with '#' are skipped; a first line that does
// not parse as numbers is taken as a header. The file may be a stream (a
// pipe), but it must be text with lines of at most maxCSVLine bytes.
func ReadCSV(path string) (x []float64, y []float64, n, d int, err error) {
	f, _, err := openInput(path)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	defer f.Close()
	x, y, n, d, err = parseCSV(f)
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("%s: %w", path, err)
	}
	return x, y, n, d, nil
}

// ParseCSV parses CSV bytes as ReadCSV does.
func ParseCSV(data []byte) (x []float64, y []float64, n, d int, err error) {
	return parseCSV(bytes.NewReader(data))
}

// maxCSVLine bounds one line of a CSV file (a row of 10⁴ features in full
// precision is about 250 kB).
const maxCSVLine = 1 << 20

// textGuard passes text through and stops at the first NUL byte (binary
// data), at a line longer than maxCSVLine, or past maxNpyBytes in all.
type textGuard struct {
	r     io.Reader
	line  int
	total int64
	err   error
}

func (g *textGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	for i, b := range p[:n] {
		switch {
		case b == 0:
			g.err = fmt.Errorf("not text (a NUL byte at offset %d): a CSV file is text", g.total+int64(i))
		case b == '\n':
			g.line = 0
		default:
			g.line++
			if g.line > maxCSVLine {
				g.err = fmt.Errorf("a line is longer than %d bytes: not a CSV file of data", maxCSVLine)
			}
		}
		if g.err != nil {
			return 0, g.err
		}
	}
	g.total += int64(n)
	if g.total > maxNpyBytes {
		g.err = fmt.Errorf("larger than %d bytes", int64(maxNpyBytes))
		return 0, g.err
	}
	return n, err
}

func parseCSV(in io.Reader) (x []float64, y []float64, n, d int, err error) {
	guard := &textGuard{r: in}
	r := csv.NewReader(guard)
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	cols := -1
	header := false
	for first := true; ; first = false {
		rec, rerr := r.Read()
		if guard.err != nil {
			return nil, nil, 0, 0, guard.err
		}
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
				header = true
				continue
			}
			return nil, nil, 0, 0, fmt.Errorf("line %d, column %d: %s is not a number", line, bad+1, clip(rec[bad]))
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
	switch {
	case n > 0:
		return x, y, n, cols - 1, nil
	case header:
		return nil, nil, 0, 0, errors.New("no data rows: only a header line")
	case guard.total == 0:
		return nil, nil, 0, 0, errors.New("no data rows: the file is empty")
	}
	return nil, nil, 0, 0, errors.New("no data rows")
}

// clip quotes s for a message, shortened to its first 40 bytes.
func clip(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "..."
	}
	return strconv.Quote(s)
}
