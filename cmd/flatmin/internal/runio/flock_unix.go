//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package runio

import (
	"errors"
	"os"
	"syscall"
)

var errLocked = errors.New("locked")

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errLocked
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return err
		}
	}
}
