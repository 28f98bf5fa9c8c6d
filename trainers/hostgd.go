package trainers

import (
	"math"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// hostGDLimit bounds m·n for hostGD: above it the graphs' row-block products
// keep the peak memory lower (the (100000, 256, 64) run's 3×Θ target).
const hostGDLimit = 1 << 20

// useHostGD reports whether gd and labelnoise run on the host: the feature
// engine on SimpleGo, up to hostGDLimit.
func useHostGD(b backends.Backend, eng *engine, cfg Config) bool {
	return useHostFlow(b, eng) && !cfg.graphs && eng.p.M*eng.p.N <= hostGDLimit
}

// hostGD is gd and label-noise SGD for the feature engine on the host, step
// by step in Go loops and gonum: Zᵀ ← Zᵀ − A (2η G ∘ (f − t)1ᵀ), with t = y
// (gd) or t = y − σζ drawn from the same counter-based stream as the graphs
// (hostUniform). On SimpleGo the per-call and per-op overheads of the fused
// graphs (about 4 µs a step at Figure 1a's size) exceed the arithmetic.
type hostGD struct {
	name  string
	p     *model.Problem
	eng   *engine
	eta   float64
	sigma float64
	noisy bool
	unit  bool
	act   model.Activation
	g     []float64 // X Xᵀ

	// The features and scratch: zt is the state's Zᵀ while own is the
	// state's tensor (so consecutive calls skip reading it back).
	zt, next, phi, dphi []float64
	own                 *tensors.Tensor
}

func newHostGD(p *model.Problem, eng *engine, name string, eta, sigma float64, noisy bool) *hostGD {
	return &hostGD{name: name, p: p, eng: eng, eta: eta, sigma: sigma, noisy: noisy, unit: p.UnitWeights(), act: p.Act, g: p.Gram()}
}

func (h *hostGD) Name() string        { return h.name }
func (h *hostGD) engine() *engine     { return h.eng }
func (h *hostGD) Engine() string      { return h.eng.name }
func (h *hostGD) Extras() []string    { return nil }
func (h *hostGD) Sync(s *State) error { return h.eng.sync(s) }
func (h *hostGD) Init(s *State) error { return h.eng.adopt(s) }

func (h *hostGD) Step(s *State) (float64, error) { return h.Advance(s, 1) }

// Advance takes k steps and returns the loss before the last one.
func (h *hostGD) Advance(s *State, k int64) (float64, error) {
	if err := h.eng.adopt(s); err != nil {
		return math.NaN(), err
	}
	p := h.p
	if s.Features != h.own || h.zt == nil {
		h.zt = tensors.MustCopyFlatData[float64](s.Features)
		h.next = make([]float64, len(h.zt))
		h.phi, h.dphi = make([]float64, len(h.zt)), make([]float64, len(h.zt))
	}
	var key uint64
	if h.noisy {
		rng := tensors.MustCopyFlatData[uint64](s.RNG)
		key = rng[0] ^ rng[1]*splitmixMul1 // streamKey
	}
	f, t, coef := make([]float64, p.N), make([]float64, p.N), make([]float64, p.N*p.N)
	u := make([]float64, 2*p.N)
	loss := math.NaN()
	for range k {
		copy(t, p.Y)
		if h.noisy {
			base := uint64(s.Step) * uint64(2*p.N)
			for v := range u {
				u[v] = hostUniform(key, base+uint64(v))
			}
			for i := range p.N { // Box–Muller, as boxMuller
				u1 := math.Max(u[i], math.SmallestNonzeroFloat64)
				t[i] -= math.Sqrt(math.Log(u1)*-2) * math.Cos(u[p.N+i]*(2*math.Pi)) * h.sigma
			}
		}
		loss = h.step(f, t, coef)
		s.Step++
	}
	h.own = tensors.FromFlatDataAndDimensions(h.zt, p.M, p.N)
	h.eng.set(s, h.own)
	return loss, nil
}

// step moves h.zt once toward targets t and returns the loss (against y) before the move.
func (h *hostGD) step(f, t, coef []float64) float64 {
	p := h.p
	model.HostEval(h.act, h.zt, 0, h.phi)
	model.HostEval(h.act, h.zt, 1, h.dphi)
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
		c := 2 * h.eta * (f[i] - t[i])
		for l := range p.N { // (2η G) ∘ c 1ᵀ, rows scaled
			coef[i*p.N+l] = c * h.g[i*p.N+l]
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
	// next = Zᵀ − A · coef
	copy(h.next, h.zt)
	if p.M*p.N*p.N <= 1<<12 {
		for j := range p.M {
			a, out := h.dphi[j*p.N:(j+1)*p.N], h.next[j*p.N:(j+1)*p.N]
			for i, av := range a {
				crow := coef[i*p.N : (i+1)*p.N]
				for l, cv := range crow {
					out[l] -= av * cv
				}
			}
		}
	} else {
		blas64.Gemm(blas.NoTrans, blas.NoTrans, -1,
			blas64.General{Rows: p.M, Cols: p.N, Stride: p.N, Data: h.dphi},
			blas64.General{Rows: p.N, Cols: p.N, Stride: p.N, Data: coef},
			1, blas64.General{Rows: p.M, Cols: p.N, Stride: p.N, Data: h.next})
	}
	h.zt, h.next = h.next, h.zt
	return loss
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
