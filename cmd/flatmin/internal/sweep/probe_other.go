//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sweep

import (
	"os"
	"path/filepath"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
)

// locked guesses from the lock file's presence where flock(2) is missing.
func locked(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, runio.LockFile))
	return err == nil
}
