package regularizers

import (
	"math"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
)

// LossHessianNormBound returns an upper bound λ̂ on ‖D²L‖, the largest
// |eigenvalue| of the loss Hessian, at the point fw. With r = f − y,
//
//	D²L = 2 JᵀJ + 2 Σ_i r_i D²f_i,
//
// and D²f_i is block-diagonal over the neurons with blocks w_j φ”(z_ij) x_i x_iᵀ,
// so the second term's norm is at most its largest block's, and
//
//	‖D²L‖ ≤ 2 λ_max(J Jᵀ) + 2 max_j |w_j| Σ_i |r_i φ''(z_ij)| ‖x_i‖².
//
// It is exact at zero loss (D²L = 2JᵀJ) and costs O(n²m) from the forward,
// where a power iteration costs many Hessian-vector products; gradient
// descent on L is stable for η < 2/‖D²L‖, so η = 1/λ̂ is within the limit.
func LossHessianNormBound(fw *model.HostForward) float64 {
	p := fw.Net.Problem
	curv := residualCurvature(fw.R, fw.Phi(2), p.W, fw.Net.NormSq, 0)
	return GaussNewtonCurvature(fw.JJT(), p.N) + 2*curv
}

// GaussNewtonCurvature returns λ_max(2 J Jᵀ) for jjt = J Jᵀ [n, n]: the top
// eigenvalue of the Gauss–Newton part 2 JᵀJ of D²L (which has 2JJᵀ's nonzero
// eigenvalues), the first term of λ̂ and the step-size curvature of the
// benchmark's label-noise rows (docs/MATH.md §3.6, §8.5). If the eigensolver
// fails it returns 2 Tr JJᵀ, an upper bound.
func GaussNewtonCurvature(jjt []float64, n int) float64 {
	return 2 * topEigenvalue(jjt, n)
}

// topEigenvalue is λ_max of the PSD matrix a [n, n] (its trace, an upper
// bound, if the eigensolver fails).
func topEigenvalue(a []float64, n int) float64 {
	if ev, err := linalg.EigenvaluesSym(a, n); err == nil {
		return ev[len(ev)-1]
	}
	return traceOf(a, n)
}

// residualCurvature is max(curv, max_j |w_j| Σ_i |r_i φ″_ji| ‖x_i‖²) over
// the rows j of phi2 [k, n] (φ″ of Zᵀ's rows), whose weights are w[:k]: the
// second term of λ̂, over a block of neurons or all of them.
func residualCurvature(r, phi2, w, normSq []float64, curv float64) float64 {
	n := len(r)
	for j := range len(phi2) / n {
		s := 0.0
		for i := range n {
			s += math.Abs(r[i]*phi2[j*n+i]) * normSq[i]
		}
		curv = max(curv, math.Abs(w[j])*s)
	}
	return curv
}

// LossHessianNormBoundBlocks is LossHessianNormBound over blocks of at
// most block neurons, for a Θ too large to hold Zᵀ and its m×n companions
// whole: rows(lo, hi, buf) returns Zᵀ's rows [lo, hi) ([hi−lo, n], in buf of
// block·n values). Two passes: f, so r (model.HostAddOutputs,
// HostResiduals); then J Jᵀ = G ∘ Σ_b A_bᵀA_b (model.HostA) and each neuron's
// residual-curvature sum. It equals the whole-array bound to rounding (J Jᵀ
// is summed in another order).
func LossHessianNormBoundBlocks(p *model.Problem, rows func(lo, hi int, buf []float64) []float64, block int) float64 {
	n := p.N
	block = max(1, min(block, p.M))
	w := func(lo, hi int) []float64 {
		if p.UnitWeights() {
			return nil
		}
		return p.W[lo:hi]
	}
	buf, work := make([]float64, block*n), make([]float64, block*n)
	f, r := make([]float64, n), make([]float64, n)
	for lo := 0; lo < p.M; lo += block {
		hi := min(lo+block, p.M)
		model.HostAddOutputs(p.Act, w(lo, hi), rows(lo, hi, buf), work, f)
	}
	model.HostResiduals(f, p.Y, r)
	ata, part := make([]float64, n*n), make([]float64, n*n)
	normSq := p.RowNormSq()
	curv := 0.0
	for lo := 0; lo < p.M; lo += block {
		hi := min(lo+block, p.M)
		z := rows(lo, hi, buf)
		a := work[:len(z)]
		model.HostA(p.Act, w(lo, hi), z, a)
		model.HostAddGramOfColumns(ata, part, a, n)
		model.HostEval(p.Act, z, 2, a) // φ″, over A's buffer
		curv = residualCurvature(r, a, p.W[lo:hi], normSq, curv)
	}
	return GaussNewtonCurvature(model.HostJJT(p.Gram(), ata), n) + 2*curv
}

// SharpnessAtOptimum returns λ_max(D²L) at the theory's optimum (opt.OK):
// there the loss is zero, D²L = 2 JᵀJ, and z_ij = z*_i for every neuron, so
// AᵀA = (Σ_j w_j²) d dᵀ with d_i = φ'(z*_i), and J Jᵀ = G ∘ AᵀA = (Σ_j w_j²)
// D G D (docs/MATH.md §3.6). That closed form is O(n²) and exact in z*,
// where a forward at a Θ* would sum m rounded rows. For the cube at large m,
// z*_i → 0, φ'(z*_i) → ν and it grows like m ν² λ_max(G).
func SharpnessAtOptimum(p *model.Problem, opt Optimum) float64 {
	if !opt.OK {
		return math.NaN()
	}
	w2 := 0.0
	for _, w := range p.W {
		w2 += w * w
	}
	d := make([]float64, p.N)
	for i, z := range opt.Z {
		d[i] = p.Act.Host(z, 1)
	}
	ata := make([]float64, p.N*p.N)
	for i := range p.N {
		for k := range p.N {
			ata[i*p.N+k] = w2 * d[i] * d[k]
		}
	}
	return GaussNewtonCurvature(model.HostJJT(p.Gram(), ata), p.N)
}

func traceOf(a []float64, n int) float64 {
	s := 0.0
	for i := range n {
		s += a[i*n+i]
	}
	return s
}
