// Package runio reads and writes a run directory: atomic file writes (temp
// file, fsync, rename), .npy arrays, the JSON summary and the append-only
// metrics.csv.
package runio

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/numpy"
)

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced and then renamed over path: readers see the old file or
// the new one, never half of one.
func WriteFileAtomic(path string, data []byte) error {
	return WriteAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content produced by write, streamed
// through a buffer (large arrays need no second copy in memory).
func WriteAtomic(path string, write func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err := write(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(name, 0o644); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable; errors are ignored where directories cannot be synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// WriteNpy writes a float64 array as .npy, atomically.
func WriteNpy(path string, values []float64, dims ...int) error {
	return WriteAtomic(path, func(w io.Writer) error {
		return npy.Write(w, dims, func(emit func([]float64) error) error { return emit(values) })
	})
}

// WriteTensorNpy writes a tensor as .npy, atomically, straight from its data (GoMLX's writer).
func WriteTensorNpy(path string, t *tensors.Tensor) error {
	return WriteAtomic(path, func(w io.Writer) error { return numpy.ToNpyWriter(t, w) })
}

// WriteJSON writes v as indented JSON, atomically.
func WriteJSON(path string, v any) error {
	data, err := encodeJSON(v)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CSVLog is an append-only CSV file. Each row goes to the file in one write,
// so a crash leaves at most one partial last line (ReadCSVLog drops it).
type CSVLog struct {
	f *os.File
}

// CreateCSVLog creates path (which must not exist) and writes the header.
func CreateCSVLog(path string, header []string) (*CSVLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l := &CSVLog{f: f}
	if err := l.Write(header); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// AppendCSVLog opens an existing log for appending.
func AppendCSVLog(path string) (*CSVLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &CSVLog{f: f}, nil
}

// Write appends one row.
func (l *CSVLog) Write(record []string) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(record); err != nil {
		return err
	}
	w.Flush()
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %w", l.f.Name(), err)
	}
	return nil
}

// Close syncs and closes the log.
func (l *CSVLog) Close() error {
	if err := l.f.Sync(); err != nil {
		l.f.Close()
		return err
	}
	return l.f.Close()
}

// ReadFile reads a run directory's file, which must be a regular file: a
// pipe or device (a link to /dev/zero) is refused unread, and a regular
// file is read no further than its size when opened.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	data := make([]byte, 0, st.Size())
	buf := bytes.NewBuffer(data)
	_, err = io.Copy(buf, io.LimitReader(f, st.Size()))
	return buf.Bytes(), err
}

// ReadCSVLog reads a CSV log: its header and complete rows. A last line
// without its newline (a write cut short) is dropped.
func ReadCSVLog(path string) (header []string, rows [][]string, err error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		data = data[:i+1]
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, nil, fmt.Errorf("%s: empty", path)
	}
	return recs[0], recs[1:], nil
}

// RewriteCSVLog replaces a log's content by header and rows, atomically.
func RewriteCSVLog(path string, header []string, rows [][]string) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(header); err != nil {
		return err
	}
	if err := w.WriteAll(rows); err != nil {
		return err
	}
	return WriteFileAtomic(path, buf.Bytes())
}

// WriteReserved writes like WriteAtomic, and when the disk is full
// (ENOSPC) overwrites path in place instead: its blocks, reserved by an
// earlier version at least as large (see Reserve), take the new content,
// which a full disk cannot give a temporary file. The in-place write is not
// atomic; it is what is left when the alternative is losing the result.
func WriteReserved(path string, write func(w io.Writer) error) error {
	err := WriteAtomic(path, write)
	if err == nil || !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	f, ferr := os.OpenFile(path, os.O_WRONLY, 0)
	if ferr != nil {
		return err
	}
	cw := &countingWriter{w: bufio.NewWriterSize(f, 1<<20)}
	werr := write(cw)
	if werr == nil {
		werr = cw.w.(*bufio.Writer).Flush()
	}
	if werr == nil {
		werr = f.Truncate(cw.n)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("%w (and in place: %v)", err, werr)
	}
	return nil
}

// WriteJSONReserved is WriteJSON through WriteReserved.
func WriteJSONReserved(path string, v any) error {
	data, err := encodeJSON(v)
	if err != nil {
		return err
	}
	return WriteReserved(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Reserve writes v as JSON to path padded with trailing spaces (still valid
// JSON) to at least size bytes, so that a later WriteReserved of up to size
// bytes fits on a full disk.
func Reserve(path string, v any, size int) error {
	data, err := encodeJSON(v)
	if err != nil {
		return err
	}
	if pad := size - len(data); pad > 0 {
		data = append(data, bytes.Repeat([]byte{' '}, pad)...)
	}
	return WriteFileAtomic(path, data)
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// CellFloat is cell i of a CSV row as a number: NaN when the row is short or
// the cell is not a number (a metrics.csv row's empty or null cells).
func CellFloat(row []string, i int) float64 {
	if i < 0 || i >= len(row) {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(row[i], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}
