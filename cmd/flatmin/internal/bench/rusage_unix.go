//go:build linux || darwin

package bench

import (
	"os"
	"runtime"
	"syscall"
)

// maxrssBytes converts ru_maxrss to bytes: KiB on Linux, bytes on macOS.
func maxrssBytes(maxrss int64) int64 {
	if runtime.GOOS == "darwin" {
		return maxrss
	}
	return maxrss * 1024
}

// peakRSS is the peak resident set of an exited child.
func peakRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return maxrssBytes(int64(ru.Maxrss))
	}
	return 0
}

// selfPeakRSS is this process's peak resident set so far.
func selfPeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return maxrssBytes(int64(ru.Maxrss))
}
