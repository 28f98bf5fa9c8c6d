package runner

import (
	"strings"
	"testing"
)

// CheckMemory compares the estimate with what the machine allows and, when
// it does not fit, says both figures and where the allowance comes from.
func TestCheckMemory(t *testing.T) {
	defer func(f func() (float64, string)) { memoryAllowed = f }(memoryAllowed)
	memoryAllowed = func() (float64, string) { return 1 << 30, "test" }
	cfg := DefaultConfig()
	if err := cfg.CheckMemory(10, 3, 3); err != nil {
		t.Errorf("Figure 1a refused under 1 GiB: %v", err)
	}
	err := cfg.CheckMemory(10_000_000, 3, 3000)
	if err == nil {
		t.Fatal("a 240 GB Θ was not refused under 1 GiB")
	}
	for _, want := range []string{"needs about", "GiB", "allows 1 GiB (test)", "--m"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	// Θ alone is a lower bound of the estimate, for every engine and trainer.
	for _, tr := range []string{"gd", "labelnoise", "sam1", "penalty", "riemannian"} {
		for _, eng := range []string{"auto", "theta", "feature"} {
			c := DefaultConfig()
			c.Trainer, c.Engine = tr, eng
			if est := c.MemoryEstimate(1_000_000, 64, 256); est < 1e6*256*8 {
				t.Errorf("%s %s: estimate %g below Θ's size", tr, eng, est)
			}
		}
	}
}
