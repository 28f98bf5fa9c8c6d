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
	w := leadTo(fw.Net.W, fw.Z.Rank())
	a := fw.A()                                          // w_j φ'(z_ij)
	curv := Mul(Mul(fw.Phi(2), w), InsertAxes(fw.R, -1)) // r_i w_j φ''(z_ij)
	perRow := ReduceSum(Add(Square(a), curv), -1)        // [.., n]
	return MulScalar(ReduceSum(Mul(perRow, leadTo(fw.Net.NormSq, perRow.Rank())), -1), 2)
}

// TraceHessianManifold returns 2 Σ_i ‖Df_i‖² = 2 Σ_i ‖x_i‖² Σ_j w_j² φ'(z_ij)²,
// which equals Tr D²L where the loss is zero.
func TraceHessianManifold(fw *model.Forward) *Node {
	perRow := ReduceSum(Square(fw.A()), -1)
	return MulScalar(ReduceSum(Mul(perRow, leadTo(fw.Net.NormSq, perRow.Rank())), -1), 2)
}

// TraceHessianGrad returns ∇_Θ Tr D²L by GoMLX autodiff of TraceHessian
// (fw.Theta must be unbatched).
func TraceHessianGrad(fw *model.Forward) *Node {
	return Gradient(TraceHessian(fw), fw.Theta)[0]
}

func leadTo(x *Node, rank int) *Node {
	for x.Rank() < rank {
		x = InsertAxes(x, 0)
	}
	return x
}
