package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
)

// OutDir is a directory this process creates and writes (a run, a
// comparison, a reproduction), locked from before its first file until
// Close or Discard.
type OutDir struct {
	Path    string
	lock    *runio.Lock
	created string // the topmost directory this process created, "" for none
}

// runFiles mark a directory that holds a flatmin run, comparison or reproduction.
var runFiles = []string{MetricsFile, SummaryFile, CompareFile, ConfigFile, "report.md"}

// ClaimOutDir creates dir (and its missing parents) and locks it, or locks
// an existing empty one; flag names the option for messages. A directory
// that is not empty is refused before anything is written to it, and one
// another flatmin process holds is refused with an *runio.InUseError.
func ClaimOutDir(dir, flag string) (*OutDir, error) {
	o := &OutDir{Path: filepath.Clean(dir)}
	st, err := os.Stat(o.Path)
	switch {
	case err == nil && !st.IsDir():
		return nil, fmt.Errorf("%s %s is not a directory", flag, dir)
	case err == nil:
		// A lock file: a flatmin process may be at work there; say so first.
		if _, err := os.Lstat(filepath.Join(o.Path, runio.LockFile)); err == nil {
			if o.lock, err = runio.TryLock(o.Path); err != nil {
				return nil, lockError(flag, dir, err)
			}
		}
		if err := checkEmpty(o.Path, dir, flag); err != nil {
			o.lock.Unlock()
			return nil, err
		}
	case errors.Is(err, os.ErrNotExist):
		if o.created, err = mkdirs(o.Path); err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
	default:
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if o.lock == nil {
		if o.lock, err = runio.TryLock(o.Path); err != nil {
			o.removeCreated()
			return nil, lockError(flag, dir, err)
		}
	}
	// Another process may have written there before we held the lock.
	if err := checkEmpty(o.Path, dir, flag); err != nil {
		o.lock.Unlock()
		return nil, err
	}
	return o, nil
}

func lockError(flag, dir string, err error) error {
	var inUse *runio.InUseError
	if errors.As(err, &inUse) {
		return err
	}
	return fmt.Errorf("%s %s is not writable: %w", flag, dir, err)
}

// checkEmpty refuses a directory with anything in it but a lock file.
func checkEmpty(path, dir, flag string) error {
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != runio.LockFile {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil
	}
	for _, f := range runFiles {
		if slices.Contains(names, f) {
			return fmt.Errorf("%s %s already holds a run (%s): choose another directory", flag, dir, f)
		}
	}
	if len(names) > 3 {
		names = append(names[:3], "…")
	}
	return fmt.Errorf("%s %s is not empty (%s): choose a new or empty directory", flag, dir, strings.Join(names, ", "))
}

// mkdirs creates path and its missing parents and returns the topmost
// directory it created ("" when another process created path first).
func mkdirs(path string) (string, error) {
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	top := ""
	for k := len(missing) - 1; k >= 0; k-- {
		err := os.Mkdir(missing[k], 0o755)
		switch {
		case err == nil:
			if top == "" {
				top = missing[k]
			}
		case errors.Is(err, os.ErrExist):
			if st, serr := os.Stat(missing[k]); serr != nil || !st.IsDir() {
				return top, err
			}
		default:
			return top, err
		}
	}
	return top, nil
}

// Empty reports whether the directory holds nothing but its lock.
func (o *OutDir) Empty() bool {
	entries, err := os.ReadDir(o.Path)
	return err == nil && (len(entries) == 0 || len(entries) == 1 && entries[0].Name() == runio.LockFile)
}

// Close releases the directory, keeping what was written.
func (o *OutDir) Close() error {
	return o.lock.Unlock()
}

// Discard removes what this process wrote (the directory was empty when
// claimed) and the directories it created, then releases the lock.
func (o *OutDir) Discard() error {
	entries, _ := os.ReadDir(o.Path)
	for _, e := range entries {
		if e.Name() != runio.LockFile {
			os.RemoveAll(filepath.Join(o.Path, e.Name()))
		}
	}
	err := o.lock.Unlock()
	o.removeCreated()
	return err
}

// removeCreated removes the directories this process created, if empty.
func (o *OutDir) removeCreated() {
	if o.created == "" {
		return
	}
	for p := o.Path; ; p = filepath.Dir(p) {
		if os.Remove(p) != nil || p == o.created || filepath.Dir(p) == p {
			return
		}
	}
}
