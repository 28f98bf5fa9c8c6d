package backend

import (
	"strings"
	"testing"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func TestResolve(t *testing.T) {
	t.Setenv(EnvVar, "")
	if got := Resolve(""); got != Default {
		t.Errorf("Resolve(\"\") = %q, want %q", got, Default)
	}
	t.Setenv(EnvVar, "go:ops_parallel")
	if got := Resolve(""); got != "go:ops_parallel" {
		t.Errorf("environment ignored: %q", got)
	}
	if got := Resolve("xla:cpu"); got != "xla:cpu" {
		t.Errorf("flag must win over the environment: %q", got)
	}
}

func TestGoConfig(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "ops_sequential",
		"ops_parallel":     "ops_parallel",
		"dotgeneral_small": "ops_sequential,dotgeneral_small",
	} {
		if got := goConfig(in); got != want {
			t.Errorf("goConfig(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestOpenRejects(t *testing.T) {
	for _, spec := range []string{"tpu", "go:no_such_option", "gpu:0"} {
		if _, err := Open(spec); err == nil {
			t.Errorf("Open(%q) succeeded", spec)
		}
	}
}

// Without the xlaplugin package, asking for XLA says it was left out.
func TestXLANotCompiledIn(t *testing.T) {
	if xlaOpener != nil {
		t.Skip("an XLA opener is registered")
	}
	if _, err := Open("xla:cpu"); err == nil || !strings.Contains(err.Error(), "noxla") {
		t.Errorf("want an error saying XLA was left out, got %v", err)
	}
}

// Many steps of a graph with independent matrix products running side by
// side: SimpleGo's parallel mode could deadlock here on 2 cores. A hang fails
// the test through the watchdog rather than stalling CI.
func TestConcurrentMatmulsDoNotHang(t *testing.T) {
	b, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	step := MustNewExec(b, func(a, c *Node) (*Node, *Node) {
		// Four independent products, then a combination.
		p1 := DotGeneral(a, []int{1}, nil, c, []int{0}, nil)
		p2 := DotGeneral(c, []int{1}, nil, a, []int{0}, nil)
		p3 := DotGeneral(a, []int{0}, nil, a, []int{0}, nil)
		p4 := DotGeneral(c, []int{0}, nil, c, []int{0}, nil)
		s := MulScalar(Add(Add(p1, p2), Add(p3, p4)), 1e-3)
		return Tanh(Add(a, s)), Tanh(Sub(c, s))
	})
	data := make([]float64, 24*24)
	for i := range data {
		data[i] = float64(i%7) / 7
	}
	a := tensors.FromFlatDataAndDimensions(data, 24, 24)
	c := tensors.FromFlatDataAndDimensions(append([]float64(nil), data...), 24, 24)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20000 {
			out := step.MustExec(a, c)
			a, c = out[0], out[1]
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("20000 steps did not finish in 5 minutes: deadlock")
	}
}

// BenchmarkSmallStep measures the per-call cost of a small graph (a label-noise
// step's size) in sequential and parallel SimpleGo: why Default is sequential.
func BenchmarkSmallStep(bm *testing.B) {
	for _, spec := range []string{"go:ops_sequential", "go:ops_parallel"} {
		bm.Run(spec, func(bm *testing.B) {
			b, err := Open(spec)
			if err != nil {
				bm.Fatal(err)
			}
			e := MustNewExec(b, func(x, th *Node) *Node {
				z := DotGeneral(x, []int{1}, nil, th, []int{1}, nil)
				g := DotGeneral(Mul(z, z), []int{0}, nil, x, []int{0}, nil)
				return Sub(th, MulScalar(g, 0.01))
			})
			x := tensors.FromFlatDataAndDimensions([]float64{1, 0, 0, 0, 1, 0, 0, 0, 1}, 3, 3)
			th := tensors.FromFlatDataAndDimensions(make([]float64, 30), 10, 3)
			bm.ResetTimer()
			for range bm.N {
				th = e.MustExec(x, th)[0]
			}
		})
	}
}

func TestIsSimpleGo(t *testing.T) {
	b, err := Open("go")
	if err != nil {
		t.Fatal(err)
	}
	if !IsSimpleGo(b) {
		t.Errorf("%s: IsSimpleGo false", b.Name())
	}
	if IsSimpleGo(nil) {
		t.Error("IsSimpleGo(nil) true")
	}
}
