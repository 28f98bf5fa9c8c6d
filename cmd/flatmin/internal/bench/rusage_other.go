//go:build !(linux || darwin)

package bench

import "os"

// peakRSS is 0 where flatmin does not read the kernel's rusage.
func peakRSS(*os.ProcessState) int64 { return 0 }

// selfPeakRSS is 0 where flatmin does not read the kernel's rusage.
func selfPeakRSS() int64 { return 0 }
