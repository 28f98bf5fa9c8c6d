package trainers

import (
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// hostLimit is the size (m·max(n, d)) up to which the host trainers work on
// whole arrays (one block: Zᵀ, φ(Zᵀ), φ′(Zᵀ) [m, n] at once, each step's
// params a fresh tensor). Above it they step in blocks of neurons
// (hostBlockValues) and update the state's params tensor in place, so that a
// step holds nothing m-sized beyond the params: the peak memory stays about
// 3×Θ plus a fixed overhead at every size (the compiled graphs hold a dozen
// m×n temporaries: 11–14×Θ at m = 2·10⁶, n = d = 3).
const hostLimit = 1 << 20

// hostBlockValues is the size (rows × max(n, d)) of one block above
// hostLimit: blocks are chosen by size alone, so the numbers do not depend
// on the machine (only the order of the blocks' work on its cores does).
var hostBlockValues = 1 << 16

// hostBlockRows, when positive, forces the rows of a block at every size
// (tests: blocks that really split a small problem).
var hostBlockRows = 0

// useHost reports whether gd, labelnoise and sam1 step on the host under
// engine: on SimpleGo, unless x.Graphs.
func useHost(b backends.Backend, x Execution) bool {
	return backend.IsSimpleGo(b) && !x.Graphs
}

// StepsInHostBlocks reports whether trainer steps on the host in blocks of
// neurons on SimpleGo (graphs: Config.Graphs) at m neurons, n points and d
// dimensions: gd, labelnoise and sam1 above hostLimit. Such a run holds
// the params, Θ₀ (feature engine) and w, and buffers of one block per core.
func StepsInHostBlocks(trainer string, graphs bool, m, n, d int) bool {
	switch trainer {
	case "gd", "labelnoise", "sam1":
		return !graphs && float64(m)*float64(max(n, d)) > hostLimit
	}
	return false
}

// hostRowsPerBlock is how many neurons a host trainer's block holds: all
// of them up to hostLimit, else hostBlockValues/max(n, d) (or hostBlockRows).
func hostRowsPerBlock(p *model.Problem) int {
	switch {
	case hostBlockRows > 0:
		return min(hostBlockRows, p.M)
	case p.M*max(p.N, p.D) <= hostLimit:
		return p.M
	}
	return max(1, min(p.M, hostBlockValues/max(p.N, p.D)))
}

// hostParams are the settings a hostTrainer's update reads (its trainer's
// Settings struct, flattened: η, σ for labelnoise, ρ and B for sam1).
type hostParams struct {
	eta, sigma, rho float64
	batch           int
}

// hostKind is which update a hostTrainer takes.
type hostKind int

const (
	hostGDKind hostKind = iota
	hostLabelNoise
	hostSAM1
)

// hostTrainer is gd, label-noise SGD and 1-SAM on the host, step by step in
// Go loops and gonum, under either engine: the updates of gd.go, labelnoise.go and sam1.go
// with the same counter-based draws (hostUniform), so that a run follows
// the graphs' (tests hold the two within 1e-9 after 4000 steps, and after
// hundreds of steps in small blocks). On SimpleGo the per-call and per-op
// overheads of the fused graphs (about 4 µs a step at Figure 1a's size)
// exceed the arithmetic, and at large sizes their m×n temporaries the memory.
//
// Every move is params ← params − A_s·C with A_s [m, B] and C [B, cols]
// rows of R: R = G = XXᵀ under the feature engine (params Zᵀ [m, n]) and
// R = X under the Θ engine (params Θ [m, d]). A step passes over blocks of
// neurons (hostRowsPerBlock; the blocks run on the machine's cores): first
// the sums over neurons (f, and 1-SAM's ‖A_b‖ and perturbed outputs), each
// block's part kept apart and added in block order, so that the result does
// not depend on the number of cores; then the update, block by block, from
// the block's own rows (Zᵀ's rows, or Θ's times Xᵀ, recomputed). With one
// block (up to hostLimit) the sums and products are the whole-array ones.
type hostTrainer struct {
	name string
	kind hostKind
	p    *model.Problem
	eng  *engine
	hp   hostParams
	unit bool
	r    []float64 // R [n, cols]
	cols int
	xt   []float64 // Xᵀ [d, n]
	norm []float64 // ‖x_i‖

	rows    int  // neurons per block
	blocks  int  // ⌈m/rows⌉
	inPlace bool // more than one block: steps write the state's tensor

	// With one block, params is a private copy of the state's Θ or Zᵀ
	// while own is the state's tensor, so that consecutive calls skip
	// reading it back, and each call hands the state a fresh tensor. With
	// several, the steps change the state's own tensor in place (a State
	// owns its tensors: NewState copies Θ₀), so that no second copy of the
	// params exists: a caller that keeps an earlier state must clone its
	// tensors (the loop's backups are clones).
	params []float64
	own    *tensors.Tensor
	work   []*hostWork // per worker
	part   []float64   // per block: its part of the sums over neurons
	res    []float64   // [n]: r = f − y
	sam    *samScratch // 1-SAM's batch, reused across calls
	gd     []float64   // gd and labelnoise: t, f, c, u [n, n, n, 2n] and C [n, cols]
}

// hostWork is one worker's buffers, of one block's size.
type hostWork struct {
	z, phi, dphi []float64 // [rows, n]; dphi holds A = w∘φ′
	zb, a, tmp   []float64 // [rows]
	zp           []float64 // [rows, B] (1-SAM's perturbed pre-activations)
	coef         []float64 // [rows, B]: column b is example b's gradient coefficients
}

func newHostTrainer(p *model.Problem, eng *engine, hp hostParams, name string, kind hostKind) *hostTrainer {
	h := &hostTrainer{name: name, kind: kind, p: p, eng: eng, hp: hp, unit: p.UnitWeights(), r: p.X, cols: p.D}
	if eng.feature() {
		h.r, h.cols = p.Gram(), p.N
	}
	for _, v := range p.RowNormSq() {
		h.norm = append(h.norm, math.Sqrt(v))
	}
	h.xt = p.XT()
	h.rows = hostRowsPerBlock(p)
	h.blocks = (p.M + h.rows - 1) / h.rows
	h.inPlace = h.blocks > 1
	eng.hostStream = h.inPlace
	return h
}

func (h *hostTrainer) Name() string    { return h.name }
func (h *hostTrainer) engine() *engine { return h.eng }
func (h *hostTrainer) Engine() string  { return h.eng.name }

// Path is PathHost.
func (h *hostTrainer) Path() string        { return PathHost }
func (h *hostTrainer) Extras() []string    { return nil }
func (h *hostTrainer) Sync(s *State) error { return h.eng.sync(s) }
func (h *hostTrainer) Init(s *State) error { return h.adopt(s) }

func (h *hostTrainer) Step(s *State) (float64, error) { return h.Advance(s, 1) }

// adopt is engine.adopt, but in blocks (inPlace) a Θ state entering the
// feature engine gets Zᵀ = ΘXᵀ formed on the host, block by block, into a
// tensor this trainer then steps in place (the graph would hold m×n
// temporaries), and the state's tensors are moved to host memory first
// where they live only in a backend buffer: then the steps, the metrics,
// the checkpoints and the Θ stream all read and write them without a copy
// (reading a buffer-only tensor makes a host copy and keeps it).
func (h *hostTrainer) adopt(s *State) error {
	if !h.inPlace {
		return h.eng.adopt(s)
	}
	collected := false
	for _, t := range []*tensors.Tensor{s.Theta, s.Base, s.Features} {
		if t != nil && !t.IsLocal() && !t.IsShared() {
			if !collected {
				runtime.GC() // what the caller dropped (its copy of Θ₀) goes first
				collected = true
			}
			if err := t.ToLocal(); err != nil {
				return err
			}
		}
	}
	if collected {
		// SimpleGo keeps a freed buffer in a sync.Pool, which lets go of
		// it only at the second collection: without these, the state's
		// old buffers would stay beside their host copies.
		runtime.GC()
		runtime.GC()
	}
	if !h.eng.feature() && s.Features != nil && s.Theta == nil {
		// A feature state under the Θ engine (a resume that switches):
		// Θ = Θ₀ − SX formed on the host a block at a time, not in graphs.
		return h.eng.syncHost(s)
	}
	if !h.eng.feature() || s.Features != nil || s.Theta == nil {
		return h.eng.adopt(s)
	}
	p := h.p
	zt := tensors.FromShape(shapes.Make(dtypes.Float64, p.M, p.N))
	var err error
	tensors.MustMutableFlatData(zt, func(out []float64) {
		err = viewOf(h.eng.b, s.Theta, func(theta []float64) {
			h.each(func(w *hostWork, _, lo, hi int) {
				model.HostFeatures(p, h.xt, theta[lo*p.D:hi*p.D], out[lo*p.N:hi*p.N], skinny)
			})
		})
	})
	if err != nil {
		return err
	}
	s.Base, s.Features, h.own = s.Theta, zt, zt
	return nil
}

// Advance takes k steps and returns the loss before the last one (1-SAM:
// its batch estimate).
func (h *hostTrainer) Advance(s *State, k int64) (float64, error) {
	if err := h.adopt(s); err != nil {
		return math.NaN(), err
	}
	p := h.p
	current := h.eng.current(s)
	var key uint64
	if h.kind != hostGDKind {
		key = hostStreamKey(tensors.MustCopyFlatData[uint64](s.RNG))
	}
	if h.work == nil {
		workers := 1
		if h.blocks > 1 {
			workers = min(h.blocks, runtime.GOMAXPROCS(0))
		}
		for range workers {
			h.work = append(h.work, h.newWork())
		}
		h.part = make([]float64, h.blocks*max(p.N, 3*h.hp.batch))
		h.res = make([]float64, p.N)
		if h.kind == hostSAM1 {
			h.sam = newSAMScratch(p, h.hp.batch, h.cols)
		} else {
			h.gd = make([]float64, p.N*(5+h.cols))
		}
	}
	if !h.inPlace {
		if current != h.own || h.params == nil {
			h.params = tensors.MustCopyFlatData[float64](current)
		}
		loss := h.steps(s, h.params, key, k)
		h.own = tensors.FromFlatDataAndDimensions(h.params, p.M, h.cols)
		h.eng.set(s, h.own)
		return loss, nil
	}
	loss := math.NaN()
	if err := mutableOf(h.eng.b, current, func(params []float64) { loss = h.steps(s, params, key, k) }); err != nil {
		return math.NaN(), err
	}
	h.own = current
	h.eng.set(s, current)
	return loss, nil
}

// mutableOf passes t's float64 data to fn to change in place: the backend's
// buffer itself where t lives only there and b shares memory with the host
// (SimpleGo), else t's local data (MutableFlatData drops a device copy).
func mutableOf(b backends.Backend, t *tensors.Tensor, fn func(flat []float64)) error {
	if v, ok := sharedData(b, t); ok {
		fn(v)
		return nil
	}
	return tensors.MutableFlatData(t, fn)
}

func (h *hostTrainer) newWork() *hostWork {
	rows, n := h.rows, h.p.N
	w := &hostWork{phi: make([]float64, rows*n), dphi: make([]float64, rows*n)}
	if !h.eng.feature() {
		w.z = make([]float64, rows*n)
	}
	if h.kind == hostSAM1 {
		b := h.hp.batch
		w.zb, w.a, w.tmp = make([]float64, rows), make([]float64, rows), make([]float64, rows)
		w.zp, w.coef = make([]float64, rows*b), make([]float64, rows*b)
	}
	return w
}

// steps takes k steps of params (the state's Θ or Zᵀ values) in place.
func (h *hostTrainer) steps(s *State, params []float64, key uint64, k int64) float64 {
	p := h.p
	loss := math.NaN()
	switch h.kind {
	case hostSAM1:
		for range k {
			loss = h.samStep(params, h.sam, key, uint64(s.Step))
			s.Step++
		}
	default:
		n := p.N
		t, f, c, u, coef := h.gd[:n], h.gd[n:2*n], h.gd[2*n:3*n], h.gd[3*n:5*n], h.gd[5*n:]
		for range k {
			copy(t, p.Y)
			if h.kind == hostLabelNoise {
				base := uint64(s.Step) * uint64(2*p.N)
				for v := range u {
					u[v] = hostUniform(key, base+uint64(v))
				}
				for i := range p.N { // t = y − σζ as noisyTargets
					t[i] -= hostBoxMuller(u[i], u[p.N+i]) * h.hp.sigma
				}
			}
			loss = h.gdStep(params, f, t, c, coef)
			s.Step++
		}
	}
	return loss
}

// each runs fn on every block [lo, hi) of neurons, on the workers' buffers:
// inline for one block, else the blocks spread over the workers.
func (h *hostTrainer) each(fn func(w *hostWork, blk, lo, hi int)) {
	m, rows := h.p.M, h.rows
	if h.blocks == 1 || len(h.work) <= 1 {
		w := h.work0()
		for blk := range h.blocks {
			fn(w, blk, blk*rows, min(m, (blk+1)*rows))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, w := range h.work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				blk := int(next.Add(1) - 1)
				if blk >= h.blocks {
					return
				}
				fn(w, blk, blk*rows, min(m, (blk+1)*rows))
			}
		}()
	}
	wg.Wait()
}

