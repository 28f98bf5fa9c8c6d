package runner

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends/simplego"
)

// memoryOverhead is what a run holds whatever its size: the Go runtime, the
// binary, the compiled graphs of a small problem.
const memoryOverhead = 64 << 20

// MemoryEstimate returns an upper estimate of the peak resident memory, in
// bytes, of a run of c's trainer and engine on a problem of m neurons, n
// points and d dimensions: Θ and its working copies, the m×n features and
// their temporaries, the data and its n×n Gram matrices (copied into the
// graphs that use them), and the metrics (Gram matrices of the smaller side,
// J Jᵀ when the Riemannian quantities are computed); for gd, labelnoise and
// sam1 in host blocks (hostBlocks) only their live data (hostLive) and 32
// MiB of garbage. It is a float64: the sizes users give can overflow an
// int64 of bytes.
func (c *Config) MemoryEstimate(m, n, d int) float64 {
	const f = 8.0 // bytes per value
	fm, fn, fd := float64(m), float64(n), float64(d)
	theta := fm * fd * f
	feat := fm * fn * f
	data := fn * fd * f
	gram := fn * fn * f
	engine, err := trainers.ChooseEngineSizes(c.Engine, n, d)
	if err != nil {
		engine = trainers.EngineTheta
	}
	est := float64(memoryOverhead)
	// The data: the problem's copy and a constant in each compiled graph.
	est += 16 * data
	if c.hostBlocks(m, n, d) {
		// gd, labelnoise and sam1 in blocks of neurons on the host: the
		// params, Θ₀, w (hostLive), a block's buffers per core, the
		// metrics' blocks and small matrices; the soft memory limit
		// (LimitMemory) keeps the garbage within 32 MiB of them.
		est += c.hostLive(m, n, d) + 32<<20 + 6*gram
		kz, kt := math.Min(fn, fm), math.Min(fm, fd)
		est += 3*kt*kt*f + 3*kz*kz*f
		return est
	}
	// The multiples are measured peaks (GoMLX's SimpleGo): its graphs keep
	// their temporaries in pools, and its large products copy operands and
	// output into blocks padded to 32 columns.
	if engine == trainers.EngineFeature {
		// Θ₀ is kept whole; the steps move Zᵀ [m, n] through graphs with
		// about a dozen [m, n] temporaries (the metrics run in blocks of
		// neurons on the host). Θ is formed for
		// outputs a block of rows at a time beside S [m, n].
		// Θ₀ is copied once into the backend; the final Θ is streamed in
		// blocks of up to 4096 rows (two temporaries beside the block).
		block := math.Min(fm, 4096) * fd * f
		est += 2*theta + 16*feat + 6*gram + 3*block
	} else {
		// Θ, the next Θ, the gradient and their blocked copies; Z [n, m]
		// and its temporaries: with --graphs at m = 2·10⁶, n = d = 3 runs
		// peaked at 1.25–1.79 GB (26–37×Θ) whatever the soft limit.
		est += 12*theta + 32*feat
	}
	if c.Trainer == "riemannian" || c.Trainer == "penalty" {
		est += 6 * feat // ∇F, its projection, their velocities, the retraction
	}
	if c.Trainer == "sam" {
		// The perturbed params and a second forward pass (not measured:
		// counted like the params and the features once more each).
		if engine == trainers.EngineFeature {
			est += 2 * feat
		} else {
			est += 2*theta + 2*feat
		}
	}
	if c.Trainer == "sam1" {
		b := float64(max(c.SAMBatch, 1))
		est += 8*b*fm*f + b*fn*f
	}
	// J Jᵀ (n×n): the Riemannian step solves with it; the metrics only
	// when n is at most trainers.MaxMetricsN.
	if c.Trainer == "riemannian" || n <= trainers.MaxMetricsN {
		est += 5 * gram // with G's constant copies in its graphs
	}
	// Metrics: singular values of Z and Θ from the Gram matrix of the
	// smaller side (or an SVD of a small matrix), held with its factorisation.
	kz, kt := math.Min(fn, fm), math.Min(fm, fd)
	if kt <= trainers.MaxGramSide {
		est += 3 * kt * kt * f
	}
	if kz <= trainers.MaxGramSide {
		est += 3 * kz * kz * f
	}
	return est
}

// hostBlocks reports whether c's run steps on the host in blocks of
// neurons at these sizes (trainers.StepsInHostBlocks, on SimpleGo).
func (c *Config) hostBlocks(m, n, d int) bool {
	name, _, _ := strings.Cut(backend.Resolve(c.Backend), ":")
	return name == simplego.BackendName && trainers.StepsInHostBlocks(c.Trainer, c.Graphs, m, n, d)
}

