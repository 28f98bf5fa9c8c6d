package regularizers

import (
	"fmt"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// NetHessianVectorProduct returns (D²L) V for the network's loss at fw, from
// the model's structure instead of a second reverse pass: with
// P_ij = v_j·x_i and (JV)_i = Σ_j A_ij P_ij,
//
//	((D²L)V)_j = Σ_i 2 (A_ij (JV)_i + r_i w_j φ″(z_ij) P_ij) x_i,
//
// two products with X and O(nm) elementwise work: O(nmd) per vector. V is
// shaped like Θ [m, d], or [K, m, d] for K vectors at once. fw must be an
// unbatched forward in Θ layout.
func NetHessianVectorProduct(fw *model.Forward, v *Node) *Node {
	a, c := NetHessianCoefficients(fw)
	return NetHessianVectorProductFrom(fw.Net, a, c, v)
}

// NetHessianCoefficients returns what the Hessian's products need of the
// forward, A = [w_j φ′(z_ij)] and C = [2 r_i w_j φ″(z_ij)], both [n, m]: at a
// fixed Θ they can be computed once for many products.
func NetHessianCoefficients(fw *model.Forward) (a, c *Node) {
	if fw.Z.Rank() != 2 || fw.NeuronMajor {
		panic(fmt.Sprintf("NetHessianCoefficients needs an unbatched Θ-layout forward, Z is %s", fw.Z.Shape()))
	}
	c = MulScalar(Mul(weighted(fw, fw.Phi(2)), InsertAxes(fw.R, -1)), 2)
	if c.Rank() < 2 || !c.Shape().Equal(fw.Z.Shape()) {
		c = BroadcastToShape(c, fw.Z.Shape())
	}
	return fw.A(), c
}

// NetHessianVectorProductFrom is NetHessianVectorProduct given the
// coefficients of NetHessianCoefficients.
func NetHessianVectorProductFrom(net *model.Net, a, c, v *Node) *Node {
	proj := net.Features(v) // [.., n, m]
	if v.Rank() == 3 {
		a, c = InsertAxes(a, 0), InsertAxes(c, 0)
	}
	jv := InsertAxes(model.JvFrom(a, proj, false), -1) // [.., n, 1]
	coef := Add(Mul(MulScalar(a, 2), jv), Mul(c, proj))
	return net.ContractX(coef)
}
