package sweep

import (
	"fmt"
	"strings"
)

// Slurm holds the options passed through to the array job.
type Slurm struct {
	Partition string // #SBATCH --partition, "" for the cluster's default
	Time      string // #SBATCH --time
	Mem       string // #SBATCH --mem
}

// Sbatch is the array job for n runs: task i runs `flatmin sweep ARGS --task
// i` in workdir, where the relative paths in args were given. exe and args
// must be valid on the compute nodes (a shared filesystem).
func Sbatch(n int, exe, workdir, logDir string, args []string, o Slurm) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	b.WriteString("#SBATCH --job-name=flatmin-sweep\n")
	fmt.Fprintf(&b, "#SBATCH --array=0-%d\n", n-1)
	fmt.Fprintf(&b, "#SBATCH --output=%s/%%A_%%a.out\n", logDir)
	for _, kv := range [][2]string{{"partition", o.Partition}, {"time", o.Time}, {"mem", o.Mem}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "#SBATCH --%s=%s\n", kv[0], kv[1])
		}
	}
	b.WriteString("# Written by flatmin sweep --slurm: one array task per run; a task whose\n")
	b.WriteString("# run has finished exits at once, an interrupted one resumes.\n")
	b.WriteString("set -eu\n")
	fmt.Fprintf(&b, "cd %s\n", Quote(workdir))
	b.WriteString("exec " + Quote(exe) + " sweep")
	for _, a := range args {
		b.WriteString(" " + Quote(a))
	}
	b.WriteString(` --task "$SLURM_ARRAY_TASK_ID" --quiet` + "\n")
	return b.String()
}

// Quote quotes s for bash when it needs it.
func Quote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