// work0 returns the first worker's buffers (made on first use: adopt runs
// before the first step).
func (h *hostTrainer) work0() *hostWork {
	if len(h.work) == 0 {
		return &hostWork{}
	}
	return h.work[0]
}

// blockFeatures returns Zᵀ's rows [lo, hi) [hi−lo, n]: the params' own rows
// under the feature engine; Θ's rows times Xᵀ, into w.z, under the Θ engine.
func (h *hostTrainer) blockFeatures(params []float64, w *hostWork, lo, hi int) []float64 {
	p := h.p
	if h.eng.feature() {
		return params[lo*p.N : hi*p.N]
	}
	z := w.z[:(hi-lo)*p.N]
	model.HostFeatures(p, h.xt, params[lo*p.D:hi*p.D], z, loopsUpTo(h.blocks > 1))
	return z
}

// featuresAgain is blockFeatures for a later pass of the same step: with
// one block the Θ engine's Zᵀ is still in w.z (the params unchanged since).
func (h *hostTrainer) featuresAgain(params []float64, w *hostWork, lo, hi int) []float64 {
	if h.blocks == 1 && !h.eng.feature() {
		return w.z[:(hi-lo)*h.p.N]
	}
	return h.blockFeatures(params, w, lo, hi)
}

// gdStep moves the params once toward targets t (gd.go's noisyGDStep:
// −2η Jᵀ(f − t)) and returns the loss against y before the move; c [n] and
// coef [n, cols] are scratch.
func (h *hostTrainer) gdStep(params, f, t, c, coef []float64) float64 {
	p := h.p
	n := p.N
	// Pass 1: each block's part of f = Σ_j w_j φ(z_j·).
	h.each(func(w *hostWork, blk, lo, hi int) {
		z := h.blockFeatures(params, w, lo, hi)
		fb := h.part[blk*n : (blk+1)*n]
		clear(fb)
		model.HostAddOutputs(p.Act, h.weights(lo, hi), z, w.phi, fb)
	})
	copy(f, h.part[:n])
	for blk := 1; blk < h.blocks; blk++ {
		for i, v := range h.part[blk*n : (blk+1)*n] {
			f[i] += v
		}
	}
	loss := model.HostResiduals(f, p.Y, h.res)
	for i := range c {
		c[i] = 2 * h.hp.eta * (f[i] - t[i])
	}
	model.HostScaleRows(c, h.r, coef) // C = diag(c) R
	// Pass 2: each block's rows move by −(w ∘ φ′(z)) C.
	h.each(func(w *hostWork, blk, lo, hi int) {
		z := h.featuresAgain(params, w, lo, hi)
		a := w.dphi[:len(z)]
		model.HostA(p.Act, h.weights(lo, hi), z, a)
		h.subtractProduct(params, lo, hi, a, n, coef)
	})
	return loss
}

