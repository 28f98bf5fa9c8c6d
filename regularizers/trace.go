package regularizers

import (
	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// TraceHessian returns the exact Tr D²L of docs/MATH.md §3.1,
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

// TraceHessianFeatureGrad returns ∂ Tr D²L / ∂Z, shaped like fw.Z: ∇_Θ Tr D²L
// is it contracted with X (Net.ContractX), and the feature engine moves
// along it directly. In closed form (F = TraceHessian, c_i = 2‖x_i‖²),
//
//	∂F/∂z_ij = c_i w_j (2 w_j φ′φ″ + r_i φ‴) + (c_i Σ_k w_k φ″(z_ik)) w_j φ′(z_ij),
//
// the last term through r_i; tests check it against autodiff of TraceHessian.
func TraceHessianFeatureGrad(fw *model.Forward) *Node {
	net := fw.Net
	c := MulScalar(leadTo(net.NormSq, fw.R.Rank()), 2) // [.., n]
	wphi2, wphi3 := fw.Phi(2), fw.Phi(3)               // w φ″, w φ‴ below
	if !net.Problem.UnitWeights() {
		w := fw.PerNeuron(net.W)
		wphi2, wphi3 = Mul(wphi2, w), Mul(wphi3, w)
	}
	own := Add(MulScalar(Mul(fw.A(), wphi2), 2), Mul(wphi3, fw.PerExample(fw.R))) // 2w²φ′φ″ + r w φ‴
	through := Mul(fw.A(), fw.PerExample(Mul(c, fw.SumNeurons(wphi2))))           // (c Σ w φ″) w φ′
	return Add(Mul(own, fw.PerExample(c)), through)
}

func leadTo(x *Node, rank int) *Node {
	for x.Rank() < rank {
		x = InsertAxes(x, 0)
	}
	return x
}
