// Package runio reads and writes a run directory: atomic file writes (temp
// file, fsync, rename), .npy arrays, the JSON summary and the append-only
// metrics.csv.
package runio

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/numpy"
)

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, synced and then renamed over path: readers see the old file or
// the new one, never half of one.
func WriteFileAtomic(path string, data []byte) error {
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
	if _, err := tmp.Write(data); err != nil {
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

// EncodeNpy returns the .npy bytes of a float64 array with the given dimensions.
func EncodeNpy(values []float64, dims ...int) ([]byte, error) {
	var buf bytes.Buffer
	t := tensors.FromFlatDataAndDimensions(append([]float64(nil), values...), dims...)
	if err := numpy.ToNpyWriter(t, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteNpy writes a float64 array as .npy, atomically.
func WriteNpy(path string, values []float64, dims ...int) error {
	data, err := EncodeNpy(values, dims...)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// WriteJSON writes v as indented JSON, atomically.
func WriteJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return WriteFileAtomic(path, buf.Bytes())
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

// ReadCSVLog reads a CSV log: its header and complete rows. A last line
// without its newline (a write cut short) is dropped.
func ReadCSVLog(path string) (header []string, rows [][]string, err error) {
	data, err := os.ReadFile(path)
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
