package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
	"github.com/gomlx/gomlx/backends"
)

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "version", stdout)
	if err := parse(fs, args); err != nil {
		return err
	}
	gomlx := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/gomlx/gomlx" {
				gomlx = dep.Version
			}
		}
	}
	fmt.Fprintf(stdout, "flatmin %s (%s, GoMLX %s)\n", runner.Version, runtime.Version(), gomlx)
	fmt.Fprintf(stdout, "backends compiled in: %v; in use by default: %s\n", backends.List(), backend.Resolve(""))
	fmt.Fprintf(stdout, "XLA: %s\n", backend.PluginHelp)
	return nil
}
