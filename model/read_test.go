//go:build unix

package model

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/flatmin/flatmin/internal/npy"
)

// npyBytes is a little-endian float64 .npy file with the given header shape
// (written as Python writes it) and data.
func npyBytes(shape string, data []float64) []byte {
	h := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }", shape)
	h += strings.Repeat(" ", 63-(10+len(h))%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	binary.Write(&b, binary.LittleEndian, data)
	return b.Bytes()
}

// feedFIFO makes a named pipe at path and writes head, then fill repeated,
// until the reader closes it or limit bytes are written. It returns how many
// bytes the reader took (a lower bound: the pipe buffers up to 64 KiB more).
func feedFIFO(t *testing.T, path string, head, fill []byte, limit int) <-chan int {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("no named pipes:", err)
	}
	done := make(chan int, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			done <- -1
			return
		}
		defer f.Close()
		n, _ := f.Write(head)
		for n < limit {
			k, err := f.Write(fill)
			n += k
			if err != nil {
				break
			}
		}
		done <- n
	}()
	return done
}

// A stream (a pipe, a device) is read only as far as its format allows:
// bad magic bytes or a header's size, for .npy; a sane line length, text,
// for CSV. Unbounded reads used to take up to 4 GiB before any check.
func TestStreamsAreReadBounded(t *testing.T) {
	const limit = 32 << 20 // what the writer offers before giving up
	const bound = 4 << 20  // what a reader may take (pipe buffer included)
	zeros := make([]byte, 64<<10)
	digits := bytes.Repeat([]byte("1"), 64<<10)
	row := bytes.Repeat([]byte("0.5,0.25,1\n"), 4096)
	for _, c := range []struct {
		name       string
		read       func(path string) error
		head, fill []byte
		want       string
	}{
		{"npy zeros", func(p string) error { _, _, err := npy.Read(p); return err }, nil, zeros, ".npy"},
		{"npy header then too much data", func(p string) error { _, _, err := npy.Read(p); return err },
			npyBytes("(2, 2)", []float64{1, 2, 3, 4}), zeros, "more data"},
		{"csv zeros", func(p string) error { _, _, _, _, err := ReadCSV(p); return err }, nil, zeros, "not text"},
		{"csv endless line", func(p string) error { _, _, _, _, err := ReadCSV(p); return err }, nil, digits, "longer than"},
		{"csv header then endless line", func(p string) error { _, _, _, _, err := ReadCSV(p); return err }, []byte("x1,x2,y\n0.5,"), digits, "longer than"},
		// Rows of data stream: the reader takes them all, up to the writer's limit.
		{"csv rows", func(p string) error { _, _, _, _, err := ReadCSV(p); return err }, nil, row, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pipe")
			lim := limit
			if c.want == "" {
				lim = 4 << 20
			}
			taken := feedFIFO(t, path, c.head, c.fill, lim)
			err := c.read(path)
			n := <-taken
			if c.want == "" {
				if err != nil || n < lim {
					t.Errorf("a CSV stream of rows: err %v after %d bytes", err, n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want one mentioning %q", err, c.want)
			}
			if n > bound {
				t.Errorf("read %d bytes of the stream before refusing it (at most %d expected)", n, bound)
			}
		})
	}
}

// Zero-size arrays decode (they are valid .npy), and the readers that need
// data refuse them in words.
func TestZeroSizeArrays(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		shape, want string
		vector      bool
	}{
		{"(0, 3)", "no rows", false},
		{"(0, 0)", "no rows", false},
		{"(3, 0)", "no columns", false},
		{"(0,)", "empty", true},
	} {
		path := filepath.Join(dir, "a.npy")
		os.WriteFile(path, npyBytes(c.shape, nil), 0o644)
		if _, _, err := npy.Read(path); err != nil {
			t.Errorf("%s: ReadNpy: %v", c.shape, err)
		}
		var err error
		if c.vector {
			_, err = ReadVector(path, "--w")
		} else {
			_, _, _, err = ReadMatrix(path, "--x")
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", c.shape, err, c.want)
		}
	}
}
