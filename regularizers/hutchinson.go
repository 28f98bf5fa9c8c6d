package regularizers

import (
	"fmt"

	"github.com/flatmin/flatmin/internal/fastdot"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
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
//
// The probes are packed random bits (see probeWords): HutchinsonTraceHessian
// draws the same ones from the same rng, so for the network's loss the two
// give the same estimate up to rounding.
func Hutchinson(loss BatchedLoss, params, rng *Node, probes int) (newRNG, estimate, stderr *Node) {
	checkProbes(probes)
	dims := append([]int{probes}, params.Shape().Dimensions...)
	batch := BroadcastToDims(InsertAxes(params, 0), dims...)
	newRNG, v := rademacherProbes(rng, probes, params.Shape().Dimensions, params.DType()) // ±1, [K, ...]
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
	estimate, stderr = meanAndStderr(quad)
	return newRNG, estimate, stderr
}

func checkProbes(probes int) {
	if probes < 1 {
		panic(fmt.Sprintf("Hutchinson needs at least one probe, got %d", probes))
	}
}

// meanAndStderr returns the mean of the K samples q [K] and its standard error
// (the sample standard deviation over √K; 0 for K = 1).
func meanAndStderr(q *Node) (mean, stderr *Node) {
	k := q.Shape().Dimensions[0]
	mean = ReduceAllMean(q)
	if k == 1 {
		return mean, ZerosLike(mean)
	}
	variance := DivScalar(ReduceAllSum(Square(Sub(q, mean))), float64(k-1))
	return mean, Sqrt(DivScalar(variance, float64(k)))
}

// probeBits is the number of probe entries one random word carries.
const probeBits = 32

// probeGrid is the rows × cols grid the probes of a parameter with these
// dimensions are drawn on: the last axis gives the columns and all the others
// together the rows; a scalar or a vector is a single column.
func probeGrid(dims []int) (rows, cols int) {
	switch len(dims) {
	case 0:
		return 1, 1
	case 1:
		return dims[0], 1
	}
	rows = 1
	for _, d := range dims[:len(dims)-1] {
		rows *= d
	}
	return rows, dims[len(dims)-1]
}

// probeWords draws the random bits of `probes` Rademacher probes on a
// rows × cols grid as words [K, W, cols] (uint32, W = ⌈rows/32⌉): entry
// (r, c) of probe k is +1 where bit r / W of word [k, r mod W, c] is set and
// −1 where it is clear, so a word holds 32 rows of one column, W rows apart.
//
// Packing matters for speed: one 32-bit word per 32 entries costs the RNG a
// small fraction of a float per entry (on SimpleGo, RandomUniform's float64
// draw for K = 10 probes of a 1000×64 Θ takes about as long as the whole of
// HutchinsonTraceHessian). The words are RandomIntN's uniform integers on
// [0, 2³²), whose bits are fair up to O(2⁻³²).
func probeWords(rng *Node, probes, rows, cols int) (newRNG, words *Node) {
	w := (rows + probeBits - 1) / probeBits
	return RandomIntN(rng, uint64(1)<<probeBits, shapes.Make(dtypes.Uint32, probes, w, cols))
}

// probeBitPlanes reads the probes' words [K, W, cols] as 32 bit planes [32,
// K·W·cols] (uint32): plane b is 2^b where bit b of a word is set and 0
// where it is clear, so entry (b·W + r, c) of probe k is +1 where plane b is
// nonzero at (k, r, c) and −1 where it is zero. It is the one reading of
// the packed bits: rademacherProbes turns it into ±1, and
// HutchinsonTraceHessian contracts it with 2^(1−b)·x_i, exact powers of two.
// The masks are a constant as large as the planes: an elementwise op on
// same-shape operands is several times faster on SimpleGo than one that
// broadcasts.
func probeBitPlanes(words *Node) *Node {
	size := words.Shape().Size()
	flat := Reshape(words, 1, size)
	copies := make([]*Node, probeBits)
	for b := range copies {
		copies[b] = flat
	}
	return BitwiseAnd(Concatenate(copies, 0), Const(words.Graph(), bitMasks(size)))
}

// bitMasks is [32, size] uint32 with row b all 2^b.
func bitMasks(size int) *tensors.Tensor {
	masks := make([]uint32, probeBits*size)
	for b := range probeBits {
		row := masks[b*size : (b+1)*size]
		for i := range row {
			row[i] = 1 << b
		}
	}
	return tensors.FromFlatDataAndDimensions(masks, probeBits, size)
}

// rademacherProbes draws `probes` Rademacher vectors shaped like dims, as
// [K, dims...] of ±1 in dtype, from the words of probeWords.
func rademacherProbes(rng *Node, probes int, dims []int, dtype dtypes.DType) (newRNG, v *Node) {
	rows, cols := probeGrid(dims)
	newRNG, words := probeWords(rng, probes, rows, cols) // [K, W, cols]
	w := words.Shape().Dimensions[1]
	planes := Reshape(probeBitPlanes(words), probeBits, probes, w, cols)
	set := NotEqual(planes, ScalarZero(rng.Graph(), dtypes.Uint32))
	v = Sub(MulScalar(ConvertDType(set, dtype), 2), ScalarOne(rng.Graph(), dtype))
	v = TransposeAllAxes(v, 1, 0, 2, 3)       // [K, 32, W, cols]
	v = Reshape(v, probes, probeBits*w, cols) // row r = b·W + (r mod W)
	if probeBits*w != rows {
		v = Slice(v, AxisRange(), AxisRange(0, rows))
	}
	return newRNG, Reshape(v, append([]int{probes}, dims...)...)
}
