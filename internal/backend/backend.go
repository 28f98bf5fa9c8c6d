// Package backend opens the GoMLX backend flatmin computes on.
//
// The default is GoMLX's pure-Go SimpleGo backend in sequential-ops mode: its
// default parallel mode can deadlock when independent matrix products run at
// once on a 2-core machine, and sequential mode also has a quarter of the
// per-call overhead on our small graphs (see BenchmarkSmallStep). XLA is used
// only when asked for (--backend or GOMLX_BACKEND) and never downloads a plugin.
package backend

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// EnvVar is the environment variable GoMLX reads the backend from.
const EnvVar = backends.ConfigEnvVar // "GOMLX_BACKEND"

// Default is the backend specification used when neither the flag nor EnvVar is set.
const Default = "go:ops_sequential"

// PluginHelp tells a user how to give the XLA backend a PJRT plugin.
const PluginHelp = "flatmin never downloads a PJRT plugin: set PJRT_PLUGIN_LIBRARY_PATH to the folder " +
	"holding pjrt_c_api_cpu_plugin.so (xla:cpu) or pjrt_c_api_cuda_plugin.so (xla:cuda), " +
	"or give the plugin's absolute path as --backend xla:/path/to/plugin.so"

// xlaOpener is set by package xlaplugin when the XLA backend is compiled in
// (not with -tags noxla) and imported (the CLI does).
var xlaOpener func(config string) (backends.Backend, error)

// RegisterXLA makes Open serve "xla:..." specifications with open.
func RegisterXLA(open func(config string) (backends.Backend, error)) { xlaOpener = open }

// Resolve returns the backend specification in force: flag, else EnvVar, else Default.
func Resolve(flag string) string {
	if flag != "" {
		return flag
	}
	if env := os.Getenv(EnvVar); env != "" {
		return env
	}
	return Default
}

// Open returns a backend for a specification "name" or "name:config", where name is
// "go" (SimpleGo) or "xla" (also "stablehlo", "hlo", "shlo"). An empty spec means Resolve("").
func Open(spec string) (backends.Backend, error) {
	spec = Resolve(spec)
	name, config, _ := strings.Cut(spec, ":")
	switch name {
	case simplego.BackendName:
		return simplego.New(goConfig(config))
	case "xla", "stablehlo", "hlo", "shlo":
		if xlaOpener == nil {
			return nil, fmt.Errorf("backend %q: this flatmin was built with -tags noxla, without XLA (or without importing internal/backend/xlaplugin); rebuild without the tag to use it", spec)
		}
		return xlaOpener(config)
	default:
		return nil, fmt.Errorf("unknown backend %q: use go (SimpleGo, the default), xla:cpu or xla:cuda", spec)
	}
}

// goConfig adds ops_sequential unless the user chose an ops mode: see the package doc.
func goConfig(config string) string {
	if strings.Contains(config, "ops_parallel") || strings.Contains(config, "ops_sequential") {
		return config
	}
	if config == "" {
		return "ops_sequential"
	}
	return "ops_sequential," + config
}

var (
	sharedOnce sync.Once
	shared     backends.Backend
	sharedErr  error
)

// Shared returns one process-wide backend for Resolve(""), opened on first use.
// Tests use it so that they do not pay a backend start per test.
func Shared() (backends.Backend, error) {
	sharedOnce.Do(func() { shared, sharedErr = Open("") })
	return shared, sharedErr
}

// IsSimpleGo reports whether b is GoMLX's pure-Go SimpleGo backend, whose
// buffers are host memory: work that its generic kernels do slowly (small
// dense products, broadcasts) can run on the host instead at no transfer cost.
func IsSimpleGo(b backends.Backend) bool {
	_, ok := b.(*simplego.Backend)
	return ok
}
