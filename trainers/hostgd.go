package trainers

import (
	"math"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// hostLimit bounds the sizes of the host trainers' arrays (the params, m·n
// for the feature engine and m·d for the Θ engine, and Zᵀ, m·n): above it
// the graphs' row-block products keep the peak memory lower (the
// (100000, 256, 64) run's 3×Θ target).
const hostLimit = 1 << 20

// useHost reports whether gd, labelnoise and sam1 step on the host under
// engine: on SimpleGo, up to hostLimit.
func useHost(b backends.Backend, p *model.Problem, cfg Config, engine string) bool {
	cols := p.D
	if engine == EngineFeature {
		cols = p.N
	}
	return backend.IsSimpleGo(b) && !cfg.Graphs && p.M*max(cols, p.N) <= hostLimit
}

// hostKind is which update a hostTrainer takes.
type hostKind int

const (
	hostGDKind hostKind = iota
	hostLabelNoise
	hostSAM1
)

// hostTrainer is gd, label-noise SGD and 1-SAM on the host, step by step in
// Go loops and gonum, under either engine: the updates of gd.go and sam.go
// with the same counter-based draws (hostUniform), so that a run follows
// the graphs' (tests hold the two within 1e-9 after 4000 steps). On
// SimpleGo the per-call and per-op overheads of the fused graphs (about 4 µs
// a step at Figure 1a's size) exceed the arithmetic.
//
// Every move is params ← params − A_s·C with A_s [m, B] and C [B, cols]
// rows of R: R = G = XXᵀ under the feature engine (params Zᵀ [m, n]) and
// R = X under the Θ engine (params Θ [m, d]).
type hostTrainer struct {
	name string
	kind hostKind
	p    *model.Problem
	eng  *engine
	cfg  Config
	unit bool
	r    []float64 // R [n, cols]
	cols int
	xt   []float64 // Xᵀ [d, n]
	norm []float64 // ‖x_i‖

	// params is the state's Θ or Zᵀ while own is the state's tensor, so
	// that consecutive calls skip reading it back; zt is Zᵀ [m, n] (the
	// params themselves under the feature engine).
	params, zt, phi, dphi []float64
	own                   *tensors.Tensor
}

func newHostTrainer(p *model.Problem, eng *engine, cfg Config, name string, kind hostKind) *hostTrainer {
	h := &hostTrainer{name: name, kind: kind, p: p, eng: eng, cfg: cfg, unit: p.UnitWeights(), r: p.X, cols: p.D}
	if eng.feature() {
		h.r, h.cols = p.Gram(), p.N
	}
	for _, v := range p.RowNormSq() {
		h.norm = append(h.norm, math.Sqrt(v))
	}
	h.xt = make([]float64, p.D*p.N)
	for i := range p.N {
		for c := range p.D {
			h.xt[c*p.N+i] = p.X[i*p.D+c]
		}
	}
	return h
}

func (h *hostTrainer) Name() string        { return h.name }
func (h *hostTrainer) engine() *engine     { return h.eng }
func (h *hostTrainer) Engine() string      { return h.eng.name }
func (h *hostTrainer) Extras() []string    { return nil }
func (h *hostTrainer) Sync(s *State) error { return h.eng.sync(s) }
func (h *hostTrainer) Init(s *State) error { return h.eng.adopt(s) }

func (h *hostTrainer) Step(s *State) (float64, error) { return h.Advance(s, 1) }

// Advance takes k steps and returns the loss before the last one (1-SAM:
// its batch estimate).
func (h *hostTrainer) Advance(s *State, k int64) (float64, error) {
	if err := h.eng.adopt(s); err != nil {
		return math.NaN(), err
	}
	p := h.p
	current := h.eng.current(s)
	if current != h.own || h.params == nil {
		h.params = tensors.MustCopyFlatData[float64](current)
		h.zt, h.phi, h.dphi = h.params, make([]float64, p.M*p.N), make([]float64, p.M*p.N)
		if !h.eng.feature() {
			h.zt = make([]float64, p.M*p.N)
		}
	}
	var key uint64
	if h.kind != hostGDKind {
		rng := tensors.MustCopyFlatData[uint64](s.RNG)
		key = rng[0] ^ rng[1]*splitmixMul1 // streamKey
	}
	loss := math.NaN()
	switch h.kind {
	case hostSAM1:
		st := newSAMScratch(p, h.cfg.SAMBatch, h.cols)
		for range k {
			loss = h.samStep(st, key, uint64(s.Step))
			s.Step++
		}
	default:
		t, f := make([]float64, p.N), make([]float64, p.N)
		coef, u := make([]float64, p.N*h.cols), make([]float64, 2*p.N)
		for range k {
			copy(t, p.Y)
			if h.kind == hostLabelNoise {
				base := uint64(s.Step) * uint64(2*p.N)
				for v := range u {
					u[v] = hostUniform(key, base+uint64(v))
				}
				for i := range p.N { // Box–Muller, as boxMuller; t = y − σζ as noisyTargets
					u1 := math.Max(u[i], math.SmallestNonzeroFloat64)
					t[i] -= math.Sqrt(math.Log(u1)*-2) * math.Cos(u[p.N+i]*(2*math.Pi)) * h.cfg.Sigma
				}
			}
			loss = h.gdStep(f, t, coef)
			s.Step++
		}
	}
	h.own = tensors.FromFlatDataAndDimensions(h.params, p.M, h.cols)
	h.eng.set(s, h.own)
	return loss, nil
}

// features makes h.zt = Zᵀ current (the Θ engine forms Θ Xᵀ).
func (h *hostTrainer) features() {
	if h.eng.feature() {
		return
	}
	p := h.p
	if p.M*p.N*p.D <= 1<<15 {
		// Row j of Zᵀ as Σ_c θ_jc (column c of X): independent sums, not a
		// chain of dependent adds per entry.
		for j := range p.M {
			z := h.zt[j*p.N : (j+1)*p.N]
			clear(z)
			for c, v := range h.params[j*p.D : (j+1)*p.D] {
				for i, x := range h.xt[c*p.N : (c+1)*p.N] {
					z[i] += v * x
				}
			}
		}
		return
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: p.M, Cols: p.D, Stride: p.D, Data: h.params},
		blas64.General{Rows: p.N, Cols: p.D, Stride: p.D, Data: p.X},
		0, blas64.General{Rows: p.M, Cols: p.N, Stride: p.N, Data: h.zt})
}

