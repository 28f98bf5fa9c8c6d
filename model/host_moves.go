package model

import (
	"github.com/flatmin/flatmin/internal/linalg"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// The host's moves. Every update on the host has the form params − A·C
// (A [rows, k], C [k, cols]): the feature engine's move by a direction VX is
// Zᵀ − VG, and a move by Jᵀc has V = A diag(c), so VG = A·(diag(c) G) (the
// Θ engine: Θ − A·(diag(c) X)). HostScaleRows forms diag(c) R,
// HostSubtractProduct the move, HostMoveBy the move by a velocity U = VG
// already formed (HostNet.TimesGram).

// MoveOrder is how HostSubtractProduct sums params − A·C. The orders round
// differently, and saved outputs hold the bits of each where it is used, so
// the caller chooses.
type MoveOrder int

const (
	// ProductFirst forms each entry of A·C as an in-order fused sum
	// (linalg.Mul), then subtracts it from params: the small terms are summed
	// at their own scale, not rounded to params' one by one (the flow's
	// retraction: a residual half as large). out must not alias params, A
	// or C.
	ProductFirst MoveOrder = iota
	// Accumulate subtracts the terms a_jk c_kl from params one k at a time
	// (loops) when rows·k·cols ≤ 2¹⁵, else by Gemm with β = 1: no m-sized
	// temporary (the host trainers).
	Accumulate
	// AccumulateLoops is Accumulate in loops at every size (the host
	// trainers' skinny blocks, where Gemm gains nothing).
	AccumulateLoops
)

// accumulateLoopsUpTo is the size rows·k·cols up to which Accumulate uses
// loops (Gemm allocates per call and gains nothing below it).
const accumulateLoopsUpTo = 1 << 15

// HostSubtractProduct writes params − A·C into out for params and out
// [rows, cols], A [rows, k] and C [k, cols], all row-major, summed in
// order: the host home of a move (HostForward.Corrected, the host
// trainers). Accumulate and AccumulateLoops work in place: out is params,
// or gets a copy of it first.
func HostSubtractProduct(out, params, a, c []float64, rows, k, cols int, order MoveOrder) {
	out, params, a, c = out[:rows*cols], params[:rows*cols], a[:rows*k], c[:k*cols]
	if order == ProductFirst {
		linalg.Mul(out, a, c, rows, k, cols)
		HostMoveBy(out, params, out, 1)
		return
	}
	if &out[0] != &params[0] {
		copy(out, params)
	}
	if order == AccumulateLoops || rows*k*cols <= accumulateLoopsUpTo {
		for j := range rows {
			aj, oj := a[j*k:(j+1)*k], out[j*cols:(j+1)*cols]
			for i, av := range aj {
				for l, cv := range c[i*cols : (i+1)*cols] {
					oj[l] -= av * cv
				}
			}
		}
		return
	}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, -1,
		blas64.General{Rows: rows, Cols: k, Stride: k, Data: a},
		blas64.General{Rows: k, Cols: cols, Stride: cols, Data: c},
		1, blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: out})
}

// HostMoveBy writes params − s·u into out (which may be params or u): the
// host home of a move by a velocity u formed beforehand (the flow's line
// search moves Zᵀ − η·VG for several η with one VG; s = 1 subtracts a
// product HostSubtractProduct formed).
func HostMoveBy(out, params, u []float64, s float64) {
	u, out = u[:len(params)], out[:len(params)]
	if s == 1 {
		for k, z := range params {
			out[k] = z - u[k]
		}
		return
	}
	for k, z := range params {
		out[k] = z - s*u[k]
	}
}

// HostScaleRows writes diag(c) R into out for R [len(c), cols]: row i of R
// times c_i. A move by Jᵀc is A·(diag(c) G) (feature engine) or A·(diag(c)
// X) (Θ engine), so the n×n or n×d factor is scaled, not A [m, n].
func HostScaleRows(c, r, out []float64) {
	cols := len(r) / len(c)
	for i, ci := range c {
		row := r[i*cols : (i+1)*cols]
		o := out[i*cols : (i+1)*cols][:len(row)]
		for l, v := range row {
			o[l] = ci * v
		}
	}
}

// HostDot returns Σ_k a_k b_k, summed in order: the host's one inner
// product (norms, ‖VX‖² = ⟨V, VG⟩, the flow's cᵀr).
func HostDot(a, b []float64) float64 {
	b = b[:len(a)]
	s := 0.0
	for k, v := range a {
		s += v * b[k]
	}
	return s
}

// Velocity writes u = V G [k, n], what Zᵀ changes by per unit step along
// the direction VX, and returns ‖VX‖² = ⟨V, VG⟩, for V all of Zᵀ's rows or a
// block of them (whose ⟨V, VG⟩ add up to the whole's): the host home of both
// (the flow's P∇F, the host sam, the metrics' blocks).
func (net *HostNet) Velocity(v, u []float64) float64 {
	u = net.TimesGram(v, 1, u)
	return HostDot(v, u)
}
