package trainers

import (
	"math"
	"math/bits"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// rule is one step of a trainer whose update is a closed graph of
// (params, this step's random draws): gd, labelnoise, sam1, penalty.
type rule struct {
	name string
	// draw returns the new RNG state and the random inputs of c consecutive
	// steps (nil entries when the rule draws nothing). bulk draws all c at
	// once; it must give the same values as c draws of one step.
	draw func(net *model.Net, rng *Node, c int, bulk bool) (*Node, []*Node)
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
	bulk  bool
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
	f := &fused{rule: r, b: b, p: p, eng: eng, fuse: cfg.Fuse, execs: map[int]*Exec{},
		// SimpleGo's RNG is one PCG stream, so one draw of c·k values equals
		// c draws of k (TestFusedStepsEqualSingleSteps); other backends draw per step.
		bulk: b.Name() == simplego.BackendName}
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
		out, err := run(e, prevParams, s.RNG)
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
	e, err := compile(f.b, func(params, rng *Node) []*Node {
		net := model.NewNet(params.Graph(), f.p)
		var rnd []*Node
		if f.draw != nil {
			rng, rnd = f.draw(net, rng, c, f.bulk)
		}
		var loss *Node
		for k := range c {
			var r *Node
			if rnd != nil {
				r = rnd[k]
			}
			params, loss = f.step(f.eng.sp, net, params, r)
		}
		// SimpleGo's RNGBitGenerator can hand back its new state in a pooled
		// buffer that still carries an earlier shape (e.g. [1,3] of a draw of
		// 3 values); a reshape gives it RNGStateShape again.
		return []*Node{params, Reshape(rng, RNGStateShape.Dimensions...), loss}
	})
	if err != nil {
		return nil, err
	}
	f.execs[c] = e
	return e, nil
}

// drawUniform draws c steps of uniform [0, 1) values shaped dims each: one
// [c, dims...] draw (bulk) or c draws of [1, dims...]; either way it returns
// one [1, dims...] node per step.
func drawUniform(rng *Node, c int, bulk bool, dims ...int) (*Node, []*Node) {
	out := make([]*Node, c)
	if bulk {
		var u *Node
		rng, u = RandomUniform(rng, shapes.Make(dtypes.Float64, append([]int{c}, dims...)...))
		for k := range c {
			out[k] = Slice(u, AxisElem(k))
		}
		return rng, out
	}
	for k := range c {
		rng, out[k] = RandomUniform(rng, shapes.Make(dtypes.Float64, append([]int{1}, dims...)...))
	}
	return rng, out
}

// drawNormal draws c steps of n standard normal values each, by Box–Muller on
// pairs of uniforms (as GoMLX's RandomNormal does), maps them by the
// elementwise f (on the whole [c, n] block when bulk) and returns one [n]
// node per step.
func drawNormal(rng *Node, c int, bulk bool, n int, f func(z *Node) *Node) (*Node, []*Node) {
	if bulk {
		var u *Node
		rng, u = RandomUniform(rng, shapes.Make(dtypes.Float64, c, 2, n))
		z := f(boxMuller(u)) // [c, n]
		out := make([]*Node, c)
		for k := range c {
			out[k] = Reshape(Slice(z, AxisElem(k)), n)
		}
		return rng, out
	}
	rng, us := drawUniform(rng, c, false, 2, n)
	for k, u := range us {
		us[k] = Reshape(f(boxMuller(u)), n)
	}
	return rng, us
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

// drawIndices draws c steps of b example indices in [0, n) each, one [b] int32 node per step.
func drawIndices(rng *Node, c int, bulk bool, b, n int) (*Node, []*Node) {
	rng, us := drawUniform(rng, c, bulk, b)
	for k, u := range us {
		idx := ConvertDType(Floor(MulScalar(Reshape(u, b), float64(n))), dtypes.Int32)
		us[k] = MinScalar(idx, float64(n-1))
	}
	return rng, us
}
