package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/flatmin/flatmin/internal/backend"
)

// Child starts a process that measures one row, so that the row's peak RSS
// is its own and not the largest of the rows before it. The process is Path
// with Args and then the row's spec (one JSON argument); it must pass that
// spec to ChildMain and exit 0 once ChildMain has printed the result.
// `flatmin bench` re-executes itself as `flatmin bench --child SPEC`.
type Child struct {
	Path string
	Args []string
	Env  []string // added to this process's environment
}

// spec is what the parent hands its child.
type spec struct {
	Row     Row     `json:"row"`
	Options Options `json:"options"`
}

// Measure runs row in a child process and returns the child's result, with
// PeakRSSBytes its peak resident set as the kernel reports it (getrusage's
// ru_maxrss of the child; 0 where the system has none).
func (c Child) Measure(ctx context.Context, row Row, opt Options) (Result, error) {
	data, err := json.Marshal(spec{Row: row, Options: opt})
	if err != nil {
		return Result{}, err
	}
	cmd := exec.CommandContext(ctx, c.Path, append(slices.Clone(c.Args), string(data))...)
	if c.Env != nil {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := lastLine(stderr.String()); msg != "" {
			return Result{}, errors.New(strings.TrimPrefix(msg, "flatmin bench: "))
		}
		return Result{}, fmt.Errorf("measuring process: %v", err)
	}
	var res Result
	line := lastLine(stdout.String())
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return Result{}, fmt.Errorf("measuring process printed %q, not a result: %v", line, err)
	}
	res.PeakRSSBytes = peakRSS(cmd.ProcessState)
	return res, nil
}

// ChildMain is the child's side of Child.Measure: it measures the row spec
// names, on a backend of its own, and prints the Result as one JSON line.
func ChildMain(specJSON string, stdout io.Writer) error {
	var s spec
	dec := json.NewDecoder(strings.NewReader(specJSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("bad row spec: %v", err)
	}
	b, err := backend.Open(s.Options.Backend)
	if err != nil {
		return err
	}
	res, err := Measure(b, s.Row, s.Options)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
