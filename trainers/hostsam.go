package trainers

import (
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/flatmin/flatmin/model"
)

// hostSAM is sam on the host, for the feature engine on SimpleGo (where
// useHost holds): samFullStep's formulas on Zᵀ [m, n] with model.HostNet,
//
//	V = 2 A∘1rᵀ (∇L = VX), ‖∇L‖² = ⟨V, VG⟩, Z̃ᵀ = Zᵀ + (ρ/‖∇L‖) VG,
//	Zᵀ ← Zᵀ − 2η (Ã∘1r̃ᵀ) G,
//
// without SimpleGo's per-op overheads. The Θ engine stays in graphs.
type hostSAM struct {
	p   *model.Problem
	eng *engine
	net *model.HostNet
	s   SAMSettings
	// zt is the state's Zᵀ while own is the state's tensor, so that
	// consecutive calls skip reading it back.
	zt  []float64
	own *tensors.Tensor
	two []float64 // [n] scratch: 2r, the coefficients of ∂L/∂Z
}

// hostSAMFor returns the host sam where it applies, else nil.
func hostSAMFor(b backends.Backend, p *model.Problem, s SAMSettings, x Execution) (Trainer, error) {
	engine, err := ChooseEngine(x.Engine, p)
	if err != nil || engine != EngineFeature || !useHost(b, x) {
		return nil, err
	}
	eng, err := newEngine(b, p, x.Engine)
	if err != nil {
		return nil, err
	}
	return &hostSAM{p: p, eng: eng, net: model.NewHostNet(p), s: s}, nil
}

func (h *hostSAM) Name() string        { return "sam" }
func (h *hostSAM) engine() *engine     { return h.eng }
func (h *hostSAM) Engine() string      { return h.eng.name }
func (h *hostSAM) Extras() []string    { return nil }
func (h *hostSAM) Sync(s *State) error { return h.eng.sync(s) }
func (h *hostSAM) Init(s *State) error { return h.eng.adopt(s) }
func (h *hostSAM) Path() string        { return PathHost }

func (h *hostSAM) Step(s *State) (float64, error) { return h.Advance(s, 1) }

// Advance takes k steps and returns L before the last one.
func (h *hostSAM) Advance(s *State, k int64) (float64, error) {
	if err := h.eng.adopt(s); err != nil {
		return math.NaN(), err
	}
	if current := h.eng.current(s); current != h.own || h.zt == nil {
		h.zt = tensors.MustCopyFlatData[float64](current)
	}
	loss := math.NaN()
	for range k {
		loss = h.step()
		s.Step++
	}
	h.own = tensors.FromFlatDataAndDimensions(h.zt, h.p.M, h.p.N)
	h.eng.set(s, h.own)
	return loss, nil
}

// step moves h.zt once and returns L before the move. Each formula is the
// host layer's: ∂L/∂Z = Coef(2r), VG and ‖∇L‖² = ⟨V, VG⟩ (Velocity), the
// moves (HostMoveBy).
func (h *hostSAM) step() float64 {
	net, n := h.net, h.p.N
	fw := net.Forward(h.zt)
	loss := model.HostLoss(fw.R)
	if h.two == nil {
		h.two = make([]float64, n)
	}
	for i, r := range fw.R {
		h.two[i] = 2 * r
	}
	v := fw.Coef(h.two)
	fw.Release()
	vg := net.Take()
	n2 := net.Velocity(v, vg)
	zp := net.Take()
	if n2 > 0 { // else ∇L = 0 (or rounding-negative): no perturbation
		model.HostMoveBy(zp, h.zt, vg, -h.s.Rho/math.Sqrt(n2))
	} else {
		copy(zp, h.zt)
	}
	fwt := net.Forward(zp)
	net.Put(v)
	v = fwt.Coef(fwt.R)
	fwt.Release()
	move := net.TimesGram(v, 2*h.s.Eta, vg)
	model.HostMoveBy(h.zt, h.zt, move, 1)
	net.Put(v, vg, zp)
	return loss
}
