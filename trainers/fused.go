package trainers

import (
	"math"
	"math/bits"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
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

func newFused(b backends.Backend, p *model.Problem, x Execution, r rule) (*fused, error) {
	eng, err := newEngine(b, p, x.Engine)
	if err != nil {
		return nil, err
	}
	f := &fused{rule: r, b: b, p: p, eng: eng, fuse: x.Fuse, execs: map[int]*Exec{}}
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

func (f *fused) Name() string    { return f.name }
func (f *fused) engine() *engine { return f.eng }
func (f *fused) Engine() string  { return f.eng.name }

// Path is PathGraphs.
func (f *fused) Path() string        { return PathGraphs }
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
