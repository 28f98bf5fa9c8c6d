package regularizers

import "github.com/flatmin/flatmin/model"

// TraceHessianHost is TraceHessian on the host path (model.HostForward):
// 2 Σ_i ‖x_i‖² Σ_j (w_j² φ′(z_ij)² + r_i w_j φ″(z_ij)).
func TraceHessianHost(h *model.HostForward) float64 {
	p := h.Net.Problem
	a, phi2 := h.A(), h.Phi(2)
	sq, curv := make([]float64, p.N), make([]float64, p.N)
	for j := range p.M {
		w := p.W[j]
		for i := range p.N {
			k := j*p.N + i
			sq[i] += a[k] * a[k]
			curv[i] += w * phi2[k]
		}
	}
	f := 0.0
	for i := range p.N {
		f += h.Net.NormSq[i] * (sq[i] + h.R[i]*curv[i])
	}
	return 2 * f
}

// TraceHessianFeatureGradHost is TraceHessianFeatureGrad on the host path:
// ∂F/∂z_ij = c_i (2 A_ij w_j φ″ + r_i w_j φ‴ + s_i A_ij) with c_i = 2‖x_i‖²
// and s_i = Σ_k w_k φ″(z_ik), neuron-major [m, n] (a buffer from h.Net.Take).
func TraceHessianFeatureGradHost(h *model.HostForward) []float64 {
	p := h.Net.Problem
	a, phi2, phi3 := h.A(), h.Phi(2), h.Phi(3)
	s := make([]float64, p.N)
	for j := range p.M {
		for i := range p.N {
			s[i] += p.W[j] * phi2[j*p.N+i]
		}
	}
	c := make([]float64, p.N)
	for i := range c {
		c[i] = 2 * h.Net.NormSq[i]
	}
	out := h.Net.Take()
	for j := range p.M {
		w := p.W[j]
		for i := range p.N {
			k := j*p.N + i
			out[k] = c[i] * (2*a[k]*w*phi2[k] + h.R[i]*w*phi3[k] + s[i]*a[k])
		}
	}
	return out
}

// TraceHessianWithGradHost returns TraceHessianHost and writes
// TraceHessianFeatureGradHost into grad [m, n], the same values, in two
// passes over the neurons (the sums Σ_j w_j φ″ are shared) and, for the
// cubic, without φ″ and φ‴ buffers.
func TraceHessianWithGradHost(h *model.HostForward, grad []float64) float64 {
	p := h.Net.Problem
	n := p.N
	a := h.A()
	k2, k3, cubic := h.Net.CubicCurvature()
	var phi2, phi3 []float64
	if !cubic {
		phi2, phi3 = h.Phi(2), h.Phi(3)
	}
	sq, s := make([]float64, n), make([]float64, n) // Σ_j A², Σ_j w φ″
	for j := range p.M {
		w := p.W[j]
		ar := a[j*n : (j+1)*n]
		sq, s := sq[:len(ar)], s[:len(ar)]
		if cubic {
			z := h.Zt[j*n : (j+1)*n][:len(ar)]
			for i, x := range ar {
				sq[i] += x * x
				s[i] += w * float64(k2*z[i])
			}
			continue
		}
		f2 := phi2[j*n : (j+1)*n][:len(ar)]
		for i, x := range ar {
			sq[i] += x * x
			s[i] += w * f2[i]
		}
	}
	f := 0.0
	c := make([]float64, n)
	for i := range n {
		f += h.Net.NormSq[i] * (sq[i] + h.R[i]*s[i])
		c[i] = 2 * h.Net.NormSq[i]
	}
	r := h.R[:n]
	for j := range p.M {
		w := p.W[j]
		ar := a[j*n : (j+1)*n]
		out := grad[j*n : (j+1)*n][:len(ar)]
		c, s, r := c[:len(ar)], s[:len(ar)], r[:len(ar)]
		if cubic {
			z := h.Zt[j*n : (j+1)*n][:len(ar)]
			for i, x := range ar {
				out[i] = c[i] * (2*x*w*float64(k2*z[i]) + r[i]*w*k3 + s[i]*x)
			}
			continue
		}
		f2, f3 := phi2[j*n : (j+1)*n][:len(ar)], phi3[j*n : (j+1)*n][:len(ar)]
		for i, x := range ar {
			out[i] = c[i] * (2*x*w*f2[i] + r[i]*w*f3[i] + s[i]*x)
		}
	}
	return 2 * f
}
