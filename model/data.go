package model

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/internal/npy"
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
				return Labels{}, fmt.Errorf("label spec %q: %q is not a finite number", s, f)
			}
			nums = append(nums, v)
		}
	}
	want := map[string]int{"uniform": 2, "normal": 2, "const": 1, "teacher": 1}
	n, ok := want[kind]
	if !ok {
		return Labels{}, fmt.Errorf("label spec %q: unknown kind %q, use uniform:LO,HI, normal:MU,SD, const:V or teacher:K", s, kind)
	}
	if len(nums) != n {
		return Labels{}, fmt.Errorf("label spec %q: %s takes %d number(s), got %d", s, kind, n, len(nums))
	}
	l := Labels{Kind: kind, A: nums[0]}
	if n == 2 {
		l.B = nums[1]
	}
	switch {
	case kind == "uniform" && !(l.A <= l.B):
		return Labels{}, fmt.Errorf("label spec %q: need LO ≤ HI", s)
	case kind == "normal" && l.B < 0:
		return Labels{}, fmt.Errorf("label spec %q: the standard deviation must be ≥ 0", s)
	case kind == "teacher":
		if l.A != math.Trunc(l.A) || l.A < 1 || l.A > 1e6 {
			return Labels{}, fmt.Errorf("label spec %q: the teacher's width must be a positive integer", s)
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
			for k := range d {
				x[i*d+k] = rng.Float64()
			}
			if normalizeRow(x[i*d : (i+1)*d]) { // an all-zero row has probability 0: draw again
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

// ReadMatrix reads a 2-D .npy array (or 1-D, as one row per value when cols == 1).
func ReadMatrix(path, what string) (values []float64, rows, cols int, err error) {
	values, dims, err := npy.Read(path)
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
	values, dims, err := npy.Read(path)
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
	f, _, err := npy.Open(path)
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
// maxInputBytes bounds a CSV file, as npy bounds an array (4 GiB).
const maxInputBytes = npy.MaxBytes

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
	if g.total > maxInputBytes {
		g.err = fmt.Errorf("larger than %d bytes", int64(maxInputBytes))
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

// NormalizeRows scales each row of x [n, d] to unit norm (an all-zero row
// stays as it is): the one home of row normalisation (synthetic data,
// --normalize).
func NormalizeRows(x []float64, n, d int) {
	for i := range n {
		normalizeRow(x[i*d : (i+1)*d])
	}
}

// normalizeRow scales row to unit norm and reports whether it could (false
// for an all-zero row, left as it is).
func normalizeRow(row []float64) bool {
	norm := 0.0
	for _, v := range row {
		norm += v * v
	}
	if !(norm > 0) {
		return false
	}
	norm = math.Sqrt(norm)
	for k := range row {
		row[k] /= norm
	}
	return true
}