// gdStep moves the params once toward targets t (gd.go's noisyGDStep:
// −2η Jᵀ(f − t)) and returns the loss against y before the move.
func (h *hostTrainer) gdStep(f, t, coef []float64) float64 {
	p := h.p
	h.features()
	model.HostEval(p.Act, h.zt, 0, h.phi)
	model.HostEval(p.Act, h.zt, 1, h.dphi)
	clear(f)
	for j := range p.M {
		w, row := p.W[j], h.phi[j*p.N:(j+1)*p.N]
		for i, v := range row {
			f[i] += w * v
		}
	}
	loss := 0.0
	for i := range p.N {
		r := f[i] - p.Y[i]
		loss += r * r
		c := 2 * h.cfg.Eta * (f[i] - t[i])
		for l := range h.cols { // C = diag(c) R
			coef[i*h.cols+l] = c * h.r[i*h.cols+l]
		}
	}
	if !h.unit {
		for j := range p.M {
			w := p.W[j]
			for i := range p.N {
				h.dphi[j*p.N+i] *= w
			}
		}
	}
	h.subtractProduct(h.dphi, p.N, coef)
	return loss
}

// subtractProduct does params −= a·c for a [m, k] and c [k, cols].
func (h *hostTrainer) subtractProduct(a []float64, k int, c []float64) {
	m, cols := h.p.M, h.cols
	if m*k*cols <= 1<<15 {
		for j := range m {
			aj, out := a[j*k:(j+1)*k], h.params[j*cols:(j+1)*cols]
			for i, av := range aj {
				for l, cv := range c[i*cols : (i+1)*cols] {
					out[l] -= av * cv
				}
			}
		}
		return
	}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, -1,
		blas64.General{Rows: m, Cols: k, Stride: k, Data: a},
		blas64.General{Rows: k, Cols: cols, Stride: cols, Data: c},
		1, blas64.General{Rows: m, Cols: cols, Stride: cols, Data: h.params})
}

