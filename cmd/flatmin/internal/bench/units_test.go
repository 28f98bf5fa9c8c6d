package bench

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
)

// childEnv makes this test binary act as a bench child (see TestMain).
const childEnv = "FLATMIN_BENCH_CHILD"

// TestMain lets the test binary serve as the child process of Child.Measure:
// with childEnv set it measures the row its last argument names and exits.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if err := ChildMain(os.Args[len(os.Args)-1], os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "flatmin bench: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func testBackend(t testing.TB) backends.Backend {
	b, err := backend.Shared()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fastOptions time a row in milliseconds.
func fastOptions() Options {
	opt := DefaultOptions()
	opt.MinTime, opt.Repeats = time.Millisecond, 3
	return opt
}

func TestFlopsAgainstHandCounts(t *testing.T) {
	s := Size{M: 10, D: 3, N: 3} // nmd = 90, nm = 30, md = 30, n²m = 90
	cases := []struct {
		name      string
		got, want float64
	}{
		// 4nmd + 10nm + 2md = 360 + 300 + 60
		{"labelnoise theta", LabelNoiseFlops(trainers.EngineTheta, s), 720},
		// 2n²m + 12nm = 180 + 360
		{"labelnoise feature", LabelNoiseFlops(trainers.EngineFeature, s), 540},
		// Θ engine: forward = direction = jv = 180, move = normSq = 60, JJᵀ = 180.
		// gradF 180+900+180+180+180 = 1620, project 180+180+60+300 = 720, move 60,
		// residual 180+180+240 = 600, 3 corrections (360+180+60+180+450) = 3690,
		// 4 solves (9+18) = 108.
		{"riemannian theta", RiemannianFlops(trainers.EngineTheta, s), 6798},
		// feature engine: forward = direction = 0, move 180+60 = 240, jv = normSq = 180.
		// gradF 0+900+0+180+180 = 1260, project 0+0+180+300 = 480, move 240,
		// residual 0+180+240 = 420, 3 corrections (0+0+240+180+450) = 2610, solves 108.
		{"riemannian feature", RiemannianFlops(trainers.EngineFeature, s), 5118},
		// K(2nmd + 5nm) + 2nmd + 10nm = 10 (180 + 150) + 180 + 300
		{"hutchinson", HutchinsonFlops(10, s), 3780},
		// S = min(50, md) = 30: 30 (360 + 240) + 180 + 300 + 2·30·30·31
		{"lanczos", LanczosFlops(s), 74280},
		{"fig1a is a labelnoise step", StepFlops(Fig1a, trainers.EngineFeature, s, 10), 540},
		{"tts is a riemannian step", StepFlops(TTS, trainers.EngineTheta, s, 10), 6798},
		// The reference size: 4·32·1000·64 + 10·32·1000 + 2·1000·64.
		{"labelnoise theta (1000,64,32)", LabelNoiseFlops(trainers.EngineTheta, Size{1000, 64, 32}), 8_640_000},
	}
	for _, c := range cases {
		if math.Abs(c.got-c.want) > 1e-9*c.want {
			t.Errorf("%s: %v flops, want %v", c.name, c.got, c.want)
		}
	}
	if !math.IsNaN(StepFlops("nope", "", s, 1)) {
		t.Error("an unknown work has a flop count")
	}
}

