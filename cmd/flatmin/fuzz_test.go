package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/spf13/pflag"
)

// FuzzParseTrain feeds arbitrary command lines (arguments separated by NUL)
// to train's flag parsing: it must return a config or an input error, never panic.
func FuzzParseTrain(f *testing.F) {
	for _, s := range []string{
		"--trainer\x00sam1\x00--rho\x000.1", "--activation\x00odd\x00--k\x003", "--m\x000", "--eta=-1", "--labels\x00teacher:2",
		"--steps\x001e3", "--nu\x00NaN", "--resume\x00x\x00--out\x00y", "--snapshots\x00-1", "--help", "--", "stray", "--sam-batch\x000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		args := strings.Split(line, "\x00")
		_, err := parseTrain(args, io.Discard)
		var ie *runner.InputError
		if err != nil && !errors.As(err, &ie) && !errors.Is(err, pflag.ErrHelp) {
			t.Fatalf("%q: error %v is not an input error", args, err)
		}
	})
}

func FuzzParseParam(f *testing.F) {
	for _, s := range []string{"riemannian.eta=0.5", "sam1.sam_batch=3", "gd.steps=-1", "x.y=", "=", "a.b.c=1", "gd.seed=18446744073709551616"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := runner.ParseParam(s)
		if err != nil {
			return
		}
		cfg := runner.DefaultConfig()
		_ = p.Apply(&cfg)
	})
}
