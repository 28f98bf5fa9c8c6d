package runio

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A directory's lock is exclusive (two Locks in one process conflict, as two
// processes do), names its holder's pid, and is free again after Unlock,
// which removes the lock file.
func TestTryLockIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l, err := TryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = TryLock(dir)
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Fatalf("second lock: %v, want in use by pid %d", err, os.Getpid())
	}
	if want := dir + " is in use by another flatmin process (pid " + strconv.Itoa(os.Getpid()) + ")"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !os.IsNotExist(err) {
		t.Errorf("lock file left after Unlock: %v", err)
	}
	l2, err := TryLock(dir)
	if err != nil {
		t.Fatalf("lock after Unlock: %v", err)
	}
	l2.Unlock()
}

// A lock file left by a process that died (flock is gone with it) does not
// block the next one.
func TestTryLockTakesStaleLockFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, LockFile), []byte("999999\n"), 0o644)
	l, err := TryLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	data, _ := os.ReadFile(filepath.Join(dir, LockFile))
	if strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file says %q, want this pid", data)
	}
}

func TestTryLockInMissingDirectory(t *testing.T) {
	if _, err := TryLock(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("locked a directory that does not exist")
	}
}
