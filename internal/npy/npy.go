// Package npy reads and writes NumPy's .npy format, the one home of the
// format for the library (model reads users' arrays) and the app (run
// directories, checkpoints, figures): headers are checked before any data is
// read, reads are bounded by what the header or the file's size says, and
// writes stream rows so that an array formed block by block is never whole in
// memory.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/numpy"
)

// MaxBytes bounds the data of one array: 4 GiB.
const MaxBytes = 1 << 32

var npyShapeRE = regexp.MustCompile(`'shape'\s*:\s*\(([^)]*)\)`)
var npyDescrRE = regexp.MustCompile(`'descr'\s*:\s*'([^']*)'`)

// Read reads a numeric .npy array as float64 values with its dimensions.
// The header is read and checked first; the data is then read only as far
// as the header says, and a regular file must hold exactly that much (a
// pipe or device is read up to that bound, no further).
func Read(path string) ([]float64, []int, error) {
	f, size, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	values, dims, err := ReadFrom(bufio.NewReaderSize(f, 1<<16), size)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return values, dims, nil
}

// ReadFrom reads one .npy array of size bytes from r (size < 0: unknown, a
// stream, read only as far as the header says and what arrives). A
// little-endian float64 array in C order of known size, what flatmin writes,
// is read straight into its values, a chunk at a time: reading an array
// costs the array, not its bytes beside it as well.
func ReadFrom(r io.Reader, size int64) ([]float64, []int, error) {
	head, dims, count, itemSize, err := readNpyHead(r)
	if err != nil {
		return nil, nil, err
	}
	if size >= 0 && plainF8(head) {
		if total := int64(len(head)) + int64(count)*8; size != total {
			return nil, nil, npySizeError(size-int64(len(head)), count, itemSize)
		}
		values, err := readF8(r, count)
		if err != nil {
			return nil, nil, fmt.Errorf("reading the .npy data: %w", err)
		}
		return values, dims, nil
	}
	data, err := readNpyRest(r, head, size, count, itemSize)
	if err != nil {
		return nil, nil, err
	}
	return Decode(data)
}

var npyFortranRE = regexp.MustCompile(`'fortran_order'\s*:\s*True`)

// plainF8 reports whether a .npy header (prefix included) declares
// little-endian float64 values in C order.
func plainF8(head []byte) bool {
	m := npyDescrRE.FindSubmatch(head)
	return m != nil && string(m[1]) == "<f8" && !npyFortranRE.Match(head)
}

// ReadTensorFrom is ReadFrom into a float64 GoMLX tensor, which a plain
// float64 array of known size is read into in place: no second copy of it.
func ReadTensorFrom(r io.Reader, size int64) (*tensors.Tensor, error) {
	head, dims, count, itemSize, err := readNpyHead(r)
	if err != nil {
		return nil, err
	}
	if size >= 0 && plainF8(head) {
		if total := int64(len(head)) + int64(count)*8; size != total {
			return nil, npySizeError(size-int64(len(head)), count, itemSize)
		}
		t := tensors.FromShape(shapes.Make(dtypes.Float64, dims...))
		var rerr error
		if err := tensors.MutableFlatData(t, func(flat []float64) { rerr = readF8Into(r, flat) }); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, fmt.Errorf("reading the .npy data: %w", rerr)
		}
		return t, nil
	}
	data, err := readNpyRest(r, head, size, count, itemSize)
	if err != nil {
		return nil, err
	}
	values, dims, err := Decode(data)
	if err != nil {
		return nil, err
	}
	return tensors.FromFlatDataAndDimensions(values, dims...), nil
}

// readF8 reads count little-endian float64 values from r in chunks.
func readF8(r io.Reader, count int) ([]float64, error) {
	out := make([]float64, count)
	return out, readF8Into(r, out)
}

// readF8Into fills out with little-endian float64 values read from r in chunks.
func readF8Into(r io.Reader, out []float64) error {
	count := len(out)
	buf := make([]byte, 1<<16)
	for i := 0; i < count; {
		k := min(count-i, len(buf)/8)
		if _, err := io.ReadFull(r, buf[:8*k]); err != nil {
			return err
		}
		for j := range k {
			out[i+j] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*j:]))
		}
		i += k
	}
	return nil
}

