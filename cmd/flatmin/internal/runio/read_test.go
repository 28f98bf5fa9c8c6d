//go:build unix

package runio

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A run directory's files are regular files: a pipe or device in their
// place is refused without reading it (os.ReadFile would read /dev/zero
// until memory runs out).
func TestReadFileRefusesStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.csv")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("no named pipes:", err)
	}
	const limit = 16 << 20
	taken := make(chan int, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			taken <- -1
			return
		}
		defer f.Close()
		row, n := bytes.Repeat([]byte("1,2,3\n"), 1<<12), 0
		for n < limit {
			k, err := f.Write(row)
			n += k
			if err != nil {
				break
			}
		}
		taken <- n
	}()
	_, _, err := ReadCSVLog(path)
	if n := <-taken; n > 1<<20 {
		t.Errorf("read %d bytes of a pipe", n)
	}
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("err %v, want one saying it is not a regular file", err)
	}
	// A regular file still reads.
	good := filepath.Join(t.TempDir(), "good.csv")
	os.WriteFile(good, []byte("a,b\n1,2\n"), 0o644)
	if h, rows, err := ReadCSVLog(good); err != nil || len(h) != 2 || len(rows) != 1 {
		t.Errorf("regular file: %v %v %v", h, rows, err)
	}
}
