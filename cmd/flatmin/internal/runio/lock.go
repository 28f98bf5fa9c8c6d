package runio

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the lock file a flatmin process holds inside a directory it
// writes (a run, a comparison, a reproduction) for as long as it writes it.
const LockFile = ".lock"

// InUseError says that another process holds a directory's lock.
type InUseError struct {
	Dir string
	PID int // 0 when the holder has not written its pid yet
}

func (e *InUseError) Error() string {
	pid := "pid unknown"
	if e.PID > 0 {
		pid = "pid " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("%s is in use by another flatmin process (%s)", e.Dir, pid)
}

// Lock is an exclusive lock on a directory: flock(2) on dir/.lock, which the
// kernel drops when the process dies, so a killed run leaves no stale lock.
type Lock struct {
	f    *os.File
	path string
}

// TryLock takes dir's lock without waiting; an *InUseError says another
// process (or another Lock in this one) holds it. It creates dir/.lock.
func TryLock(dir string) (*Lock, error) {
	path := filepath.Join(dir, LockFile)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := flock(f); err != nil {
			f.Close()
			if errors.Is(err, errLocked) {
				return nil, &InUseError{Dir: dir, PID: readPID(path)}
			}
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		// A holder unlinks the file before it lets go: a lock taken on an
		// unlinked file locks nothing, so take the one now at path instead.
		if same(f, path) {
			l := &Lock{f: f, path: path}
			if err := f.Truncate(0); err == nil {
				_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			return l, nil
		}
		f.Close()
	}
}

// Unlock removes the lock file and releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

func readPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}
