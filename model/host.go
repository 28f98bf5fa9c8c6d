package model

import (
	"github.com/flatmin/flatmin/internal/linalg"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// HostNet is a Problem's data for the host path: the network evaluated in
// plain Go from neuron-major features Zᵀ [m, n]. It is the CPU fast path of
// the feature engine's Riemannian flow: at (1000, 64, 32) SimpleGo's generic
// kernels spend 2–4× the arithmetic (implicit broadcasting goes through an
// index iterator, products through one accumulator chain), while the
// products here (linalg.MulSquare, linalg.GramColumns: FMA kernels) run near
// the machine's speed. Every quantity here is the
// one Net and Forward build in graphs; tests hold the two equal.
type HostNet struct {
	Problem *Problem
	G       []float64 // X Xᵀ [n, n]
	NormSq  []float64 // ‖x_i‖² [n]
	unit    bool
	pool    [][]float64 // m×n buffers given back (Put), for Take
	dg      []float64   // diag(δ) G [n, n] for Corrected

	// The cubic φ = z (c₁z² + c₀) with c₀ ≠ 0 (cubic set), evaluated inline
	// by the fused loops (Forward, Curvature) with hostSlice's expressions,
	// so the values are the same bits as through Phi: φ′ = d₁z² + d₀,
	// φ″ = k₂z, φ‴ = k₃.
	cubic          bool
	c0, c1, d0, d1 float64
	k2, k3         float64
}

// NewHostNet prepares p for host evaluation.
func NewHostNet(p *Problem) *HostNet {
	net := &HostNet{Problem: p, G: p.Gram(), NormSq: p.RowNormSq(), unit: p.UnitWeights()}
	if a, ok := p.Act.(*OddActivation); ok {
		c, q0 := a.hostPoly(0)
		d, q1 := a.hostPoly(1)
		k2, q2 := a.hostPoly(2)
		k3, q3 := a.hostPoly(3)
		// hostSlice's cases "the cubic's φ, φ′, φ″" and "a constant".
		if len(c) == 2 && q0 == 1 && len(d) == 2 && q1 == 0 && len(k2) == 1 && q2 == 1 && len(k3) == 1 && q3 == 0 {
			net.cubic = true
			net.c0, net.c1, net.d0, net.d1, net.k2, net.k3 = c[0], c[1], d[0], d[1], k2[0], k3[0]
		}
	}
	return net
}

// Take returns an m×n buffer, reused from Put when one is there; its
// contents are undefined. A HostNet and its forwards serve one goroutine.
func (net *HostNet) Take() []float64 {
	if k := len(net.pool); k > 0 {
		b := net.pool[k-1]
		net.pool = net.pool[:k-1]
		return b
	}
	return make([]float64, net.Problem.M*net.Problem.N)
}

// Put gives m×n buffers back for Take; the caller must not use them again.
// Reuse spares a step most of its allocation (and the garbage collector's work).
func (net *HostNet) Put(bufs ...[]float64) {
	for _, b := range bufs {
		if b != nil && len(b) == net.Problem.M*net.Problem.N && len(net.pool) < 8 {
			net.pool = append(net.pool, b)
		}
	}
}

// TimesGram returns scale · V G for V [m, n] (row-major), into out, or
// into a buffer from Take when out is nil (out may not alias v). Each entry
// is an in-order fused sum (linalg.MulSquare): the same bits on every machine.
func (net *HostNet) TimesGram(v []float64, scale float64, out []float64) []float64 {
	p := net.Problem
	if out == nil {
		out = net.Take()
	}
	linalg.MulSquare(out, v, net.G, p.M, p.N, scale)
	return out
}

// Forward evaluates the network at features Zᵀ [m, n] (z_ij at [j, i]).
// zt is read, never written, and must not change while the result is used.
func (net *HostNet) Forward(zt []float64) *HostForward {
	p := net.Problem
	if len(zt) != p.M*p.N {
		panic("model: host features must have m×n values")
	}
	h := &HostForward{Net: net, Zt: zt}
	if net.cubic {
		h.forwardCubic()
	} else {
		phi := net.Take() // only f needs φ itself
		h.F = make([]float64, p.N)
		HostAddOutputs(p.Act, net.weights(), zt, phi, h.F)
		net.Put(phi)
	}
	h.R = make([]float64, p.N)
	HostResiduals(h.F, p.Y, h.R)
	return h
}

// weights returns w, or nil for unit weights (HostAddOutputs, HostA).
func (net *HostNet) weights() []float64 {
	if net.unit {
		return nil
	}
	return net.Problem.W
}

// HostAddOutputs adds a block of neurons' part of f_i = Σ_j w_j φ(z_ij) to
// f [n]: z holds the block's rows of Zᵀ [k, n], w their weights w[lo:lo+k]
// (nil: unit weights), phi is scratch of len(z). It is the host home of f
// (HostNet.Forward at the whole array, the host trainers per block): each
// product is rounded (float64) before it is added, and the sum runs over j
// in order from f's value, so consecutive blocks added into one f from 0
// give the whole array's bits. With n = 1, z is one example's
// pre-activations over the block (1-SAM's rows).
func HostAddOutputs(act Activation, w, z, phi, f []float64) {
	n := len(f)
	phi = phi[:len(z)]
	HostEval(act, z, 0, phi)
	if n == 1 { // one chain: keep the sum in a register
		s := f[0]
		if w == nil {
			for _, v := range phi {
				s += v
			}
		} else {
			for j, v := range phi {
				s += float64(w[j] * v)
			}
		}
		f[0] = s
		return
	}
	for j := 0; j < len(phi); j += n {
		row := phi[j : j+n]
		f := f[:len(row)]
		if w == nil {
			for i, v := range row {
				f[i] += v
			}
			continue
		}
		wj := w[j/n]
		for i, v := range row {
			f[i] += float64(wj * v)
		}
	}
}

// HostA writes A_ji = w_j φ′(z_ij) into a (len(z)) for a block's rows z
// [k, n] of Zᵀ with their weights w (nil: unit weights; n = len(z)/len(w)):
// the host home of A (HostForward.A weighs a kept φ′ the same way). With
// n = 1, z is one example's pre-activations over the block.
func HostA(act Activation, w, z, a []float64) {
	HostEval(act, z, 1, a)
	if w != nil {
		weighRows(w, a, a)
	}
}

// weighRows writes w_j v_ji into out for v [len(w), n] (out may be v).
func weighRows(w, v, out []float64) {
	if len(w) == 0 {
		return
	}
	n := len(v) / len(w)
	if n == 1 {
		out = out[:len(w)]
		for j, x := range v[:len(w)] {
			out[j] = w[j] * x
		}
		return
	}
	for j, wj := range w {
		row := v[j*n : (j+1)*n]
		o := out[j*n : (j+1)*n][:len(row)]
		for i, x := range row {
			o[i] = wj * x
		}
	}
}

// HostResiduals writes r = f − y into r (which may be f) and returns
// L = Σ_i r_i², summed in order: the host home of r and L.
func HostResiduals(f, y, r []float64) float64 {
	loss := 0.0
	for i, v := range f {
		ri := v - y[i]
		r[i] = ri
		loss += ri * ri
	}
	return loss
}

// forwardCubic is Forward's f and A (every point of the flow needs J Jᵀ) in
// one pass over Zᵀ for the cubic: the values and the order of the sums are
// those of HostAddOutputs and HostA.
func (h *HostForward) forwardCubic() {
	net := h.Net
	p := net.Problem
	n := p.N
	c0, c1, d0, d1 := net.c0, net.c1, net.d0, net.d1
	f := make([]float64, n)
	a := net.Take()
	for j := range p.M {
		z := h.Zt[j*n : (j+1)*n]
		ar := a[j*n : (j+1)*n][:len(z)]
		f := f[:len(z)]
		if net.unit {
			for i, v := range z {
				f[i] += float64((c1*v*v + c0) * v)
				ar[i] = d1*v*v + d0
			}
			continue
		}
		w := p.W[j]
		for i, v := range z {
			f[i] += float64(w * float64((c1*v*v+c0)*v))
			ar[i] = float64(w * float64(d1*v*v+d0))
		}
	}
	h.F, h.a = f, a
	if net.unit {
		h.phi[1] = a
	}
}

// CubicCurvature reports whether φ is the cubic evaluated inline (ν ≠ 0),
// and then its φ″(z) = k2·z and φ‴ = k3, the values Phi(2) and Phi(3) hold.
func (net *HostNet) CubicCurvature() (k2, k3 float64, ok bool) { return net.k2, net.k3, net.cubic }

// HostForward is Forward on the host, at one Zᵀ. Derived values are computed
// on first use and kept.
type HostForward struct {
	Net  *HostNet
	Zt   []float64 // [m, n]
	F, R []float64 // [n]: outputs and residuals f − y

	phi [4][]float64
	a   []float64
	jjt []float64
}

// Phi returns φ^(order)(Zᵀ) [m, n].
func (h *HostForward) Phi(order int) []float64 {
	if h.phi[order] == nil {
		out := h.Net.Take()
		HostEval(h.Net.Problem.Act, h.Zt, order, out)
		h.phi[order] = out
	}
	return h.phi[order]
}

// A returns A_ji = w_j φ'(z_ij), neuron-major [m, n]: HostA's values, with
// φ′ kept for the curvature terms.
func (h *HostForward) A() []float64 {
	if h.a == nil {
		h.a = h.weigh(h.Phi(1))
	}
	return h.a
}

// weigh returns v [m, n] times w_j along the neurons (a buffer from Take),
// or v itself for w = 1.
func (h *HostForward) weigh(v []float64) []float64 {
	if h.Net.unit {
		return v
	}
	out := h.Net.Take()
	weighRows(h.Net.Problem.W, v, out)
	return out
}

// SumNeurons returns Σ_j v_ji [n] for v [m, n].
func (h *HostForward) SumNeurons(v []float64) []float64 {
	n := h.Net.Problem.N
	out := make([]float64, n)
	for j := 0; j < len(v); j += n {
		row := v[j : j+n]
		for i, x := range row {
			out[i] += x
		}
	}
	return out
}

// ReleasePhi gives φ^(order)'s buffer back to the HostNet for each order
// (recomputed if asked for again): a caller done with the curvature terms
// keeps a remembered forward at two m×n buffers (Zᵀ and A).
func (h *HostForward) ReleasePhi(orders ...int) {
	for _, o := range orders {
		if o == 1 && h.Net.unit {
			continue // it is A
		}
		h.Net.Put(h.phi[o])
		h.phi[o] = nil
	}
}

// Release gives the forward's m×n buffers back to its HostNet (not Zt,
// which the caller owns); the forward must not be used afterwards.
func (h *HostForward) Release() {
	if !h.Net.unit { // else a is φ′
		h.Net.Put(h.a)
	}
	for i, b := range h.phi {
		h.Net.Put(b)
		h.phi[i] = nil
	}
	h.a = nil
}

// JJT returns J Jᵀ = (X Xᵀ) ∘ (Aᵀ A) [n, n], computed once.
func (h *HostForward) JJT() []float64 {
	if h.jjt == nil {
		p := h.Net.Problem
		out := hostGramOfColumns(h.A(), p.M, p.N)
		for i, g := range h.Net.G {
			out[i] *= g
		}
		h.jjt = out
	}
	return h.jjt
}

// hostGramOfColumns returns aᵀa [n, n] for a [m, n] (linalg.GramColumns:
// in-order fused sums, the same bits on every machine and number of cores).
func hostGramOfColumns(a []float64, m, n int) []float64 {
	out := make([]float64, n*n)
	linalg.GramColumns(out, a, m, n)
	return out
}

// Jv returns J V [n] for the direction V X, V [m, n]: Σ_j A_ji (V G)_ji.
func (h *HostForward) Jv(v []float64) []float64 {
	vg := h.Net.TimesGram(v, 1, nil)
	defer h.Net.Put(vg)
	a := h.A()
	n := h.Net.Problem.N
	out := make([]float64, n)
	for j := 0; j < len(a); j += n {
		ar, vr := a[j:j+n], vg[j:j+n]
		for i := range ar {
			out[i] += ar[i] * vr[i]
		}
	}
	return out
}

// Corrected writes Zᵀ − Coef(δ) G into out [m, n] (the point moved by
// −Jᵀδ): Coef(δ) G = A · diag(δ) G, formed in the ProductFirst order (no
// m×n temporary; summing the small terms onto Zᵀ directly would round each
// to Zᵀ's scale and leave a retraction a residual twice as large).
func (h *HostForward) Corrected(delta, out []float64) {
	net := h.Net
	n := net.Problem.N
	if net.dg == nil {
		net.dg = make([]float64, n*n)
	}
	HostScaleRows(delta, net.G, net.dg)
	HostSubtractProduct(out, h.Zt, h.A(), net.dg, net.Problem.M, n, n, ProductFirst)
}

// Coef returns c_i A_ji [m, n] (a buffer from Take): Jᵀc is the direction Coef(c) X.
func (h *HostForward) Coef(c []float64) []float64 {
	a := h.A()
	n := h.Net.Problem.N
	out := h.Net.Take()
	for j := 0; j < len(a); j += n {
		ar, or := a[j:j+n], out[j:j+n]
		for i := range ar {
			or[i] = ar[i] * c[i]
		}
	}
	return out
}

// HostEval writes φ^(order)(z) into out, through the activation's slice
// evaluator when it has one (Horner form, no per-element call).
func HostEval(act Activation, z []float64, order int, out []float64) {
	if a, ok := act.(*OddActivation); ok {
		a.hostSlice(z, order, out)
		return
	}
	for i, v := range z {
		out[i] = act.Host(v, order)
	}
}

// hostPoly returns φ^(order)(z) = z^q P(z²): P's coefficients, lowest
// first (nil when φ^(order) = 0), and q.
func (a *OddActivation) hostPoly(order int) (coef []float64, q int) {
	checkOrder(order)
	terms := a.terms(order)
	if len(terms) == 0 {
		return nil, 0
	}
	q = int(terms[len(terms)-1][1])
	top := 0
	for _, t := range terms {
		top = max(top, (int(t[1])-q)/2)
	}
	coef = make([]float64, top+1)
	for _, t := range terms {
		coef[(int(t[1])-q)/2] += t[0]
	}
	return coef, q
}

// hostSlice is evalSq on the host: φ^(order)(z) = z^q P(z²) in Horner form.
func (a *OddActivation) hostSlice(z []float64, order int, out []float64) {
	coef, q := a.hostPoly(order)
	if coef == nil {
		clear(out[:len(z)])
		return
	}
	top := len(coef) - 1
	switch {
	case top == 1 && q == 1: // the cubic's φ
		c0, c1 := coef[0], coef[1]
		for i, v := range z {
			out[i] = (c1*v*v + c0) * v
		}
	case top == 1 && q == 0: // the cubic's φ′
		c0, c1 := coef[0], coef[1]
		for i, v := range z {
			out[i] = c1*v*v + c0
		}
	case top == 0 && q == 1: // the cubic's φ″
		for i, v := range z {
			out[i] = coef[0] * v
		}
	case top == 0 && q == 0: // a constant
		for i := range z {
			out[i] = coef[0]
		}
	default:
		for i, v := range z {
			u := v * v
			s := coef[top]
			for e := top - 1; e >= 0; e-- {
				s = s*u + coef[e]
			}
			out[i] = s * hostIntPow(v, q)
		}
	}
}

// HostFeatures writes z = θ Xᵀ [rows, n] for rows θ [rows, d] of Θ, with xt
// = Xᵀ [d, n] (Problem.XT): the host home of Zᵀ = ΘXᵀ (the host trainers'
// blocks, adopting a Θ state, the metrics' blocks, the automatic settings).
// Small products, and those with d ≤ loopsUpTo, are summed in loops (gonum's
// Gemm allocates per call and gains nothing at such widths); the others by
// Gemm; loopsUpTo < 0 asks for Gemm at every size (the automatic settings'
// bits, which saved outputs hold).
func HostFeatures(p *Problem, xt, theta, z []float64, loopsUpTo int) {
	rows := len(theta) / p.D
	if loopsUpTo >= 0 && (rows*p.N*p.D <= 1<<15 || p.D <= loopsUpTo) {
		// Row j of Zᵀ as Σ_c θ_jc (column c of X): independent sums, not a
		// chain of dependent adds per entry.
		for j := range rows {
			zj := z[j*p.N : (j+1)*p.N]
			clear(zj)
			for c, v := range theta[j*p.D : (j+1)*p.D] {
				for i, x := range xt[c*p.N : (c+1)*p.N] {
					zj[i] += v * x
				}
			}
		}
		return
	}
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: rows, Cols: p.D, Stride: p.D, Data: theta},
		blas64.General{Rows: p.N, Cols: p.D, Stride: p.D, Data: p.X},
		0, blas64.General{Rows: rows, Cols: p.N, Stride: p.N, Data: z[:rows*p.N]})
}
