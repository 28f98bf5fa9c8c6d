package regularizers

import (
	"fmt"

	"github.com/flatmin/flatmin/internal/fastdot"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// BatchedLoss builds K losses from a batch of parameters [K, shape...]; loss k
// must depend on params[k] only. model.Forward.Loss is one.
type BatchedLoss func(params *Node) *Node

// Unbatched adapts a loss of one parameter node to BatchedLoss by building one
// copy of it per probe; fine for small K, for any loss at all.
func Unbatched(loss func(params *Node) *Node) BatchedLoss {
	return func(batch *Node) *Node {
		k := batch.Shape().Dimensions[0]
		losses := make([]*Node, k)
		for i := range k {
			// A one-hot contraction rather than Slice: Slice's gradient needs Pad,
			// which SimpleGo lacks.
			pick := OneHot(Const(batch.Graph(), int32(i)), k, batch.DType())
			losses[i] = loss(fastdot.DotGeneral(pick, []int{0}, nil, batch, []int{0}, nil))
		}
		return Stack(losses, 0)
	}
}

// Hutchinson estimates Tr ∇²loss at params as the mean of v_kᵀ H v_k over
// `probes` Rademacher vectors v_k, drawn from rng and batched in one graph:
// params are broadcast to [K, ...], and two reverse passes give all K
// Hessian-vector products at once. It returns the new RNG state, the estimate
// and its standard error (the sample standard deviation over √K; 0 for K = 1).
func Hutchinson(loss BatchedLoss, params, rng *Node, probes int) (newRNG, estimate, stderr *Node) {
	if probes < 1 {
		panic(fmt.Sprintf("Hutchinson needs at least one probe, got %d", probes))
	}
	dims := append([]int{probes}, params.Shape().Dimensions...)
	batch := BroadcastToDims(InsertAxes(params, 0), dims...)
	newRNG, u := RandomUniform(rng, shapes.Make(dtypes.Float64, dims...))
	u = ConvertDType(u, params.DType())
	v := Sub(MulScalar(ConvertDType(GreaterOrEqual(u, ConstAs(u, 0.5)), u.DType()), 2), OnesLike(u)) // ±1
	losses := loss(batch)
	if !losses.Shape().Equal(shapes.Make(params.DType(), probes)) {
		panic(fmt.Sprintf("Hutchinson: the batched loss returned shape %s, want [%d]", losses.Shape(), probes))
	}
	grads := Gradient(ReduceAllSum(losses), batch)[0]     // ∇loss_k at params, [K, ...]
	hv := Gradient(ReduceAllSum(Mul(grads, v)), batch)[0] // H v_k, [K, ...]
	quad := Mul(hv, v)
	for quad.Rank() > 1 {
		quad = ReduceSum(quad, -1)
	}
	estimate = ReduceAllMean(quad)
	if probes == 1 {
		return newRNG, estimate, ZerosLike(estimate)
	}
	dev := Sub(quad, estimate)
	variance := DivScalar(ReduceAllSum(Square(dev)), float64(probes-1))
	stderr = Sqrt(DivScalar(variance, float64(probes)))
	return newRNG, estimate, stderr
}
