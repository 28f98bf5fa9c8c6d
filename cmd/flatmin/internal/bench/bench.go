// Package bench owns flatmin's performance measurements: which work each row
// of `flatmin bench` times and on which problem, how it is timed (warm-up,
// batches, the median per step), the flop count of one step, the PyTorch
// reference figures shown beside flatmin's, and the child process that gives
// each row a peak RSS of its own. cmd/flatmin's bench command and this
// package's go-test benchmarks call the same code.
package bench

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Works: what a row times.
const (
	// LabelNoise is one label-noise SGD step (η = 0.05, σ = 0.03) on synthetic data.
	LabelNoise = "labelnoise"
	// Riemannian is one step of the projected Riemannian flow of Tr D²L,
	// Gauss–Newton retraction included.
	Riemannian = "riemannian"
	// Hutchinson is one evaluation of Hutchinson's estimate of Tr D²L with
	// Options.Probes probes batched in one graph.
	Hutchinson = "hutchinson"
	// Lanczos is one run of LanczosSteps Lanczos steps for the top LanczosK
	// eigenvalues of D²L (and the smallest), as `flatmin inspect --top-k`
	// runs it: structured Hessian-vector products and full reorthogonalization.
	Lanczos = "lanczos"
	// Fig1a is a whole run of label-noise SGD on Figure 1a (m=10, d=3, n=3,
	// η=0.05, σ=0.03) through trainers.Run; its time per step is total/steps.
	Fig1a = "fig1a"
	// TTS is the time to solution of the Riemannian flow on Figure 1a: from Θ₀
	// (Init's retraction included) until the theory gap falls below Options.TTSTol.
	TTS = "tts"
)

// Works lists every work in the order rows are run.
var Works = []string{LabelNoise, Riemannian, Hutchinson, Lanczos, Fig1a, TTS}

// The lanczos row's k and number of steps.
const (
	LanczosK     = 3
	LanczosSteps = 50
)

// Size is a problem size: m neurons, input dimension d, n data points.
type Size struct {
	M int `json:"m"`
	D int `json:"d"`
	N int `json:"n"`
}

func (s Size) String() string { return fmt.Sprintf("m=%d,d=%d,n=%d", s.M, s.D, s.N) }

// fig1aSize is Figure 1a's size, that of runner.DefaultConfig.
var fig1aSize = Size{M: 10, D: 3, N: 3}

// DefaultSizes are the sizes of the sized works: those of the PyTorch reference.
var DefaultSizes = map[string][]Size{
	LabelNoise: {{10, 3, 3}, {1000, 64, 32}, {10000, 256, 64}, {100000, 256, 64}},
	Riemannian: {{1000, 64, 32}},
	Hutchinson: {{1000, 64, 32}},
	Lanczos:    {{1000, 64, 32}},
}

// Sized reports whether a work runs on sizes one chooses (--sizes); fig1a
// and tts always run on Figure 1a.
func Sized(work string) bool { _, ok := DefaultSizes[work]; return ok }

// Row is one measurement to make: a work on a problem size.
type Row struct {
	Work string `json:"work"`
	Size Size   `json:"size"`
}

// ParseWorks parses a comma-separated list of works ("" means all of them)
// and returns them in Works order without repeats.
func ParseWorks(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(Works), nil
	}
	picked := map[string]bool{}
	for _, w := range strings.Split(s, ",") {
		w = strings.ToLower(strings.TrimSpace(w))
		if w == "" {
			continue
		}
		if !slices.Contains(Works, w) {
			return nil, fmt.Errorf("unknown work %q: use %s", w, strings.Join(Works, ", "))
		}
		picked[w] = true
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("no work given: use %s", strings.Join(Works, ", "))
	}
	var out []string
	for _, w := range Works {
		if picked[w] {
			out = append(out, w)
		}
	}
	return out, nil
}

// ParseSizes parses "m,d,n[,m,d,n...]": a multiple of three positive integers.
func ParseSizes(s string) ([]Size, error) {
	var vals []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("sizes %q: %q is not an integer (want m,d,n[,m,d,n...])", s, f)
		}
		if v <= 0 {
			return nil, fmt.Errorf("sizes %q: %d is not positive", s, v)
		}
		vals = append(vals, v)
	}
	if len(vals)%3 != 0 {
		return nil, fmt.Errorf("sizes %q: %d numbers, not a multiple of 3 (want m,d,n[,m,d,n...])", s, len(vals))
	}
	out := make([]Size, 0, len(vals)/3)
	for i := 0; i < len(vals); i += 3 {
		out = append(out, Size{M: vals[i], D: vals[i+1], N: vals[i+2]})
	}
	return out, nil
}

