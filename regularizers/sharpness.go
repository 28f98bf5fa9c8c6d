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
	top := 0.0
	if ev, err := linalg.EigenvaluesSym(fw.JJT(), p.N); err == nil {
		top = ev[len(ev)-1]
	} else {
		top = traceOf(fw.JJT(), p.N) // λ_max ≤ Tr for a PSD matrix
	}
	phi2 := fw.Phi(2)
	block := 0.0
	for j := range p.M {
		s := 0.0
		for i := range p.N {
			s += math.Abs(fw.R[i]*phi2[j*p.N+i]) * fw.Net.NormSq[i]
		}
		block = max(block, math.Abs(p.W[j])*s)
	}
	return 2*top + 2*block
}

// SharpnessAtOptimum returns λ_max(D²L) at the theory's optimum (opt.OK):
// there the loss is zero, D²L = 2 JᵀJ, and z_ij = z*_i for every neuron, so
// J Jᵀ = (Σ_j w_j²) D G D with D = diag(φ'(z*_i)) and G = X Xᵀ. For the cube
// at large m, z*_i → 0, φ'(z*_i) → ν and it grows like m ν² λ_max(G).
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
	g := p.Gram()
	for i := range p.N {
		for k := range p.N {
			g[i*p.N+k] *= w2 * d[i] * d[k]
		}
	}
	ev, err := linalg.EigenvaluesSym(g, p.N)
	if err != nil {
		return 2 * traceOf(g, p.N)
	}
	return 2 * ev[len(ev)-1]
}

func traceOf(a []float64, n int) float64 {
	s := 0.0
	for i := range n {
		s += a[i*n+i]
	}
	return s
}
