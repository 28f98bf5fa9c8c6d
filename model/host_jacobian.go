package model

import "github.com/flatmin/flatmin/internal/linalg"

// The Jacobian's structured products on the host (docs/MATH.md §2.4), for
// any block of Zᵀ's rows: JJᵀ = G ∘ AᵀA, J·VX = Σ_j A ∘ VG, Coef(c) = A ∘ 1cᵀ.

// JJT returns J Jᵀ = (X Xᵀ) ∘ (Aᵀ A) [n, n], computed once.
func (h *HostForward) JJT() []float64 {
	if h.jjt == nil {
		p := h.Net.Problem
		h.jjt = HostJJT(h.Net.G, hostGramOfColumns(h.A(), p.M, p.N))
	}
	return h.jjt
}

// HostJJT returns J Jᵀ = G ∘ AᵀA [n, n], written over ata = AᵀA, for G = X
// Xᵀ: J_i = Σ_j A_ji e_j ⊗ x_i, so (J Jᵀ)_ik = (AᵀA)_ik x_i·x_k. It is the
// host home of J Jᵀ from AᵀA, whichever way AᵀA was summed (HostForward.JJT,
// a sum over blocks of neurons, the optimum's closed form).
func HostJJT(g, ata []float64) []float64 {
	for i, v := range g {
		ata[i] *= v
	}
	return ata
}

// hostGramOfColumns returns aᵀa [n, n] for a [m, n] (linalg.GramColumns:
// in-order fused sums, the same bits on every machine and number of cores).
func hostGramOfColumns(a []float64, m, n int) []float64 {
	out := make([]float64, n*n)
	linalg.GramColumns(out, a, m, n)
	return out
}

// HostAddGramOfColumns adds aᵀa to ata [n, n] for a block's rows a [k, n]
// of A, through part [n, n] (scratch): AᵀA summed over blocks of neurons,
// for HostJJT (the blockwise curvature bound and metrics).
func HostAddGramOfColumns(ata, part, a []float64, n int) {
	linalg.GramColumns(part, a, len(a)/n, n)
	for k, v := range part[:len(ata)] {
		ata[k] += v
	}
}

// Jv returns J V [n] for the direction V X, V [m, n]: Σ_j A_ji (V G)_ji
// (HostAddJv over all of Zᵀ's rows).
func (h *HostForward) Jv(v []float64) []float64 {
	vg := h.Net.TimesGram(v, 1, nil)
	defer h.Net.Put(vg)
	out := make([]float64, h.Net.Problem.N)
	HostAddJv(h.A(), vg, out)
	return out
}

// HostAddJv adds a block of neurons' part of J V, Σ_j A_ji (V G)_ji, to out
// [n], for the block's rows of A and of V G [k, n] (HostNet.TimesGram),
// summed over j in order: the host home of J·VX in the feature layout
// (HostForward.Jv, the metrics' blocks), whose blocks added into one out
// from 0 give the whole array's bits.
func HostAddJv(a, vg, out []float64) {
	n := len(out)
	for j := 0; j < len(a); j += n {
		ar, vr := a[j:j+n], vg[j:j+n]
		for i := range ar {
			out[i] += ar[i] * vr[i]
		}
	}
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

// Coef returns c_i A_ji [m, n] (a buffer from Take): Jᵀc is the direction
// Coef(c) X (HostCoef over all of Zᵀ's rows).
func (h *HostForward) Coef(c []float64) []float64 {
	out := h.Net.Take()
	HostCoef(h.A(), c[:h.Net.Problem.N], out)
	return out
}

// HostCoef writes c_i A_ji into out for a block's rows of A [k, n] and c
// [n]: the host home of Coef(c) (HostForward.Coef, the metrics' blocks;
// ∂L/∂Z = Coef(2r)).
func HostCoef(a, c, out []float64) {
	n := len(c)
	for j := 0; j < len(a); j += n {
		ar, or := a[j:j+n], out[j:j+n]
		for i := range ar {
			or[i] = ar[i] * c[i]
		}
	}
}
