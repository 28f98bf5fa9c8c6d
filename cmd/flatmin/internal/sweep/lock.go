package sweep

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
)

// LockTimeout bounds the wait for the sweep's file lock: it is held only
// while a file is written, so a long wait means something is stuck.
var LockTimeout = 2 * time.Minute

// WithLock runs fn holding the sweep directory's file lock (flock on
// dir/.sweep-lock/.lock, dropped by the kernel if the holder dies), which
// every process takes to write the sweep-level files. Workers of one sweep
// (local or Slurm) and a collecting rerun may run at once; the lock orders
// their writes, and each write is a temporary file renamed into place.
func WithLock(dir string, fn func() error) error {
	ld := filepath.Join(dir, lockDir)
	if err := os.MkdirAll(ld, 0o755); err != nil {
		return err
	}
	deadline := time.Now().Add(LockTimeout)
	for {
		l, err := runio.TryLock(ld)
		if err == nil {
			defer l.Unlock()
			return fn()
		}
		var inUse *runio.InUseError
		if !errors.As(err, &inUse) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waited %v for the lock of %s: %w", LockTimeout, dir, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
