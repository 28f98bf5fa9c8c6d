package trainers

import (
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The trainers' noise is counter-based: the value number ctr of the stream
// keyed by key is SplitMix64(key + ctr·γ) — a pure function of the step and
// the draw's place in it, like JAX's generators. So c steps fused into one
// call draw all their values at once and still get exactly what c single
// steps would, a resumed run continues the same stream, and backends agree.
// (SimpleGo's own RNG state does not continue its PCG stream across calls,
// which rules out drawing c steps' worth at once from it.)
const (
	splitmixGamma = 0x9E3779B97F4A7C15
	splitmixMul1  = 0xBF58476D1CE4E5B9
	splitmixMul2  = 0x94D049BB133111EB
)

// streamKey derives the stream's key from the RNG state (seeded by --seed).
func streamKey(rng *Node) *Node {
	a := Reshape(Slice(rng, AxisElem(0)))
	b := Reshape(Slice(rng, AxisElem(1)))
	return BitwiseXor(a, Mul(b, Const(rng.Graph(), uint64(splitmixMul1))))
}

// counterUniform returns uniform values in [0, 1) with 53 random bits for
// the counters ctr (uint64): SplitMix64's output function (shifts are
// divisions: SimpleGo has no logical shift).
func counterUniform(key, ctr *Node) *Node {
	g := ctr.Graph()
	u64 := func(v uint64) *Node { return Const(g, v) } // (Scalar rounds through float64)
	z := Add(Mul(ctr, u64(splitmixGamma)), key)
	z = Mul(BitwiseXor(z, Div(z, u64(1<<30))), u64(splitmixMul1))
	z = Mul(BitwiseXor(z, Div(z, u64(1<<27))), u64(splitmixMul2))
	z = BitwiseXor(z, Div(z, u64(1<<31)))
	return MulScalar(ConvertDType(Div(z, u64(1<<11)), dtypes.Float64), 0x1p-53)
}

// drawUniform returns the uniforms of the c steps from step on, dims values a
// step, as one [c, dims...] block: value v of step t is counter t·size + v.
func drawUniform(key, step *Node, c int, dims ...int) *Node {
	size := 1
	for _, d := range dims {
		size *= d
	}
	g := key.Graph()
	shape := shapes.Make(dtypes.Uint64, append([]int{c}, dims...)...)
	ctr := Add(IotaFull(g, shape), Mul(step, Const(g, uint64(size))))
	return counterUniform(key, ctr)
}

// drawNormal returns c steps of n standard normal values (Box–Muller on
// pairs of uniforms), mapped by the elementwise f on the whole block, as
// one [n] node per step.
func drawNormal(key, step *Node, c, n int, f func(z *Node) *Node) []*Node {
	u := drawUniform(key, step, c, 2, n)
	z := f(boxMuller(u)) // [c, n]
	out := make([]*Node, c)
	for k := range c {
		out[k] = Reshape(Slice(z, AxisElem(k)), n)
	}
	return out
}

// boxMuller maps uniforms u [c, 2, n] to normals [c, n].
func boxMuller(u *Node) *Node {
	dims := u.Shape().Dimensions
	u1 := Slice(u, AxisRange(), AxisElem(0))
	u2 := Slice(u, AxisRange(), AxisElem(1))
	u1 = Max(u1, Scalar(u.Graph(), dtypes.Float64, math.SmallestNonzeroFloat64))
	z := Mul(Sqrt(MulScalar(Log(u1), -2)), Cos(MulScalar(u2, 2*math.Pi)))
	return Reshape(z, dims[0], dims[2])
}

// drawIndices returns c steps of b example indices in [0, n), one [b] int32 node per step.
func drawIndices(key, step *Node, c, b, n int) []*Node {
	u := drawUniform(key, step, c, b)
	idx := MinScalar(ConvertDType(Floor(MulScalar(u, float64(n))), dtypes.Int32), float64(n-1))
	out := make([]*Node, c)
	for k := range c {
		out[k] = Reshape(Slice(idx, AxisElem(k)), b)
	}
	return out
}

// The host forms of the same draws, bit for bit (tests hold the host
// trainers' trajectories to the graphs').

// hostStreamKey is streamKey on the host, from the RNG state's values.
func hostStreamKey(rng []uint64) uint64 { return rng[0] ^ rng[1]*splitmixMul1 }

// hostUniform is counterUniform on the host: value ctr of the stream keyed
// by key, SplitMix64's output as a uniform in [0, 1) with 53 random bits.
func hostUniform(key, ctr uint64) float64 {
	z := key + ctr*splitmixGamma
	z = (z ^ (z >> 30)) * splitmixMul1
	z = (z ^ (z >> 27)) * splitmixMul2
	z ^= z >> 31
	return float64(z>>11) * 0x1p-53
}

// hostBoxMuller is boxMuller on the host: the normal from uniforms u1, u2.
func hostBoxMuller(u1, u2 float64) float64 {
	u1 = math.Max(u1, math.SmallestNonzeroFloat64)
	return math.Sqrt(math.Log(u1)*-2) * math.Cos(u2*(2*math.Pi))
}

// hostIndex is drawIndices on the host: the index in [0, n) of uniform u.
func hostIndex(u float64, n int) int { return min(int(math.Floor(u*float64(n))), n-1) }
