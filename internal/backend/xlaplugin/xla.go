//go:build ((linux && amd64) || darwin) && !noxla

package xlaplugin

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flatmin/flatmin/internal/backend"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
)

func init() {
	// Never reach for the network: our machines have none, and a silent download
	// is not what a user asked for.
	xla.EnableAutoInstall(false)
	backend.RegisterXLA(openXLA)
	xlaCompiledIn = true
}

func openXLA(config string) (backends.Backend, error) {
	plugin, _, _ := strings.Cut(config, ",")
	if plugin == "" {
		plugin = "cpu"
	}
	if !filepath.IsAbs(plugin) {
		available := xla.GetAvailablePlugins()
		if !slices.Contains(available, plugin) {
			found := "none"
			if len(available) > 0 {
				found = fmt.Sprint(available)
			}
			return nil, fmt.Errorf("backend xla:%s: no PJRT plugin %q found (found: %s); %s", plugin, plugin, found, backend.PluginHelp)
		}
	}
	b, err := xla.New(config)
	if err != nil {
		return nil, fmt.Errorf("backend xla:%s: %v; %s", config, err, backend.PluginHelp)
	}
	return b, nil
}