// Plan lists the rows for the works picked: sized works on sizes (nil: their
// DefaultSizes), fig1a and tts on Figure 1a.
func Plan(works []string, sizes []Size) []Row {
	var rows []Row
	for _, w := range works {
		switch {
		case !Sized(w):
			rows = append(rows, Row{Work: w, Size: fig1aSize})
		case sizes != nil:
			for _, s := range sizes {
				rows = append(rows, Row{Work: w, Size: s})
			}
		default:
			for _, s := range DefaultSizes[w] {
				rows = append(rows, Row{Work: w, Size: s})
			}
		}
	}
	return rows
}

// Options set how rows are built and timed.
type Options struct {
	Backend string `json:"backend"` // backend specification as resolved by internal/backend
	Engine  string `json:"engine"`  // trainers.Config.Engine: "", "auto", "theta" or "feature"
	Fuse    int    `json:"fuse"`    // trainers.Config.Fuse: steps per compiled call, 0 = automatic
	Graphs  bool   `json:"graphs"`  // trainers.Config.Graphs: no host paths on SimpleGo
	// MinTime is the least duration of one timed batch of steps (0: one step per batch).
	MinTime time.Duration `json:"min_time"`
	// Repeats is the number of timed batches whose median is reported (tts: at most 3 runs).
	Repeats int `json:"repeats"`
	// Probes is the number of Hutchinson probes.
	Probes int `json:"probes"`
	// Fig1aSteps is the length of the fig1a run.
	Fig1aSteps int64 `json:"fig1a_steps"`
	// TTSMaxSteps caps the tts run; TTSTol is the theory gap it must reach.
	TTSMaxSteps int64   `json:"tts_max_steps"`
	TTSTol      float64 `json:"tts_tol"`
}

// Defaults.
const (
	DefaultMinTime     = 200 * time.Millisecond
	DefaultRepeats     = 7
	DefaultProbes      = 10
	DefaultFig1aSteps  = 4_800_000 // the paper's Figure 1a run
	DefaultTTSMaxSteps = 20_000
	DefaultTTSTol      = 1e-6
	maxTTSRuns         = 3 // a tts run takes seconds: the median of at most this many
)

// DefaultOptions are `flatmin bench`'s defaults on the default backend.
func DefaultOptions() Options {
	return Options{MinTime: DefaultMinTime, Repeats: DefaultRepeats, Probes: DefaultProbes,
		Fig1aSteps: DefaultFig1aSteps, TTSMaxSteps: DefaultTTSMaxSteps, TTSTol: DefaultTTSTol}
}

// Check validates the options.
func (o Options) Check() error {
	switch {
	case o.MinTime < 0:
		return fmt.Errorf("--min-time must be ≥ 0, got %v", o.MinTime)
	case o.Repeats < 1:
		return fmt.Errorf("--repeats must be at least 1, got %d", o.Repeats)
	case o.Probes < 1:
		return fmt.Errorf("--probes must be at least 1, got %d", o.Probes)
	case o.Fig1aSteps < 1:
		return fmt.Errorf("--fig1a-steps must be at least 1, got %d", o.Fig1aSteps)
	case o.TTSMaxSteps < 1:
		return fmt.Errorf("--tts-max-steps must be at least 1, got %d", o.TTSMaxSteps)
	case !(o.TTSTol > 0):
		return fmt.Errorf("the tts tolerance must be positive, got %v", o.TTSTol)
	case o.Fuse < 0 || o.Fuse > 4096: // train's bound (runner.Config.Check)
		return fmt.Errorf("--fuse must be between 0 (automatic) and 4096, got %d", o.Fuse)
	}
	return nil
}

// Result is one measured row; its JSON is one line of `flatmin bench --json`.
type Result struct {
	Work    string `json:"work"`
	M       int    `json:"m"`
	D       int    `json:"d"`
	N       int    `json:"n"`
	Engine  string `json:"engine"`
	Backend string `json:"backend"`
	// Path is "host" where the trainer steps in Go loops and gonum on the
	// host (the SimpleGo fast paths), else "graphs".
	Path string `json:"path"`
	// MedianSeconds is the median time per step over the timed batches; for
	// tts it is the median time to solution.
	MedianSeconds  float64 `json:"median_seconds"`
	StepsPerSecond float64 `json:"steps_per_second"`
	GFlops         float64 `json:"gflops"` // estimated flops of a step (flops.go) over its median time
	// PeakRSSBytes is the peak resident set of the process that measured the
	// row: its own child under `flatmin bench`, else the measuring process so far.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// ReferenceSeconds is PyTorch's figure for the same work (0: none), and
	// Speedup is ReferenceSeconds / MedianSeconds.
	ReferenceSeconds float64 `json:"reference_seconds,omitempty"`
	Speedup          float64 `json:"speedup,omitempty"`
	Steps            int64   `json:"steps,omitempty"` // tts: steps to solution
}

// Median returns the median of xs (the mean of the middle two for an even
// count; NaN for none). xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return nan()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
