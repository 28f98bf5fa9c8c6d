// Package fastdot provides DotGeneral with a gradient built from DotGeneral
// itself, and matrix products shaped for SimpleGo at large m (rows.go).
//
// GoMLX v0.26.0's stock gradient of DotGeneral multiplies broadcast operands and
// then reduces, materialising a tensor as large as all axes of both operands
// together ([n, m, d] for Z = X Θᵀ). On SimpleGo that is 5–8× slower than the
// product it differentiates. Nodes built with DotGeneral here get a gradient that
// is again a DotGeneral (so second derivatives stay cheap too); every other
// DotGeneral node keeps GoMLX's own rule.
package fastdot

import (
	"runtime"
	"slices"
	"sync"
	"weak"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// axes are the DotGeneral arguments of one node, kept for its gradient.
type axes struct {
	lhsContract, lhsBatch, rhsContract, rhsBatch []int
}

var (
	mu       sync.Mutex
	registry = map[weak.Pointer[graph.Node]]axes{}
	stockVJP graph.VJP
)

func init() {
	stockVJP = graph.VJPRegistration[graph.NodeTypeDotGeneral]
	graph.VJPRegistration[graph.NodeTypeDotGeneral] = dotGeneralVJP
}

// DotGeneral is graph.DotGeneral (same arguments, same result) whose gradient
// is computed with DotGeneral instead of a broadcast product.
func DotGeneral(lhs *graph.Node, lhsContractingAxes, lhsBatchAxes []int, rhs *graph.Node, rhsContractingAxes, rhsBatchAxes []int) *graph.Node {
	out := graph.DotGeneral(lhs, lhsContractingAxes, lhsBatchAxes, rhs, rhsContractingAxes, rhsBatchAxes)
	a := axes{
		lhsContract: normalize(lhsContractingAxes, lhs.Rank()),
		lhsBatch:    normalize(lhsBatchAxes, lhs.Rank()),
		rhsContract: normalize(rhsContractingAxes, rhs.Rank()),
		rhsBatch:    normalize(rhsBatchAxes, rhs.Rank()),
	}
	key := weak.Make(out)
	mu.Lock()
	registry[key] = a
	mu.Unlock()
	// Forget the axes once the node is garbage: graphs come and go in tests.
	runtime.AddCleanup(out, func(k weak.Pointer[graph.Node]) {
		mu.Lock()
		delete(registry, k)
		mu.Unlock()
	}, key)
	return out
}

func normalize(ax []int, rank int) []int {
	out := make([]int, len(ax))
	for i, a := range ax {
		if a < 0 {
			a += rank
		}
		out[i] = a
	}
	return out
}

// cross lists the axes of an operand that are neither contracted nor batch, in order.
func cross(rank int, contract, batch []int) []int {
	var out []int
	for a := 0; a < rank; a++ {
		if !slices.Contains(contract, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

func dotGeneralVJP(node *graph.Node, vjpOutputs []*graph.Node, outShape shapes.Shape) []*graph.Node {
	mu.Lock()
	a, ok := registry[weak.Make(node)]
	mu.Unlock()
	if !ok {
		return stockVJP(node, vjpOutputs, outShape)
	}
	v := vjpOutputs[0]
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	lhsCross := cross(lhs.Rank(), a.lhsContract, a.lhsBatch)
	rhsCross := cross(rhs.Rank(), a.rhsContract, a.rhsBatch)
	nb := len(a.lhsBatch)
	// The output's axes are [batch..., lhsCross..., rhsCross...].
	vBatch := iota(0, nb)
	vLhsCross := iota(nb, len(lhsCross))
	vRhsCross := iota(nb+len(lhsCross), len(rhsCross))
	gradLhs := operandGrad(v, vBatch, vRhsCross, rhs, a.rhsBatch, rhsCross, a.rhsContract,
		a.lhsBatch, lhsCross, a.lhsContract, lhs.Rank())
	gradRhs := operandGrad(v, vBatch, vLhsCross, lhs, a.lhsBatch, lhsCross, a.lhsContract,
		a.rhsBatch, rhsCross, a.rhsContract, rhs.Rank())
	return []*graph.Node{gradLhs, gradRhs}
}

// operandGrad is the gradient with respect to one operand ("this"): the adjoint v
// contracted with the other operand over the other's cross axes. The result has
// axes [batch..., thisCross..., other's contracting axes in ascending order], which
// are then permuted into this operand's layout.
func operandGrad(v *graph.Node, vBatch, vOtherCross []int, other *graph.Node, otherBatch, otherCross, otherContract []int,
	thisBatch, thisCross, thisContract []int, thisRank int) *graph.Node {
	g := DotGeneral(v, vOtherCross, vBatch, other, otherCross, otherBatch)
	sortedOther := slices.Clone(otherContract)
	slices.Sort(sortedOther)
	perm := make([]int, thisRank)
	for k, ax := range thisBatch {
		perm[ax] = k
	}
	for k, ax := range thisCross {
		perm[ax] = len(thisBatch) + k
	}
	for c, ax := range thisContract {
		perm[ax] = len(thisBatch) + len(thisCross) + slices.Index(sortedOther, otherContract[c])
	}
	if isIdentity(perm) {
		return g
	}
	return graph.TransposeAllAxes(g, perm...)
}

func iota(start, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = start + i
	}
	return out
}

func isIdentity(perm []int) bool {
	for i, p := range perm {
		if i != p {
			return false
		}
	}
	return true
}
