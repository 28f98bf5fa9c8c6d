//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sweep

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
)

// locked reports whether a process holds dir's run lock, without creating
// the lock file; a shared lock taken and dropped at once is the probe.
func locked(dir string) bool {
	f, err := os.Open(filepath.Join(dir, runio.LockFile))
	if err != nil {
		return false
	}
	defer f.Close()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
