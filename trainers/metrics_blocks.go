package trainers

import (
	"context"
	"math"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

// blockMetricsAbove is the size (values of Zᵀ [m, n] or Θ [m, d]) above
// which the Evaluator measures on the host in blocks of neurons instead of
// in whole-array graphs: each m×n temporary of those weighs as much as Θ
// when n ≈ d (16–18×Θ at m = 2·10⁶, d = n = 3). Every metric is a sum or a
// max over neurons, or an n×n or d×d accumulation, so blocks lose nothing.
var blockMetricsAbove = 1 << 20

// metricsBlockValues is the size of one block's buffers (rows × max(n, d)):
// blocks are chosen by size alone, so the numbers do not depend on the machine.
var metricsBlockValues = 1 << 16

// blockwise reports whether e measures in blocks of neurons. Only for n ≤ m:
// Z's singular values then come from its n×n Gram matrix, a sum over neurons.
func (e *Evaluator) blockwise() bool {
	p := e.p
	return p.N <= p.M && max(p.M*p.N, p.M*p.D) > blockMetricsAbove
}

// ztRows returns Zᵀ's rows [lo, hi) as [hi−lo, n], computed into buf
// (len ≥ (hi−lo)·n) when they are not stored.
type ztRows func(lo, hi int, buf []float64) []float64

// thetaZtRows computes Zᵀ's rows from Θ's (row-major [m, d]) with
// model.HostFeatures.
func thetaZtRows(p *model.Problem, theta []float64) ztRows {
	xt := p.XT()
	return func(lo, hi int, buf []float64) []float64 {
		z := buf[:(hi-lo)*p.N]
		model.HostFeatures(p, xt, theta[lo*p.D:hi*p.D], z, skinny)
		return z
	}
}

// measureBlocks fills m's loss, Tr D²L (both forms), ‖∇L‖, theory gap, Z's
// singular values, effective rank and, for n ≤ MaxMetricsN, ‖grad_M F‖,
// from Zᵀ's rows, in passes over blocks of neurons: f (so r), then the sums
// that need r (regularizers.TraceHost's, J Jᵀ, ‖∇L‖²), then J∇F, then, with
// c = (J Jᵀ)⁻¹J∇F, ‖∇F − Jᵀc‖² as the graphs compute it (no cancelling
// difference). Every formula is the host layer's (model's Host*, HostNet,
// regularizers.TraceHost) on a block; buffers are of one block's size.
func (e *Evaluator) measureBlocks(ctx context.Context, m *Metrics, rows ztRows) error {
	p := e.p
	n, mm := p.N, p.M
	block := max(1, min(mm, metricsBlockValues/max(n, p.D)))
	buf := func() []float64 { return make([]float64, block*n) }
	zb, scratch, a, v, vg := buf(), buf(), buf(), buf(), buf()
	net := model.NewHostNet(p)
	each := func(fn func(lo, hi int, z []float64)) error {
		for lo := 0; lo < mm; lo += block {
			if err := ctx.Err(); err != nil {
				return err
			}
			hi := min(lo+block, mm)
			fn(lo, hi, rows(lo, hi, zb))
		}
		return nil
	}
	// traceBlock returns the block's A (into a) for TraceHost.
	traceBlock := func(lo, hi int, z []float64) regularizers.TraceBlock {
		ab := a[:len(z)]
		model.HostA(p.Act, p.W[lo:hi], z, ab)
		return regularizers.TraceBlock{Lo: lo, Z: z, A: ab}
	}

	m.TraceMin, m.EffectiveRank, m.RiemannianGradNorm, m.TheoryGap = math.NaN(), math.NaN(), math.NaN(), math.NaN()
	if e.opt.OK {
		m.TraceMin, m.TheoryGap = e.opt.TraceMin, 0
	}
	k := min(n, mm)
	var zGram *mat.SymDense
	var ztSmall []float64 // Zᵀ whole when small: its SVD resolves more than the Gram's
	switch {
	case mm*n <= smallTheta:
		ztSmall = make([]float64, mm*n)
	case singularValuesOK(n, mm):
		zGram = mat.NewSymDense(k, nil)
	}

	// Pass 1: f, the theory gap, Z's Gram matrix.
	f := make([]float64, n)
	if err := each(func(lo, hi int, z []float64) {
		model.HostAddOutputs(p.Act, p.W[lo:hi], z, scratch, f)
		if e.opt.OK {
			m.TheoryGap = math.Max(m.TheoryGap, e.opt.TheoryGapNeuronMajor(z, n, hi-lo))
		}
		if zGram != nil {
			zGram.SymRankK(zGram, 1, mat.NewDense(hi-lo, n, z).T())
		}
		if ztSmall != nil {
			copy(ztSmall[lo*n:], z)
		}
	}); err != nil {
		return err
	}
	r := make([]float64, n)
	m.Loss = model.HostResiduals(f, p.Y, r)

	// Pass 2: TraceHost's sums, J Jᵀ = G ∘ AᵀA and ‖∇L‖² = Σ_blocks ⟨V, VG⟩
	// with V = ∂L/∂Z = Coef(2r).
	riem := n <= MaxMetricsN
	tr := regularizers.NewTraceHost(net, r)
	twoR := make([]float64, n)
	for i, x := range r {
		twoR[i] = 2 * x
	}
	var jjt, part []float64
	if riem {
		jjt, part = make([]float64, n*n), make([]float64, n*n)
	}
	gradSq := 0.0
	if err := each(func(lo, hi int, z []float64) {
		b := traceBlock(lo, hi, z)
		tr.Add(b)
		vb := v[:len(z)]
		model.HostCoef(b.A, twoR, vb)
		gradSq += net.Velocity(vb, vg)
		if riem {
			model.HostAddGramOfColumns(jjt, part, b.A, n)
		}
	}); err != nil {
		return err
	}
	m.TraceHessian, m.TraceHessianManifold, m.GradNorm = tr.Trace(), tr.TraceManifold(), math.Sqrt(gradSq)

	switch {
	case ztSmall != nil:
		m.SingularValuesZ = thetaSingularValues(ztSmall, mm, n)
	case zGram != nil:
		m.SingularValuesZ = singularValuesFromGram(zGram, k)
	default:
		m.SingularValuesZ = nanSlice(k)
	}
	if zGram != nil || ztSmall != nil {
		m.EffectiveRank = linalg.EffectiveRank(m.SingularValuesZ)
	}
	if !riem {
		return nil
	}
	model.HostJJT(net.G, jjt)

	// gradF writes the block's ∇F (TraceHost.Grad) into v, its A into a.
	gradF := func(lo, hi int, z []float64) []float64 {
		out := v[:len(z)]
		tr.Grad(traceBlock(lo, hi, z), out)
		return out
	}
	// Pass 3: J∇F.
	jg := make([]float64, n)
	if err := each(func(lo, hi int, z []float64) {
		gb := gradF(lo, hi, z)
		model.HostAddJv(a[:len(gb)], net.TimesGram(gb, 1, vg), jg)
	}); err != nil {
		return err
	}
	c, err := linalg.SolveSPD(jjt, n, jg)
	if err != nil {
		return nil // J Jᵀ singular: ‖grad_M F‖ stays NaN
	}
	// Pass 4: ‖∇F − Jᵀc‖² = Σ_blocks ⟨U, UG⟩ with U = ∇F − Coef(c).
	norm := 0.0
	if err := each(func(lo, hi int, z []float64) {
		u := gradF(lo, hi, z)
		projectRows(u, u, a, c, scratch[:len(u)])
		norm += net.Velocity(u, vg)
	}); err != nil {
		return err
	}
	m.RiemannianGradNorm = math.Sqrt(norm)
	return nil
}

// thetaGramBlocks returns ΘᵀΘ (d×d) at a feature state, forming Θ's rows a
// block at a time as the engine's Sync does (hostThetaRows): no m-sized buffer.
func (f *featureEval) thetaGramBlocks(ctx context.Context, base, zt []float64) (*mat.SymDense, error) {
	p := f.eng.p
	rows, err := f.eng.newHostThetaRows()
	if err != nil {
		return nil, err
	}
	block := max(1, min(p.M, metricsBlockValues/max(p.N, p.D)))
	out := mat.NewSymDense(p.D, nil)
	for lo := 0; lo < p.M; lo += block {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out.SymRankK(out, 1, rows.at(base, zt, lo, min(lo+block, p.M)).T())
	}
	return out, nil
}

// measureFeatureBlocks is MeasureStateContext in blocks of neurons, on the
// features' own memory.
func (e *Evaluator) measureFeatureBlocks(ctx context.Context, s *State) (Metrics, error) {
	p, f := e.p, e.feat
	var m Metrics
	var err error
	n := p.N
	if verr := viewOf(e.b, s.Features, func(zt []float64) {
		err = e.measureBlocks(ctx, &m, func(lo, hi int, _ []float64) []float64 { return zt[lo*n : hi*n] })
	}); verr != nil {
		return m, verr
	}
	if err != nil {
		return m, err
	}
	// Outside the view: sync and thetaGram run graphs on s.Features, which
	// a view holds (a deadlock).
	switch {
	case p.M*p.D <= smallTheta:
		if s.Theta == nil {
			if err := f.eng.sync(s); err != nil {
				return m, err
			}
		}
		m.SingularValuesTheta = thetaSingularValues(tensors.MustCopyFlatData[float64](s.Theta), p.M, p.D)
	case !singularValuesOK(p.M, p.D):
		m.SingularValuesTheta = nanSlice(min(p.M, p.D))
	case p.D <= p.M:
		var g *mat.SymDense
		verr := viewOf(e.b, s.Features, func(zt []float64) {
			if verr := viewOf(e.b, s.Base, func(base []float64) { g, err = f.thetaGramBlocks(ctx, base, zt) }); verr != nil {
				err = verr
			}
		})
		if verr != nil {
			return m, verr
		}
		if err != nil {
			return m, err
		}
		m.SingularValuesTheta = singularValuesFromGram(g, p.D)
	default:
		g, err := f.thetaGram(ctx, s)
		if err != nil {
			return m, err
		}
		m.SingularValuesTheta = singularValuesFromGram(g, p.M)
	}
	return m, nil
}
