//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package runio

import (
	"errors"
	"os"
)

var errLocked = errors.New("locked")

// flock is a no-op where flock(2) is missing: directories are not locked there.
func flock(*os.File) error { return nil }