// Open opens a user's input file (model's CSV reader uses it too); size is its length for a regular file, -1
// when unknown (a pipe, a device, an empty-looking /proc file).
func Open(path string) (*os.File, int64, error) {
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

// Shape reads only the header of a .npy file and returns its dimensions.
func Shape(path string) ([]int, error) {
	f, _, err := Open(path)
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

// readNpyRest reads the data after a .npy header head: exactly what it
// declares. size is the file's length, -1 if unknown.
func readNpyRest(r io.Reader, head []byte, size int64, count, itemSize int) ([]byte, error) {
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

// Decode parses the bytes of a .npy file. It checks the header against the
// data length before GoMLX's reader allocates anything, and accepts only
// little-endian (or single-byte) numeric arrays in C order or Fortran order.
func Decode(data []byte) (values []float64, dims []int, err error) {
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
	if plainF8(data[:len(data)-len(body)]) {
		values, err := readF8(bytes.NewReader(body), count)
		return values, dims, err
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
		if v > MaxBytes || v > 0 && count > MaxBytes/v {
			return nil, "", 0, 0, fmt.Errorf("the .npy header declares an array too large to read (shape (%s))", sm[1])
		}
		count *= v
		dims = append(dims, v)
	}
	itemSize, ok := map[string]int{"f8": 8, "f4": 4, "f2": 2, "i8": 8, "i4": 4, "i2": 2, "i1": 1, "u8": 8, "u4": 4, "u2": 2, "u1": 1}[strings.TrimLeft(descr, "<|=")]
	if !ok {
		return nil, "", 0, 0, fmt.Errorf("unsupported dtype %q: want a float or integer array", descr)
	}
	if int64(count)*int64(itemSize) > MaxBytes {
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

// Encode returns the .npy bytes of a float64 array with the given dimensions.
func Encode(values []float64, dims ...int) ([]byte, error) {
	var buf bytes.Buffer
	if err := Write(&buf, dims, func(emit func([]float64) error) error { return emit(values) }); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Write writes a float64 .npy (version 1.0, C order) of the given shape
// whose values are produced by rows, which passes them to emit in order and
// in pieces of any size: an array formed block by block is never whole in memory.
func Write(w io.Writer, dims []int, rows func(emit func([]float64) error) error) error {
	return write(w, dims, false, rows)
}

// WriteFortran is Write for an array whose values rows passes in Fortran
// (column-major) order, which the header says: a matrix streamed as its
// transpose's rows, e.g. Z [n, m] from Zᵀ's rows. Readers (NumPy, Decode)
// give it back in C order.
func WriteFortran(w io.Writer, dims []int, rows func(emit func([]float64) error) error) error {
	return write(w, dims, true, rows)
}

func write(w io.Writer, dims []int, fortran bool, rows func(emit func([]float64) error) error) error {
	shape := make([]string, len(dims))
	size := 1
	for i, d := range dims {
		shape[i] = strconv.Itoa(d)
		size *= d
	}
	tuple := "(" + strings.Join(shape, ", ") + ")"
	if len(dims) == 1 {
		tuple = "(" + shape[0] + ",)"
	}
	order := "False"
	if fortran {
		order = "True"
	}
	header := "{'descr': '<f8', 'fortran_order': " + order + ", 'shape': " + tuple + ", }"
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	pre := []byte("\x93NUMPY\x01\x00")
	pre = binary.LittleEndian.AppendUint16(pre, uint16(len(header)))
	if _, err := w.Write(append(pre, header...)); err != nil {
		return err
	}
	written := 0
	buf := make([]byte, 0, 1<<16)
	err := rows(func(vs []float64) error {
		for len(vs) > 0 {
			k := min(len(vs), cap(buf)/8)
			buf = buf[:8*k]
			for i, v := range vs[:k] {
				binary.LittleEndian.PutUint64(buf[8*i:], math.Float64bits(v))
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			written += k
			vs = vs[k:]
		}
		return nil
	})
	if err != nil {
		return err
	}
	if written != size {
		return fmt.Errorf("npy: %d values written for shape %v (%d)", written, dims, size)
	}
	return nil
}