// hostLive is the most a run in host blocks holds live, in bytes: at the
// start Θ₀ twice (the config's copy and the state's, or the state's in a
// backend buffer and on the host) and w; then Θ (Θ engine) or Θ₀ and Zᵀ
// [m, n] (feature engine), and w; plus a block's buffers per core (Zᵀ's
// rows, φ and φ′ of them, 1-SAM's per-example columns) and the metrics'.
func (c *Config) hostLive(m, n, d int) float64 {
	const f = 8.0
	fm, fn, fd := float64(m), float64(n), float64(d)
	live := 2 * fm * fd * f
	if engine, err := trainers.ChooseEngineSizes(c.Engine, n, d); err == nil && engine == trainers.EngineFeature {
		live = math.Max(live, fm*(fd+fn)*f)
	}
	b := float64(max(c.SAMBatch, 1))
	block := float64(1<<16) * f // trainers' hostBlockValues
	live += fm*f + (float64(runtime.GOMAXPROCS(0))*(3+2*b)+6)*block
	return live
}

// MemoryAllowed returns the memory this process may use, in bytes, and where
// that figure comes from: the cgroup's limit (v2 memory.max, v1
// memory.limit_in_bytes) when one is set, else MemAvailable (or MemTotal)
// from /proc/meminfo. It returns 0 when none can be read.
func MemoryAllowed() (float64, string) {
	cg := math.Inf(1)
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && v > 0 && v < 1<<60 {
			cg = v
			break
		}
	}
	avail, total := meminfo()
	host, src := avail, "MemAvailable"
	if host == 0 {
		host, src = total, "MemTotal"
	}
	if cg < math.Inf(1) && (host == 0 || cg < host) {
		return cg, "the cgroup's memory limit"
	}
	return host, src
}

// meminfo reads MemAvailable and MemTotal (bytes) from /proc/meminfo.
func meminfo() (avail, total float64) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemAvailable:":
			avail = v * 1024
		case "MemTotal:":
			total = v * 1024
		}
	}
	return avail, total
}

// memoryAllowed is MemoryAllowed, replaceable by tests.
var memoryAllowed = MemoryAllowed

// CheckMemory refuses, before anything of that size is allocated, a run whose
// estimated peak memory (MemoryEstimate) exceeds what the machine allows.
func (c *Config) CheckMemory(m, n, d int) error {
	if m <= 0 || n <= 0 || d <= 0 {
		return nil
	}
	need := c.MemoryEstimate(m, n, d)
	allowed, src := memoryAllowed()
	if allowed <= 0 || need <= allowed {
		return nil
	}
	return fmt.Errorf("m=%d n=%d d=%d (--trainer %s) needs about %s of memory but this machine allows %s (%s): use smaller --m, --n or --d",
		m, n, d, c.Trainer, formatBytes(need), formatBytes(allowed), src)
}

// formatBytes writes a byte count in GiB, MiB or KiB.
func formatBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.3g GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.3g MiB", v/(1<<20))
	default:
		return fmt.Sprintf("%.3g KiB", v/(1<<10))
	}
}

// LimitMemory sets a soft Go memory limit at 65% of the run's estimate, so
// that the collector keeps the heap within what CheckMemory compared with
// the machine instead of letting it grow to twice the live data. It only ever
// lowers the limit, and only for a large run (estimate ≥ 512 MiB): a
// process that runs many small problems (tests, repro) keeps its heap free. In host blocks the limit is the live data
// (hostLive) + 32 MiB at every size.
func (c *Config) LimitMemory(p *model.Problem) {
	if c.hostBlocks(p.M, p.N, p.D) {
		// In host blocks the live data is known (hostLive) and little
		// garbage is made: a limit 32 MiB above it keeps the peak near it.
		if limit := c.hostLive(p.M, p.N, p.D) + 32<<20; limit < float64(debug.SetMemoryLimit(-1)) {
			debug.SetMemoryLimit(int64(limit))
		}
		return
	}
	// The graphs' heap grows to the limit and past it by up to 0.2 GB
	// (SimpleGo keeps freed buffers in pools until the second collection):
	// a limit at the estimate let the Θ engine's peak at m = 2·10⁶, n = d =
	// 3 follow it up (1.3 GB for a limit of 1.4 GB, 2.3 GB for 2.1 GB), so
	// it sits at 65% of the estimate (there the peak was 1.38–1.74 GB).
	limit := 0.65 * c.MemoryEstimate(p.M, p.N, p.D)
	if limit >= 448<<20 && limit < float64(debug.SetMemoryLimit(-1)) {
		debug.SetMemoryLimit(int64(limit))
	}
}
