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

	// The cubic φ = z·cubicP(c, z) with c₀ ≠ 0 (cubic set): Forward takes f
	// and A in one pass (cubicRows), with φ′ = cubicP(d, z); the curvature
	// terms read φ″ = k₂z, φ‴ = k₃ (CubicCurvature), Phi's values.
	cubic  bool
	c, d   [2]float64
	k2, k3 float64
}

// NewHostNet prepares p for host evaluation.
func NewHostNet(p *Problem) *HostNet {
	net := &HostNet{Problem: p, G: p.Gram(), NormSq: p.RowNormSq(), unit: p.UnitWeights()}
	c, okc := quadratic(p.Act, 0, 1)
	d, okd := quadratic(p.Act, 1, 0)
	if a, ok := p.Act.(*OddActivation); ok && okc && okd {
		k2, q2 := a.poly(2)
		k3, q3 := a.poly(3)
		// hostSlice's cases "the cubic's φ″" and "a constant".
		if len(k2) == 1 && q2 == 1 && len(k3) == 1 && q3 == 0 {
			net.cubic = true
			net.c, net.d, net.k2, net.k3 = c, d, k2[0], k3[0]
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

// TimesGram returns scale · V G for V [k, n] (row-major: Zᵀ's m rows or a
// block of them), into out[:len(v)], or into a buffer from Take when out is
// nil (out may not alias v). Each entry is an in-order fused sum
// (linalg.MulSquare): the same bits on every machine, whatever the blocks.
func (net *HostNet) TimesGram(v []float64, scale float64, out []float64) []float64 {
	n := net.Problem.N
	if out == nil {
		out = net.Take()
	}
	out = out[:len(v)]
	linalg.MulSquare(out, v, net.G, len(v)/n, n, scale)
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
	if net.cubic { // f and A (every point of the flow needs J Jᵀ) in one pass
		h.F, h.a = make([]float64, p.N), net.Take()
		cubicRows(net.c, net.d, net.weights(), zt, p.N, h.F, h.a)
		if net.unit {
			h.phi[1] = h.a
		}
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
// pre-activations over the block (1-SAM's rows). For the cubic the loop is
// cubicRows' (phi unused), which HostNet.Forward runs for f and A at once.
func HostAddOutputs(act Activation, w, z, phi, f []float64) {
	n := len(f)
	if c, ok := quadratic(act, 0, 1); ok {
		cubicRows(c, [2]float64{}, w, z, n, f, nil)
		return
	}
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
// n = 1, z is one example's pre-activations over the block. For the cubic
// the loop is cubicRows'.
func HostA(act Activation, w, z, a []float64) {
	if d, ok := quadratic(act, 1, 0); ok {
		n := len(z)
		if len(w) > 0 {
			n /= len(w)
		}
		cubicRows([2]float64{}, d, w, z, n, nil, a)
		return
	}
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
// L = Σ_i r_i² (HostLoss): the host home of r.
func HostResiduals(f, y, r []float64) float64 {
	for i, v := range f {
		r[i] = v - y[i]
	}
	return HostLoss(r)
}

// HostLoss returns L = Σ_i r_i² for residuals r, summed in order: the host
// home of the loss (docs/MATH.md §1.2: a sum, no ½).
func HostLoss(r []float64) float64 { return HostDot(r, r) }

// cubicRows is f and A for φ = z·cubicP(c, z), φ′ = cubicP(d, z) (the cubic)
// over rows z [len(z)/n, n] of Zᵀ with weights w (nil: unit): it adds
// Σ_j w_j φ(z_ij) into f [n] unless f is nil and writes A_ji = w_j φ′(z_ij)
// into a unless a is nil, in one pass. It is the cubic's loop of
// HostAddOutputs, HostA and HostNet.Forward (both at once), with their
// roundings: each weighted term is rounded, then added in order of j.
func cubicRows(c, d [2]float64, w, z []float64, n int, f, a []float64) {
	c0, c1, d0, d1 := c[0], c[1], d[0], d[1] // scalars stay in registers
	// Unit weights skip the product by 1 (exact, but it costs time).
	switch {
	case a == nil && n == 1: // one chain: keep the sum in a register
		s := f[0]
		for j, v := range z {
			s += float64(weightAt(w, j) * float64(cubicP(c0, c1, v)*v))
		}
		f[0] = s
	case a == nil && w == nil:
		for j := 0; j < len(z); j += n {
			row := z[j : j+n]
			f := f[:len(row)]
			for i, v := range row {
				f[i] += cubicP(c0, c1, v) * v
			}
		}
	case a == nil:
		for j := 0; j < len(z); j += n {
			row, wj := z[j:j+n], w[j/n]
			f := f[:len(row)]
			for i, v := range row {
				f[i] += float64(wj * float64(cubicP(c0, c1, v)*v))
			}
		}
	case f == nil && w == nil:
		a := a[:len(z)]
		for i, v := range z {
			a[i] = cubicP(d0, d1, v)
		}
	case f == nil:
		for j := 0; j < len(z); j += n {
			row, wj := z[j:j+n], w[j/n]
			ar := a[j : j+n][:len(row)]
			for i, v := range row {
				ar[i] = float64(wj * cubicP(d0, d1, v))
			}
		}
	case w == nil:
		for j := 0; j < len(z); j += n {
			row := z[j : j+n]
			f, ar := f[:len(row)], a[j : j+n][:len(row)]
			for i, v := range row {
				f[i] += cubicP(c0, c1, v) * v
				ar[i] = cubicP(d0, d1, v)
			}
		}
	default:
		for j := 0; j < len(z); j += n {
			row, wj := z[j:j+n], w[j/n]
			f, ar := f[:len(row)], a[j : j+n][:len(row)]
			for i, v := range row {
				f[i] += float64(wj * float64(cubicP(c0, c1, v)*v))
				ar[i] = float64(wj * cubicP(d0, d1, v))
			}
		}
	}
}

// weightAt is w[j], or 1 for unit weights (w nil): 1·x = x exactly.
func weightAt(w []float64, j int) float64 {
	if w == nil {
		return 1
	}
	return w[j]
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

// quadratic returns P's coefficients when φ^(order) = z^q P(z²) with P of
// degree 1 and this q: the cubic's φ (q = 1) and φ′ (q = 0) when ν ≠ 0.
func quadratic(act Activation, order, q int) (c [2]float64, ok bool) {
	a, odd := act.(*OddActivation)
	if !odd {
		return c, false
	}
	coef, qa := a.poly(order)
	if len(coef) != 2 || qa != q {
		return c, false
	}
	return [2]float64{coef[0], coef[1]}, true
}

// cubicP is c₁v² + c₀ rounded as (c₁v)v + c₀: the host's one spelling of the
// cubic's P(z²), in hostSlice and cubicRows.
func cubicP(c0, c1, v float64) float64 { return c1*v*v + c0 }

// hostSlice is evalSq on the host: φ^(order)(z) = z^q P(z²) in Horner form
// from poly's table.
func (a *OddActivation) hostSlice(z []float64, order int, out []float64) {
	coef, q := a.poly(order)
	if coef == nil {
		clear(out[:len(z)])
		return
	}
	top := len(coef) - 1
	switch {
	case top == 1 && q == 1: // the cubic's φ
		c0, c1 := coef[0], coef[1]
		for i, v := range z {
			out[i] = cubicP(c0, c1, v) * v
		}
	case top == 1 && q == 0: // the cubic's φ′
		c0, c1 := coef[0], coef[1]
		for i, v := range z {
			out[i] = cubicP(c0, c1, v)
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
