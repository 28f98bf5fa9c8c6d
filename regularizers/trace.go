package regularizers

import (
	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// TraceHessian returns the exact Tr D²L of MATH.md,
//
//	2 Σ_i ‖x_i‖² Σ_j ( w_j² φ'(z_ij)² + r_i w_j φ''(z_ij) ),
//
// valid everywhere, in O(mn) after Z. Scalar, or [K] for a batch of Θ.
func TraceHessian(fw *model.Forward) *Node {
	a := fw.A()                                                              // w_j φ'(z_ij)
	curv := Mul(Mul(fw.Phi(2), fw.PerNeuron(fw.Net.W)), fw.PerExample(fw.R)) // r_i w_j φ''(z_ij)
	perRow := fw.SumNeurons(Add(Square(a), curv))                            // [.., n]
	return MulScalar(ReduceSum(Mul(perRow, leadTo(fw.Net.NormSq, perRow.Rank())), -1), 2)
}

// TraceHessianManifold returns 2 Σ_i ‖Df_i‖² = 2 Σ_i ‖x_i‖² Σ_j w_j² φ'(z_ij)²,
// which equals Tr D²L where the loss is zero.
func TraceHessianManifold(fw *model.Forward) *Node {
	perRow := fw.SumNeurons(Square(fw.A()))
	return MulScalar(ReduceSum(Mul(perRow, leadTo(fw.Net.NormSq, perRow.Rank())), -1), 2)
}

// TraceHessianGrad returns ∇_Θ Tr D²L by GoMLX autodiff of TraceHessian
// (fw.Theta must be unbatched).
func TraceHessianGrad(fw *model.Forward) *Node {
	return Gradient(TraceHessian(fw), fw.Theta)[0]
}

// TraceHessianFeatureGrad returns ∂ Tr D²L / ∂Z, shaped like fw.Z, by
// autodiff of TraceHessian: ∇_Θ Tr D²L is it contracted with X (Net.ContractX),
// and the feature engine moves along it directly (unbatched fw only).
func TraceHessianFeatureGrad(fw *model.Forward) *Node {
	return Gradient(TraceHessian(fw), fw.Z)[0]
}

func leadTo(x *Node, rank int) *Node {
	for x.Rank() < rank {
		x = InsertAxes(x, 0)
	}
	return x
}