// samScratch holds one 1-SAM step's batch: indices, uniforms, rows of Z.
type samScratch struct {
	idx            []int
	u              []float64
	zb, zp, a, tmp []float64 // [m] each
	coef           []float64 // [m, B]: column b is example b's gradient coefficients
	rows           []float64 // [B, cols]: R's rows at the indices, scaled
}

func newSAMScratch(p *model.Problem, batch, cols int) *samScratch {
	return &samScratch{idx: make([]int, batch), u: make([]float64, batch),
		zb: make([]float64, p.M), zp: make([]float64, p.M), a: make([]float64, p.M), tmp: make([]float64, p.M),
		coef: make([]float64, p.M*batch), rows: make([]float64, batch*cols)}
}

// samStep is sam.go's samStep on the host: example i_b's pre-activations
// move by ρ sign(r_b) ‖x_b‖ A_bj/‖A_b‖, and the params by −(η/B) Σ_b
// 2 r̃_b Ã_bj R[i_b]. It returns the batch loss estimate (n/B) Σ_b r_b².
func (h *hostTrainer) samStep(st *samScratch, key, step uint64) float64 {
	p := h.p
	batch := len(st.idx)
	for b := range st.idx { // drawIndices
		i := int(math.Floor(hostUniform(key, step*uint64(batch)+uint64(b)) * float64(p.N)))
		st.idx[b] = min(i, p.N-1)
	}
	h.features()
	loss := 0.0
	for b, i := range st.idx {
		for j := range p.M {
			st.zb[j] = h.zt[j*p.N+i]
		}
		r := h.outputOf(st.zb, st.tmp) - p.Y[i]
		loss += r * r
		model.HostEval(p.Act, st.zb, 1, st.a)
		h.weigh(st.a)
		aNorm := math.Sqrt(dot(st.a, st.a))
		if !(aNorm > 0) {
			aNorm = 1
		}
		scale := sign(r) * h.norm[i] / aNorm * h.cfg.Rho
		for j := range st.zb {
			st.zp[j] = st.zb[j] + st.a[j]*scale
		}
		rt := h.outputOf(st.zp, st.tmp) - p.Y[i]
		model.HostEval(p.Act, st.zp, 1, st.a)
		h.weigh(st.a)
		for j, v := range st.a {
			st.coef[j*batch+b] = v * (rt * 2)
		}
		lr := h.cfg.Eta / float64(batch)
		for l := range h.cols {
			st.rows[b*h.cols+l] = lr * h.r[i*h.cols+l]
		}
	}
	h.subtractProduct(st.coef, batch, st.rows)
	return loss * float64(p.N) / float64(batch)
}

// outputOf returns Σ_j w_j φ(z_j) for one example's pre-activations z [m].
func (h *hostTrainer) outputOf(z, tmp []float64) float64 {
	model.HostEval(h.p.Act, z, 0, tmp)
	h.weigh(tmp)
	s := 0.0
	for _, v := range tmp {
		s += v
	}
	return s
}

// weigh multiplies v [m] by w in place (nothing for w = 1).
func (h *hostTrainer) weigh(v []float64) {
	if !h.unit {
		for j := range v {
			v[j] *= h.p.W[j]
		}
	}
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

// hostUniform is counterUniform on the host: value ctr of the stream keyed
// by key, SplitMix64's output as a uniform in [0, 1) with 53 random bits.
func hostUniform(key, ctr uint64) float64 {
	z := key + ctr*splitmixGamma
	z = (z ^ (z >> 30)) * splitmixMul1
	z = (z ^ (z >> 27)) * splitmixMul2
	z ^= z >> 31
	return float64(z>>11) * 0x1p-53
}
