package xlaplugin

import (
	"strings"
	"testing"
	"time"

	"github.com/flatmin/flatmin/internal/backend"
)

// Without a plugin, asking for XLA must fail at once with directions, never a download.
func TestXLAWithoutPluginSaysHowToPointAtOne(t *testing.T) {
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())
	t.Setenv("LD_LIBRARY_PATH", "")
	start := time.Now()
	_, err := backend.Open("xla:cpu")
	if err == nil {
		t.Skip("a PJRT CPU plugin is installed on this machine")
	}
	if !xlaCompiledIn {
		if !strings.Contains(err.Error(), "noxla") {
			t.Errorf("a -tags noxla build must say XLA was left out: %v", err)
		}
		return
	}
	if !strings.Contains(err.Error(), "PJRT_PLUGIN_LIBRARY_PATH") {
		t.Errorf("error does not say how to point at a plugin: %v", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error spans several lines: %q", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v: did it try the network?", time.Since(start))
	}
}