func TestParseSizes(t *testing.T) {
	good := []struct {
		in   string
		want []Size
	}{
		{"10,3,3", []Size{{10, 3, 3}}},
		{" 10, 3 ,3 ", []Size{{10, 3, 3}}},
		{"10,3,3,1000,64,32", []Size{{10, 3, 3}, {1000, 64, 32}}},
	}
	for _, c := range good {
		got, err := ParseSizes(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseSizes(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	bad := []struct{ in, want string }{
		{"", "integer"},
		{"10,3", "multiple of 3"},
		{"10,3,3,4", "multiple of 3"},
		{"0,3,3", "positive"},
		{"10,-3,3", "positive"},
		{"a,3,3", `"a"`},
		{"1.5,3,3", `"1.5"`},
		{"10,,3", "integer"},
		{"10 3 3", "integer"},
	}
	for _, c := range bad {
		if got, err := ParseSizes(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSizes(%q) = %v, %v; want an error mentioning %s", c.in, got, err, c.want)
		}
	}
}

func TestParseWorksAndPlan(t *testing.T) {
	all, err := ParseWorks("")
	if err != nil || !slices.Equal(all, Works) {
		t.Fatalf("ParseWorks(\"\") = %v, %v", all, err)
	}
	got, err := ParseWorks("tts, LabelNoise,labelnoise")
	if err != nil || !slices.Equal(got, []string{LabelNoise, TTS}) {
		t.Errorf("ParseWorks = %v, %v; want [labelnoise tts] in Works order, once each", got, err)
	}
	for _, in := range []string{"adam", "labelnoise,sgd", ","} {
		if _, err := ParseWorks(in); err == nil {
			t.Errorf("ParseWorks(%q) accepted", in)
		}
	}
	if rows := Plan(all, nil); len(rows) != 9 || rows[3] != (Row{LabelNoise, Size{100000, 256, 64}}) || rows[6] != (Row{Lanczos, Size{1000, 64, 32}}) || rows[8] != (Row{TTS, fig1aSize}) {
		t.Errorf("default plan %v", rows)
	}
	rows := Plan([]string{LabelNoise, Hutchinson, Fig1a}, []Size{{5, 2, 2}, {7, 3, 1}})
	want := []Row{{LabelNoise, Size{5, 2, 2}}, {LabelNoise, Size{7, 3, 1}}, {Hutchinson, Size{5, 2, 2}}, {Hutchinson, Size{7, 3, 1}}, {Fig1a, Size{10, 3, 3}}}
	if !slices.Equal(rows, want) {
		t.Errorf("plan with sizes %v, want %v", rows, want)
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{1, 100, 2, 3, 1000}, 3}, // outliers do not move it
	}
	for _, c := range cases {
		in := slices.Clone(c.in)
		if got := Median(in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("Median reordered its input: %v", in)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median of nothing is not NaN")
	}
}

func TestReferenceAndFormat(t *testing.T) {
	opt := DefaultOptions()
	if s, ok := Reference(Row{LabelNoise, Size{10, 3, 3}}, opt); !ok || s != 24e-6 {
		t.Errorf("labelnoise (10,3,3) reference %v %v", s, ok)
	}
	if s, ok := Reference(Row{Fig1a, fig1aSize}, opt); !ok || math.Abs(s*4.8e6-119) > 1e-9 {
		t.Errorf("fig1a reference %v per step, want 119 s / 4.8M", s)
	}
	opt.Probes = 5
	if _, ok := Reference(Row{Hutchinson, Size{1000, 64, 32}}, opt); ok {
		t.Error("a Hutchinson reference for 5 probes; PyTorch's is for 10")
	}
	if _, ok := Reference(Row{LabelNoise, Size{11, 3, 3}}, opt); ok {
		t.Error("a reference for a size PyTorch was not timed at")
	}
	for s, want := range map[float64]string{24e-6: "24 µs", 0.72e-3: "720 µs", 3.6e-3: "3.6 ms", 0.413: "413 ms", 119: "119 s", 5e-8: "50 ns"} {
		if got := FormatSeconds(s); got != want {
			t.Errorf("FormatSeconds(%v) = %q, want %q", s, got, want)
		}
	}
}

func TestOptionsCheck(t *testing.T) {
	for name, mod := range map[string]func(*Options){
		"repeats":   func(o *Options) { o.Repeats = 0 },
		"min-time":  func(o *Options) { o.MinTime = -time.Second },
		"probes":    func(o *Options) { o.Probes = 0 },
		"fuse":      func(o *Options) { o.Fuse = -1 },
		"fig1a":     func(o *Options) { o.Fig1aSteps = 0 },
		"tts-steps": func(o *Options) { o.TTSMaxSteps = 0 },
	} {
		o := DefaultOptions()
		mod(&o)
		if o.Check() == nil {
			t.Errorf("%s: bad options accepted", name)
		}
	}
	if err := DefaultOptions().Check(); err != nil {
		t.Error(err)
	}
}

// Every work measures in-process on a small size: positive times, the
// flops over the time, the reference where there is one.
func TestMeasureEveryWork(t *testing.T) {
	b := testBackend(t)
	opt := fastOptions()
	opt.Fig1aSteps = 3000
	small := Size{M: 10, D: 3, N: 3}
	for _, work := range Works {
		t.Run(work, func(t *testing.T) {
			row := Row{work, small}
			res, err := Measure(b, row, opt)
			if err != nil {
				t.Fatal(err)
			}
			if res.Work != work || res.M != 10 || res.D != 3 || res.N != 3 || res.Engine == "" || res.Backend != backend.Resolve("") {
				t.Errorf("result %+v", res)
			}
			if !(res.MedianSeconds > 0) || !(res.StepsPerSecond > 0) || !(res.GFlops > 0) || res.PeakRSSBytes <= 0 {
				t.Errorf("result %+v", res)
			}
			perStep := res.MedianSeconds
			if work == TTS {
				if res.Steps <= 0 || res.Steps > opt.TTSMaxSteps {
					t.Errorf("tts took %d steps", res.Steps)
				}
				perStep /= float64(res.Steps)
			} else if res.Steps != 0 {
				t.Errorf("%s reports steps %d", work, res.Steps)
			}
			flops := StepFlops(work, res.Engine, small, opt.Probes)
			if math.Abs(res.GFlops-flops/perStep/1e9) > 1e-9*res.GFlops || math.Abs(res.StepsPerSecond*perStep-1) > 1e-9 {
				t.Errorf("GFLOP/s %v or steps/s %v does not match %v flops in %v s", res.GFlops, res.StepsPerSecond, flops, perStep)
			}
			ref, ok := Reference(row, opt)
			if ok != (res.ReferenceSeconds > 0) || (ok && math.Abs(res.Speedup-ref/res.MedianSeconds) > 1e-9*res.Speedup) {
				t.Errorf("reference %v (%v), result %v × %v", ref, ok, res.ReferenceSeconds, res.Speedup)
			}
		})
	}
}

// The engine asked for is the engine reported, and a bad one is refused.
func TestEngine(t *testing.T) {
	b := testBackend(t)
	for _, engine := range []string{trainers.EngineTheta, trainers.EngineFeature} {
		opt := fastOptions()
		opt.Engine = engine
		res, err := Measure(b, Row{LabelNoise, Size{10, 3, 3}}, opt)
		if err != nil || res.Engine != engine {
			t.Errorf("--engine %s: engine %q, %v", engine, res.Engine, err)
		}
	}
	opt := fastOptions()
	opt.Engine = "fast"
	if _, err := Measure(b, Row{LabelNoise, Size{10, 3, 3}}, opt); err == nil || !strings.Contains(err.Error(), "fast") {
		t.Errorf("--engine fast: %v", err)
	}
}

// A tts run that cannot reach the tolerance in its budget fails, saying so.
func TestTTSFailsWithinBudget(t *testing.T) {
	opt := fastOptions()
	opt.TTSMaxSteps, opt.Repeats = 5, 1
	_, err := Measure(testBackend(t), Row{TTS, fig1aSize}, opt)
	if err == nil || !strings.Contains(err.Error(), "--tts-max-steps") {
		t.Errorf("tts with 5 steps: %v", err)
	}
}

// The child path: this test binary re-executed as the child (TestMain)
// measures the row and the parent reads its peak RSS from the kernel.
func TestChild(t *testing.T) {
	c := Child{Path: os.Args[0], Args: []string{"-test.run=^$"}, Env: []string{childEnv + "=1"}}
	opt := fastOptions()
	opt.Backend = backend.Resolve("")
	res, err := c.Measure(context.Background(), Row{LabelNoise, Size{10, 3, 3}}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Work != LabelNoise || !(res.MedianSeconds > 0) || res.ReferenceSeconds != 24e-6 {
		t.Errorf("child result %+v", res)
	}
	// A Go process that has compiled and run a graph holds more than 4 MiB,
	// and this small row holds far less than 2 GiB.
	if res.PeakRSSBytes < 4<<20 || res.PeakRSSBytes > 2<<30 {
		t.Errorf("child peak RSS %d bytes", res.PeakRSSBytes)
	}
	// A failing child's message comes back as the error.
	_, err = c.Measure(context.Background(), Row{"nope", Size{1, 1, 1}}, opt)
	if err == nil || !strings.Contains(err.Error(), `unknown work "nope"`) || strings.HasPrefix(err.Error(), "flatmin bench:") {
		t.Errorf("failing child: %v", err)
	}
}

func TestTable(t *testing.T) {
	var buf bytes.Buffer
	opt := DefaultOptions()
	tab := NewTable(&buf, opt)
	tab.Row(Result{Work: LabelNoise, M: 10, D: 3, N: 3, Engine: "feature", Backend: "go:ops_sequential", MedianSeconds: 12e-6,
		StepsPerSecond: 1 / 12e-6, GFlops: 0.045, PeakRSSBytes: 40 << 20, ReferenceSeconds: 24e-6, Speedup: 2})
	tab.Row(Result{Work: Fig1a, M: 10, D: 3, N: 3, Engine: "feature", Backend: "go", MedianSeconds: 10e-6, ReferenceSeconds: 119 / 4.8e6, Speedup: 2.48})
	tab.Row(Result{Work: TTS, M: 10, D: 3, N: 3, Engine: "feature", Backend: "go", MedianSeconds: 0.03, Steps: 300})
	tab.Close()
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("want header, 3 rows, 2 notes:\n%s", out)
	}
	for _, want := range []string{"PyTorch", "speedup", "12 µs", "24 µs", "2.00×", "40 MiB", "100 µs", "48.0 s", "(PyTorch: 119 s)", "after 300 Riemannian steps, 30 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Aligned: the speedup column ends at the same place in the header and the first row.
	if len([]rune(lines[0])) != len([]rune(lines[1])) {
		t.Errorf("header and row differ in width:\n%s\n%s", lines[0], lines[1])
	}
}
