package model

import (
	"github.com/flatmin/flatmin/internal/fastdot"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// The Jacobian's structured products in graphs (docs/MATH.md §2.3–2.4): J
// is never formed. ∂f_i/∂θ_j = A_ij x_i, so J·V, Jᵀc and JJᵀ come from A,
// X and G alone, in Θ's layout or the features' (Direction).

// LossCoef returns ∂L/∂Z = 2 r_i A_ij, shaped like Z: ∇L = 2Jᵀr is this
// along X (LossGrad, or the feature engine's direction itself).
func (fw *Forward) LossCoef() *Node {
	if fw.lc == nil {
		fw.lc = fw.Coef(MulScalar(fw.R, 2))
	}
	return fw.lc
}

// LossGrad returns ∇L = 2 Jᵀ r as a direction in the forward's layout
// (Direction), built from the structured product (no autodiff).
func (fw *Forward) LossGrad() *Node { return fw.Direction(fw.LossCoef()) }

// Direction returns the direction Σ_i b_ij x_i for coefficients b shaped like
// Z, in the forward's layout: Θ-shaped (ContractX) from Θ, the coefficients
// b themselves (standing for b X) neuron-major. Not for ForwardRows.
func (fw *Forward) Direction(b *Node) *Node {
	if fw.NeuronMajor {
		return b
	}
	fw.checkNotRows()
	return fw.Net.ContractX(b)
}

// checkNotRows panics for a ForwardRows forward, whose Z is not all examples'.
func (fw *Forward) checkNotRows() {
	if !fw.NeuronMajor && fw.Theta == nil {
		panic("model: a forward on some rows has no direction over all examples")
	}
}

// Jv returns J V [.., n] for a direction V in the forward's layout: Θ-shaped,
// or the coefficients V [m, n] of V X neuron-major.
func (fw *Forward) Jv(v *Node) *Node { return fw.JvOf(fw.DirectionFeatures(v)) }

// DirectionFeatures returns how Z changes per unit step along the direction
// v, shaped like Z: X Vᵀ in the Θ layout, V G (= (V X) Xᵀ) neuron-major.
// Not for ForwardRows.
func (fw *Forward) DirectionFeatures(v *Node) *Node {
	if fw.NeuronMajor {
		return fw.Net.TimesGram(v)
	}
	fw.checkNotRows()
	return fw.Net.Features(v)
}

// JvOf returns (J v)_i = Σ_j A_ij p_ij given the direction's features p
// (DirectionFeatures) shaped like Z.
func (fw *Forward) JvOf(p *Node) *Node { return JvFrom(fw.A(), p, fw.NeuronMajor) }

// JvFrom returns (J v)_i = Σ_j A_ij p_ij for the Jacobian's coefficients A
// and a direction's features p, both laid out like Z (neuron-major [m, n],
// or example-major [.., n, m], where A may lack p's leading batch axes):
// the graph home of J·v, for a Forward (JvOf) and for the network's
// Hessian-vector product, which is given A rather than a forward.
func JvFrom(a, p *Node, neuronMajor bool) *Node {
	if neuronMajor {
		return ReduceSum(Mul(a, p), 0)
	}
	return ReduceSum(Mul(a, p), -1)
}

// Coef returns the per-example coefficients c_i A_ij shaped like Z: Jᵀc is
// the Θ-shaped Σ_i c_i A_ij x_i, i.e. Coef(c) contracted with X over the examples.
func (fw *Forward) Coef(c *Node) *Node { return Mul(fw.A(), fw.PerExample(c)) }

// JTc returns Jᵀ c for c shaped like the outputs, (Jᵀc)_j = Σ_i c_i A_ij x_i,
// as a direction in the forward's layout (Direction of Coef(c)).
func (fw *Forward) JTc(c *Node) *Node { return fw.Direction(fw.Coef(c)) }

// ContractX returns Σ_i b_ij x_i for b [.., n, m]: the Θ-shaped [.., m, d]
// direction whose inner products with the examples are given by b.
func (net *Net) ContractX(b *Node) *Node {
	if b.Rank() == 2 {
		return fastdot.DotGeneral(b, []int{0}, nil, net.X, []int{0}, nil)
	}
	return fastdot.DotGeneral(b, []int{1}, nil, net.X, []int{0}, nil) // [K, m, d]
}

// JJT returns J Jᵀ = (X Xᵀ) ∘ (A Aᵀ), an n×n matrix (only for unbatched Θ).
func (fw *Forward) JJT() *Node {
	a := fw.A()
	neuron := 1
	if fw.NeuronMajor {
		neuron = 0
	}
	var aat *Node
	if fw.NeuronMajor && a.Shape().Size() > 1<<18 {
		aat = gramOfColumns(a)
	} else {
		aat = fastdot.DotGeneral(a, []int{neuron}, nil, a, []int{neuron}, nil)
	}
	return Mul(fw.Net.Gram(), aat)
}

// gramOfColumns returns aᵀa for a large neuron-major a [m, n], summed over
// blocks of rows: contracting over the leading axis makes SimpleGo copy its
// operands transposed, and a block at a time that copy stays small.
func gramOfColumns(a *Node) *Node {
	m := a.Shape().Dimensions[0]
	const rows = 4096
	var sum *Node
	for lo := 0; lo < m; lo += rows {
		block := Slice(a, AxisRange(lo, min(lo+rows, m)))
		part := DotGeneral(block, []int{0}, nil, block, []int{0}, nil)
		if sum == nil {
			sum = part
		} else {
			sum = Add(sum, part)
		}
	}
	return sum
}