// subtractProduct does params[lo:hi] −= a·c for a [hi−lo, k] and c [k, cols]
// (model.HostSubtractProduct, accumulating in place): in loops when small
// (or, in blocks, skinny), else by Gemm.
func (h *hostTrainer) subtractProduct(params []float64, lo, hi int, a []float64, k int, c []float64) {
	order := model.Accumulate
	if h.blocks > 1 && k <= skinny && h.cols <= skinny {
		order = model.AccumulateLoops
	}
	out := params[lo*h.cols : hi*h.cols]
	model.HostSubtractProduct(out, out, a, c, hi-lo, k, h.cols, order)
}

// samScratch holds one 1-SAM step's batch: indices, per-example values.
type samScratch struct {
	idx          []int
	scale, rt, y []float64 // [B]
	rows         []float64 // [B, cols]: R's rows at the indices, scaled
}

func newSAMScratch(p *model.Problem, batch, cols int) *samScratch {
	return &samScratch{idx: make([]int, batch), scale: make([]float64, batch),
		rt: make([]float64, batch), y: make([]float64, batch), rows: make([]float64, batch*cols)}
}

// samStep is sam1.go's samStep on the host: example i_b's pre-activations
// move by ρ sign(r_b) ‖x_b‖ A_bj/‖A_b‖, and the params by −(η/B) Σ_b
// 2 r̃_b Ã_bj R[i_b]. It returns the batch loss estimate (n/B) Σ_b r_b².
// Three passes over the blocks: f_{i_b} and ‖A_b‖²; the perturbed outputs;
// the update (with one block the second pass's perturbed z are kept).
func (h *hostTrainer) samStep(params []float64, st *samScratch, key, step uint64) float64 {
	p := h.p
	batch := len(st.idx)
	for b := range st.idx { // drawIndices
		st.idx[b] = hostIndex(hostUniform(key, step*uint64(batch)+uint64(b)), p.N)
	}
	// Pass 1: each block's parts of f_{i_b} and ‖A_b‖².
	h.each(func(w *hostWork, blk, lo, hi int) {
		z := h.blockFeatures(params, w, lo, hi)
		part := h.part[blk*2*batch : (blk+1)*2*batch]
		wb := h.weights(lo, hi)
		for b, i := range st.idx {
			zb := h.column(w, z, i)
			part[b] = 0
			model.HostAddOutputs(p.Act, wb, zb, w.tmp, part[b:b+1])
			a := w.a[:len(zb)]
			model.HostA(p.Act, wb, zb, a)
			part[batch+b] = model.HostDot(a, a)
		}
	})
	for b, i := range st.idx { // f_{i_b} into rt, ‖A_b‖² into scale
		out, aSq := h.part[b], h.part[batch+b]
		for blk := 1; blk < h.blocks; blk++ {
			out += h.part[blk*2*batch+b]
			aSq += h.part[blk*2*batch+batch+b]
		}
		st.rt[b], st.y[b], st.scale[b] = out, p.Y[i], aSq
	}
	loss := model.HostResiduals(st.rt, st.y, st.rt)
	for b, i := range st.idx {
		aNorm := math.Sqrt(st.scale[b])
		if !(aNorm > 0) {
			aNorm = 1
		}
		st.scale[b] = sign(st.rt[b]) * h.norm[i] / aNorm * h.hp.rho
	}
	// Pass 2: each block's part of the perturbed outputs.
	h.each(func(w *hostWork, blk, lo, hi int) {
		z := h.featuresAgain(params, w, lo, hi)
		part := h.part[blk*2*batch : (blk+1)*2*batch]
		wb := h.weights(lo, hi)
		for b, i := range st.idx {
			zp := h.perturb(w, z, lo, hi, b, i, st.scale[b])
			part[b] = 0
			model.HostAddOutputs(p.Act, wb, zp, w.tmp, part[b:b+1])
		}
	})
	for b := range st.idx { // the perturbed outputs f̃_{i_b} into rt
		out := h.part[b]
		for blk := 1; blk < h.blocks; blk++ {
			out += h.part[blk*2*batch+b]
		}
		st.rt[b] = out
	}
	model.HostResiduals(st.rt, st.y, st.rt) // r̃
	for b, i := range st.idx {
		lr := h.hp.eta / float64(batch)
		for l := range h.cols {
			st.rows[b*h.cols+l] = lr * h.r[i*h.cols+l]
		}
	}
	// Pass 3: each block's rows move by −Σ_b (w ∘ φ′(z̃_b)) 2r̃_b R[i_b].
	h.each(func(w *hostWork, blk, lo, hi int) {
		rows := hi - lo
		var z []float64
		if h.blocks > 1 {
			z = h.featuresAgain(params, w, lo, hi)
		}
		wb := h.weights(lo, hi)
		for b, i := range st.idx {
			var zp []float64
			if h.blocks > 1 {
				zp = h.perturb(w, z, lo, hi, b, i, st.scale[b])
			} else {
				zp = w.zp[b*rows : (b+1)*rows] // pass 2's
			}
			a := w.a[:rows]
			model.HostA(p.Act, wb, zp, a)
			for j, v := range a {
				w.coef[j*batch+b] = v * (st.rt[b] * 2)
			}
		}
		h.subtractProduct(params, lo, hi, w.coef[:rows*batch], batch, st.rows)
	})
	return loss * float64(p.N) / float64(batch)
}

