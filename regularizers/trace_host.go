package regularizers

import "github.com/flatmin/flatmin/model"

// TraceHost is the host home of Tr D²L = 2 Σ_i ‖x_i‖² Σ_j (A_ji² + r_i w_j
// φ″(z_ij)), of its manifold form 2 Σ_i ‖x_i‖² Σ_j A_ji² and of ∂F/∂Z
// (docs/MATH.md §3.1–3.3), over blocks of Zᵀ's rows: Add sums Σ_j A_ji² and
// Σ_j w_j φ″(z_ij) block by block (in order of j, so the blocks' split does
// not change the bits), Trace and TraceManifold read the sums, and Grad
// writes ∂F/∂Z of any block from them. The whole array is one block
// (TraceHessianWithGradHost); the metrics and the automatic settings pass
// blocks of neurons. For the cubic, φ″ = k2·z and φ‴ = k3 are read inline
// (model.HostNet.CubicCurvature): no φ″ or φ‴ buffers.
type TraceHost struct {
	net        *model.HostNet
	r          []float64 // residuals f − y; nil: the manifold form only
	c          []float64 // c_i = 2‖x_i‖²
	sq, s      []float64 // Σ_j A_ji², Σ_j w_j φ″(z_ij)
	k2, k3     float64
	cubic      bool
	phi2, phi3 []float64 // a block's φ″, φ‴ when not given (TraceBlock)
}

// TraceBlock is what TraceHost reads of a block of Zᵀ's rows [lo, lo+k).
type TraceBlock struct {
	Lo int       // the block's first neuron (its weights are w[Lo:Lo+k])
	Z  []float64 // the rows of Zᵀ [k, n]
	A  []float64 // A_ji = w_j φ′(z_ij) [k, n] (model.HostA)
	// φ″(Z) and φ‴(Z) [k, n] when kept (model.HostForward.Phi); nil: read
	// inline for the cubic, else computed into the TraceHost's scratch.
	Phi2, Phi3 []float64
}

// NewTraceHost returns empty sums for net's problem at residuals r [n]
// (r nil: only Σ_j A_ji² is summed, for TraceManifold).
func NewTraceHost(net *model.HostNet, r []float64) *TraceHost {
	n := net.Problem.N
	t := &TraceHost{net: net, r: r, c: make([]float64, n), sq: make([]float64, n)}
	for i, v := range net.NormSq {
		t.c[i] = 2 * v
	}
	if r != nil {
		t.s = make([]float64, n)
	}
	t.k2, t.k3, t.cubic = net.CubicCurvature()
	return t
}

// curvature returns φ^(order) of b's rows: b's kept buffer, or the scratch
// (nil for the cubic, whose values are read inline).
func (t *TraceHost) curvature(b TraceBlock, order int) []float64 {
	kept, scratch := b.Phi2, &t.phi2
	if order == 3 {
		kept, scratch = b.Phi3, &t.phi3
	}
	if kept != nil || t.cubic {
		return kept
	}
	if len(*scratch) < len(b.Z) {
		*scratch = make([]float64, len(b.Z))
	}
	out := (*scratch)[:len(b.Z)]
	model.HostEval(t.net.Problem.Act, b.Z, order, out)
	return out
}

// Add adds block b's terms to Σ_j A_ji² and (with residuals) Σ_j w_j φ″(z_ij).
func (t *TraceHost) Add(b TraceBlock) {
	n := len(t.sq)
	w := t.net.Problem.W[b.Lo : b.Lo+len(b.A)/n]
	if t.r == nil {
		for j := range w {
			ar := b.A[j*n : (j+1)*n]
			sq := t.sq[:len(ar)]
			for i, x := range ar {
				sq[i] += x * x
			}
		}
		return
	}
	phi2 := t.curvature(b, 2)
	for j, w := range w {
		ar := b.A[j*n : (j+1)*n]
		sq, s := t.sq[:len(ar)], t.s[:len(ar)]
		if t.cubic {
			k2, z := t.k2, b.Z[j*n : (j+1)*n][:len(ar)]
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
}

// Trace returns Tr D²L from the blocks added (docs/MATH.md §3.1).
func (t *TraceHost) Trace() float64 {
	f := 0.0
	for i, q := range t.net.NormSq {
		f += q * (t.sq[i] + t.r[i]*t.s[i])
	}
	return 2 * f
}

// TraceManifold returns the manifold form 2 Σ_i ‖x_i‖² Σ_j A_ji² (docs/MATH.md
// §3.2; Tr D²L where r = 0, and 2 Tr J Jᵀ anywhere).
func (t *TraceHost) TraceManifold() float64 {
	f := 0.0
	for i, q := range t.net.NormSq {
		f += q * t.sq[i]
	}
	return 2 * f
}

// Grad writes ∂F/∂z_ij = c_i (2 A_ij w_j φ″ + r_i w_j φ‴ + s_i A_ij) for
// block b into out [k, n] (docs/MATH.md §3.3), with c_i = 2‖x_i‖² and s_i =
// Σ_k w_k φ″(z_ik) from every block added: Add first, over all of Zᵀ.
func (t *TraceHost) Grad(b TraceBlock, out []float64) {
	n := len(t.sq)
	w := t.net.Problem.W[b.Lo : b.Lo+len(b.A)/n]
	phi2, phi3 := t.curvature(b, 2), t.curvature(b, 3)
	r := t.r[:n]
	for j, w := range w {
		ar := b.A[j*n : (j+1)*n]
		out := out[j*n : (j+1)*n][:len(ar)]
		c, s, r := t.c[:len(ar)], t.s[:len(ar)], r[:len(ar)]
		if t.cubic {
			k2, k3, z := t.k2, t.k3, b.Z[j*n : (j+1)*n][:len(ar)]
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
}

// TraceHessianWithGradHost returns Tr D²L at h and writes ∂F/∂Z [m, n] into
// grad: TraceHost over the whole array as one block, with h's kept φ″ and
// φ‴ (none for the cubic).
func TraceHessianWithGradHost(h *model.HostForward, grad []float64) float64 {
	t := NewTraceHost(h.Net, h.R)
	b := TraceBlock{Z: h.Zt, A: h.A()}
	if !t.cubic {
		b.Phi2, b.Phi3 = h.Phi(2), h.Phi(3)
	}
	t.Add(b)
	t.Grad(b, grad)
	return t.Trace()
}
