package model

import (
	"math"

	"gonum.org/v1/gonum/integrate/quad"
)

// AutoInitScale returns a width-aware scale s for Θ₀ (entries N(0, s²)): the
// one at which the initial outputs are about the size of the labels,
//
//	(1/n) Σ_i E f_i(Θ₀)² = (1/n) Σ_i y_i²,
//
// where z_ij = θ_j·x_i ~ N(0, s²‖x_i‖²) independently over j, so that
// E f_i² = Σ_j w_j² E φ(z)² + ((Σ_j w_j)² − Σ_j w_j²)(E φ(z))², the
// expectations by Gauss–Hermite quadrature. A fixed scale makes the outputs
// grow like √m (and the curvature like m); this one keeps them at the
// labels' size at any width. ok is false when the labels are all zero (no
// scale to match; the caller keeps its default).
func AutoInitScale(p *Problem) (s float64, ok bool) {
	target := 0.0
	for _, y := range p.Y {
		target += y * y
	}
	target /= float64(p.N)
	if !(target > 0) {
		return 0, false
	}
	norms := p.RowNormSq()
	rms := 0.0
	for _, v := range norms {
		rms += v
	}
	rms = math.Sqrt(rms / float64(p.N))
	w1, w2 := 0.0, 0.0
	for _, w := range p.W {
		w1 += w
		w2 += w * w
	}
	moment := func(s float64) float64 {
		total := 0.0
		for _, ns := range norms {
			sd := s * math.Sqrt(ns)
			// E g(z) for z ~ N(0, sd²) = (1/√π) ∫ g(√2 sd x) e^{−x²} dx.
			e1 := quad.Fixed(func(x float64) float64 { return p.Act.Host(math.Sqrt2*sd*x, 0) }, math.Inf(-1), math.Inf(1), 64, quad.Hermite{}, 0) / math.SqrtPi
			e2 := quad.Fixed(func(x float64) float64 {
				v := p.Act.Host(math.Sqrt2*sd*x, 0)
				return v * v
			}, math.Inf(-1), math.Inf(1), 64, quad.Hermite{}, 0) / math.SqrtPi
			total += w2*e2 + (w1*w1-w2)*e1*e1
		}
		return total / float64(p.N)
	}
	// Bisection in log s: E f² grows with s for the activations here (odd,
	// increasing). A saturating φ (tanh) may not reach the target: the top.
	lo, hi := math.Log(1e-8/rms), math.Log(10/rms)
	if moment(math.Exp(hi)) <= target {
		return math.Exp(hi), true
	}
	for range 100 {
		mid := 0.5 * (lo + hi)
		if moment(math.Exp(mid)) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Exp(0.5 * (lo + hi)), true
}