// perturb writes example i's (batch slot b) perturbed pre-activations
// z + scale·w∘φ′(z) for the block [lo, hi) into w.zp's slot b and returns them.
func (h *hostTrainer) perturb(w *hostWork, z []float64, lo, hi, b, i int, scale float64) []float64 {
	zb := h.column(w, z, i)
	rows := len(zb)
	a := w.a[:rows]
	model.HostA(h.p.Act, h.weights(lo, hi), zb, a)
	zp := w.zp[b*rows : (b+1)*rows]
	for j := range zb {
		zp[j] = zb[j] + a[j]*scale
	}
	return zp
}

// column gathers example i's pre-activations z_{·i} from a block's Zᵀ rows
// z [rows, n] into w.zb.
func (h *hostTrainer) column(w *hostWork, z []float64, i int) []float64 {
	n := h.p.N
	zb := w.zb[:len(z)/n]
	for j := range zb {
		zb[j] = z[j*n+i]
	}
	return zb
}

// weights returns the block [lo, hi)'s w_j for model.HostAddOutputs and
// model.HostA, or nil for unit weights (no products by 1).
func (h *hostTrainer) weights(lo, hi int) []float64 {
	if h.unit {
		return nil
	}
	return h.p.W[lo:hi]
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// loopsUpTo is HostFeatures' loop width: skinny for the blocks, 0 for whole
// arrays (whose bits the saved outputs hold).
func loopsUpTo(blocks bool) int {
	if blocks {
		return skinny
	}
	return 0
}
