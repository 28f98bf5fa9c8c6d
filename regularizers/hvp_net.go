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
	if fw.Z.Rank() != 2 || fw.NeuronMajor {
		panic(fmt.Sprintf("NetHessianVectorProduct needs an unbatched Θ-layout forward, Z is %s", fw.Z.Shape()))
	}
	net := fw.Net
	proj := net.Features(v) // [.., n, m]
	a, c, r := fw.A(), weighted(fw, fw.Phi(2)), InsertAxes(fw.R, -1)
	if v.Rank() == 3 {
		a, r = InsertAxes(a, 0), InsertAxes(r, 0)
		if c.Rank() > 0 {
			c = InsertAxes(c, 0)
		}
	}
	jv := InsertAxes(ReduceSum(Mul(a, proj), -1), -1) // [.., n, 1]
	coef := MulScalar(Add(Mul(a, jv), Mul(Mul(r, c), proj)), 2)
	return net.ContractX(coef)
}
