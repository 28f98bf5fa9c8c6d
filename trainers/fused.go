package trainers

import (
	"math"
	"math/bits"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// rule is one step of a trainer whose update is a closed graph of
// (params, this step's random draws): gd, labelnoise, sam1, penalty.
type rule struct {
	name string
	// draw returns the random inputs of the c steps from step (a uint64
	// scalar node) on, one node per step, from the counter-based stream of
	// key (see counterUniform).
	draw func(net *model.Net, key, step *Node, c int) []*Node
	// step builds one step: the next params and the loss before the step.
	step func(sp space, net *model.Net, params, rnd *Node) (next, loss *Node)
}

// fused runs a rule, c steps per compiled call (unrolled), the RNG state
// threaded through, so that small problems do not pay the per-call overhead
// every step.
type fused struct {
	rule
	b     backends.Backend
	p     *model.Problem
	eng   *engine
	fuse  int
	execs map[int]*Exec
	// The params this trainer's last call produced: when the next call
	// replaces them they are freed at once, not at garbage collection, which
	// never sees a GPU's memory (a large run on CUDA ran out of it).
	ownParams *tensors.Tensor
}

func newFused(b backends.Backend, p *model.Problem, cfg Config, r rule) (*fused, error) {
	eng, err := newEngine(b, p, cfg.Engine)
	if err != nil {
		return nil, err
	}
	f := &fused{rule: r, b: b, p: p, eng: eng, fuse: cfg.Fuse, execs: map[int]*Exec{}}
	if f.fuse <= 0 {
		f.fuse = AutoFuse(p, eng.name)
	}
	// Compile the common graph now, so that bad settings fail before the run.
	if _, err := f.exec(1); err != nil {
		return nil, err
	}
	return f, nil
}

// AutoFuse is the steps per compiled call chosen when Config.Fuse is 0: many
// for small problems, where the per-call and per-op overheads dominate, one
// for large ones, where the graph would only grow.
func AutoFuse(p *model.Problem, engine string) int {
	work := p.N * p.M * p.D
	if engine == EngineFeature {
		work = p.N * p.N * p.M
	}
	switch {
	case work <= 1<<10:
		return 64
	case work <= 1<<14:
		return 16
	case work <= 1<<17:
		return 4
	}
	return 1
}

func (f *fused) Name() string        { return f.name }
func (f *fused) engine() *engine     { return f.eng }
func (f *fused) Engine() string      { return f.eng.name }
func (f *fused) Extras() []string    { return nil }
func (f *fused) Sync(s *State) error { return f.eng.sync(s) }
func (f *fused) Init(s *State) error { return f.eng.adopt(s) }

func (f *fused) Step(s *State) (float64, error) { return f.Advance(s, 1) }

// Advance takes k steps in calls of f.fuse steps, then powers of two.
func (f *fused) Advance(s *State, k int64) (float64, error) {
	if err := f.eng.adopt(s); err != nil {
		return math.NaN(), err
	}
	loss := math.NaN()
	for k > 0 {
		c := f.fuse
		if int64(c) > k {
			c = 1 << (bits.Len64(uint64(k)) - 1)
		}
		e, err := f.exec(c)
		if err != nil {
			return math.NaN(), err
		}
		prevParams := f.eng.current(s)
		out, err := run(e, prevParams, s.RNG, tensors.FromScalar(uint64(s.Step)))
		if err != nil {
			return math.NaN(), err
		}
		f.eng.set(s, out[0])
		s.RNG = out[1]
		s.Step += int64(c)
		k -= int64(c)
		loss = scalar(out[2])
		out[2].FinalizeAll()
		if prevParams == f.ownParams {
			prevParams.FinalizeAll()
		}
		f.ownParams = out[0]
	}
	return loss, nil
}

// exec returns the graph of c steps: (params..., rng) → (params', rng', loss before the last step).
func (f *fused) exec(c int) (*Exec, error) {
	if e, ok := f.execs[c]; ok {
		return e, nil
	}
	e, err := compile(f.b, func(params, rng, step *Node) []*Node {
		net := model.NewNet(params.Graph(), f.p)
		var rnd []*Node
		if f.draw != nil {
			rnd = f.draw(net, streamKey(rng), step, c)
		}
		var loss *Node
		for k := range c {
			var r *Node
			if rnd != nil {
				r = rnd[k]
			}
			params, loss = f.step(f.eng.sp, net, params, r)
		}
		// The RNG state only keys the stream; it passes through (reshaped: a
		// pass-through output could share the input's buffer).
		return []*Node{params, Reshape(rng, RNGStateShape.Dimensions...), loss}
	})
	if err != nil {
		return nil, err
	}
	f.execs[c] = e
	return e, nil
}

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
