package trainers

import (
	"fmt"

	"github.com/flatmin/flatmin/internal/fastdot"
	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

// Every trainer here moves Θ by something of the form Σ_i b_ij x_i (a
// "direction" given by coefficients b shaped like Z), because L and Tr D²L
// depend on Θ only through Z = XΘᵀ. The Θ engine applies such moves to Θ
// itself. The feature engine keeps the features Zᵀ [m, n] and Θ₀: a move by
// V X (V [m, n]) is Zᵀ ← Zᵀ − V G with G = X Xᵀ, so a step costs O(n²m)
// instead of O(nmd), and Θ = Θ₀ − S X with S = (Z₀ᵀ − Zᵀ) G⁺ is formed only
// when asked for (Sync). Carrying Zᵀ rather than S spares a step two passes
// over [m, n] (one a broadcast) and keeps Z as exact as the Θ engine's.
//
// space is what a compiled graph needs to know about the representation.
// Inside graphs, "params" is Θ [m, d] (Θ engine) or Zᵀ [m, n] (feature
// engine), and a direction is Θ-shaped [m, d] or V [m, n] likewise.
type space interface {
	// forward evaluates the network at params.
	forward(net *model.Net, params *Node) *model.Forward
	// direction returns the direction Σ_i b_ij x_i for coefficients b shaped like fw.Z.
	direction(fw *model.Forward, b *Node) *Node
	// move returns params moved to Θ − scale·v for a direction v.
	move(net *model.Net, params, v *Node, scale float64) *Node
	// moveBy is move with a scale given as a scalar node.
	moveBy(net *model.Net, params, v, scale *Node) *Node
	// moveJT returns params moved to Θ − scale·Jᵀc for c [n], at the point of fw.
	moveJT(fw *model.Forward, params, c *Node, scale float64) *Node
	// jv returns J v [n] for a direction v.
	jv(fw *model.Forward, v *Node) *Node
	// normSq returns ‖v‖² (Frobenius norm of the Θ-shaped direction).
	normSq(net *model.Net, v *Node) *Node
	// velocity returns what params change by per unit step along v (v
	// itself, or V G for the feature engine), so that a line search moves by
	// params − η·velocity without a matrix product per trial η.
	velocity(net *model.Net, v *Node) *Node
	// inner returns ⟨v, u⟩ for a direction v and u = velocity(v): ‖v‖².
	inner(v, u *Node) *Node
	// rows returns z_{i_b, j} [B, m] for example indices idx [B], given
	// also as one-hot rows oneHot [B, n].
	rows(net *model.Net, params, idx, oneHot *Node) *Node
	// moveRows returns params moved to Θ − scale·Σ_b c_bj x_{i_b} for c [B, m].
	moveRows(net *model.Net, params, c, idx *Node, scale float64) *Node
}

// thetaSpace is the reference engine: params are Θ.
type thetaSpace struct{}

func (thetaSpace) forward(net *model.Net, theta *Node) *model.Forward { return net.Forward(theta) }
func (thetaSpace) direction(fw *model.Forward, b *Node) *Node         { return fw.Direction(b) }
func (sp thetaSpace) move(net *model.Net, theta, v *Node, scale float64) *Node {
	return moveAlong(sp, net, theta, v, scaleNode(theta, scale))
}
func (sp thetaSpace) moveBy(net *model.Net, theta, v, scale *Node) *Node {
	return moveAlong(sp, net, theta, v, scale)
}

// moveJT is the Θ layout's move by scale·Jᵀc (the scale on c, before the products).
func (sp thetaSpace) moveJT(fw *model.Forward, theta, c *Node, scale float64) *Node {
	return moveAlong(sp, fw.Net, theta, fw.JTc(scaled(c, scale)), nil)
}
func (thetaSpace) jv(fw *model.Forward, v *Node) *Node            { return fw.Jv(v) }
func (sp thetaSpace) normSq(net *model.Net, v *Node) *Node        { return sp.inner(v, sp.velocity(net, v)) }
func (thetaSpace) velocity(_ *model.Net, v *Node) *Node           { return v }
func (thetaSpace) inner(v, u *Node) *Node                         { return innerProduct(v, u) }
func (thetaSpace) rows(net *model.Net, theta, idx, _ *Node) *Node { return net.RowFeatures(theta, idx) }
func (thetaSpace) moveRows(net *model.Net, theta, c, idx *Node, scale float64) *Node {
	return moveAlongRows(theta, c, net.Rows(idx), scale)
}

// featureSpace: params are Zᵀ [m, n]; a direction V [m, n] stands for V X.
type featureSpace struct{}

func (featureSpace) forward(net *model.Net, zt *Node) *model.Forward { return net.ForwardFeatures(zt) }

func (featureSpace) direction(fw *model.Forward, b *Node) *Node {
	if !fw.NeuronMajor {
		panic("trainers: the feature engine needs a neuron-major forward")
	}
	return fw.Direction(b)
}

func (sp featureSpace) move(net *model.Net, zt, v *Node, scale float64) *Node {
	return moveAlong(sp, net, zt, v, scaleNode(zt, scale))
}
func (sp featureSpace) moveBy(net *model.Net, zt, v, scale *Node) *Node {
	return moveAlong(sp, net, zt, v, scale)
}

// moveJT is the feature layout's move by scale·Jᵀc: Jᵀc = (A ∘ 1cᵀ) X, so
// Zᵀ − s(A ∘ 1cᵀ) G = Zᵀ − A (diag(c) sG). The broadcast is over G's n×n
// rows, not over A's m×n, and the scale rides on the constant s·G (no op
// per step); A carries the weights w.
func (sp featureSpace) moveJT(fw *model.Forward, zt, c *Node, scale float64) *Node {
	return Sub(zt, fastdot.RowsTimes(fw.A(), Mul(fw.Net.GramTimes(scale), InsertAxes(c, -1))))
}

func (featureSpace) jv(fw *model.Forward, v *Node) *Node { return fw.Jv(v) }

// velocity: Θ − s V X has features Zᵀ − s V G.
func (featureSpace) velocity(net *model.Net, v *Node) *Node { return net.TimesGram(v) }
func (featureSpace) inner(v, u *Node) *Node                 { return innerProduct(v, u) }

// normSq: ‖V X‖² = Tr(V G Vᵀ) = ⟨V, V G⟩.
func (sp featureSpace) normSq(net *model.Net, v *Node) *Node { return sp.inner(v, sp.velocity(net, v)) }

func (featureSpace) rows(_ *model.Net, zt, _, oneHot *Node) *Node {
	return DotGeneral(oneHot, []int{1}, nil, zt, []int{1}, nil) // [B, m]
}

// moveRows: Σ_b c_bj x_{i_b} changes Zᵀ by cᵀ G[idx] ([m, B]·[B, n]).
func (featureSpace) moveRows(net *model.Net, zt, c, idx *Node, scale float64) *Node {
	return moveAlongRows(zt, c, Gather(net.Gram(), InsertAxes(idx, -1)), scale)
}

// moveAlong is every move by a direction, in either space: params −
// velocity(scale·v), scale nil meaning 1. The scale goes on v before the
// feature engine's product (the order its saved outputs were made with).
func moveAlong(sp space, net *model.Net, params, v, scale *Node) *Node {
	if scale != nil {
		v = Mul(v, scale)
	}
	return Sub(params, sp.velocity(net, v))
}

// moveAlongRows is 1-SAM's per-example move params − scale·cᵀR[idx], given
// the rows R[idx] [B, ·] of what the direction's coefficients multiply (X
// for Θ, G for Zᵀ): c [B, m] acts only on the drawn examples.
func moveAlongRows(params, c, rows *Node, scale float64) *Node {
	return Sub(params, scaled(DotGeneral(c, []int{0}, nil, rows, []int{0}, nil), scale))
}

// innerProduct is ⟨v, u⟩ summed over all entries.
func innerProduct(v, u *Node) *Node { return ReduceAllSum(Mul(v, u)) }

// scaleNode is scale as a scalar node of params' type, or nil for 1.
func scaleNode(params *Node, scale float64) *Node {
	if scale == 1 {
		return nil
	}
	return Scalar(params.Graph(), params.DType(), scale)
}

// skinny is fastdot.Skinny, which the host products follow too.
const skinny = fastdot.Skinny

func scaled(v *Node, scale float64) *Node {
	if scale == 1 {
		return v
	}
	return MulScalar(v, scale)
}

// engine holds what a trainer needs to keep State in its representation.
type engine struct {
	name string
	p    *model.Problem
	sp   space

	featuresExec *Exec // Θ → Zᵀ = Θ Xᵀ [m, n]
	thetaExec    *Exec // (Θ₀, Zᵀ) → Θ₀ − (Θ₀Xᵀ − Zᵀ) G⁺ X, refined
	sExec        *Exec // (Θ₀, Zᵀ) → S with Θ = Θ₀ − S X
	rowsExec     *Exec // (Θ₀, S, rows [thetaBlock]) → those rows of Θ
	b            backends.Backend
	pinv         []float64
	synced       *tensors.Tensor // the Θ sync formed last, freed when a step replaces it
	// hostStream: StreamTheta forms Θ's rows on the host (hostThetaRows),
	// set by a host trainer that steps in blocks (the graphs' S [m, n]
	// would hold several m×n temporaries).
	hostStream bool
}

// thetaBlock is how many rows of Θ StreamTheta forms at a time.
const thetaBlock = 4096

// shiftOf builds S = (Θ₀Xᵀ − Zᵀ) G⁺ with one refinement step, so that
// Θ = Θ₀ − S X has XΘᵀ = Z to rounding although G⁺ is rounded ∝ cond G.
func shiftOf(net *model.Net, base, zt, gPinv *Node) *Node {
	gap := Sub(net.FeaturesT(base), zt)
	s := fastdot.SkinnyOrDot(gap, gPinv)
	return Add(s, fastdot.SkinnyOrDot(Sub(gap, net.TimesGram(s)), gPinv))
}

// thetaOf is Θ = Θ₀ − S X, or those of its rows that base and s hold.
func thetaOf(net *model.Net, base, s *Node) *Node { return Sub(base, fastdot.SkinnyOrDot(s, net.X)) }

func newEngine(b backends.Backend, p *model.Problem, requested string) (*engine, error) {
	name, err := ChooseEngine(requested, p)
	if err != nil {
		return nil, err
	}
	e := &engine{name: name, p: p, sp: thetaSpace{}, b: b}
	if name == EngineTheta {
		return e, nil
	}
	e.sp = featureSpace{}
	if err := e.compileFeatures(); err != nil {
		return nil, err
	}
	return e, nil
}

// compileFeatures builds the graphs that move between Θ and the features;
// the Θ engine builds them only to take over a feature state (a resume that
// switches engines).
func (e *engine) compileFeatures() error {
	p := e.p
	pinv, err := linalg.PseudoInverseSym(p.Gram(), p.N)
	if err != nil {
		return fmt.Errorf("feature engine: %w", err)
	}
	e.pinv = pinv
	if e.featuresExec, err = compile(e.b, func(theta *Node) *Node {
		return model.NewNet(theta.Graph(), p).FeaturesT(theta)
	}); err != nil {
		return err
	}
	e.thetaExec, err = compile(e.b, func(base, zt *Node) *Node {
		net := model.NewNet(base.Graph(), p)
		return thetaOf(net, base, shiftOf(net, base, zt, Const(base.Graph(), tensors.FromFlatDataAndDimensions(pinv, p.N, p.N))))
	})
	return err
}

// feature reports whether this is the feature engine.
func (e *engine) feature() bool { return e.name == EngineFeature }

// adopt puts s in this engine's representation: a Θ-engine state entering the
// feature engine starts at Θ₀ = Θ with Zᵀ = Θ Xᵀ; a feature state entering
// the Θ engine is synced and drops its features.
func (e *engine) adopt(s *State) error {
	if !e.feature() {
		if s.Features != nil {
			if err := e.sync(s); err != nil {
				return err
			}
			s.Base, s.Features = nil, nil
		}
		return nil
	}
	if s.Features == nil {
		if s.Theta == nil {
			return fmt.Errorf("trainers: state has neither Θ nor features")
		}
		out, err := run(e.featuresExec, s.Theta)
		if err != nil {
			return err
		}
		s.Base, s.Features = s.Theta, out[0]
	}
	return nil
}

// syncHost replaces a feature state by its Θ = Θ₀ − SX, formed on the host
// into one new tensor a block of rows at a time (streamHost): no m×n or
// m×d temporary beside it, for the host blocks' memory bound.
func (e *engine) syncHost(s *State) error {
	p := e.p
	if e.pinv == nil {
		pinv, err := linalg.PseudoInverseSym(p.Gram(), p.N)
		if err != nil {
			return fmt.Errorf("feature state: %w", err)
		}
		e.pinv = pinv
	}
	theta := tensors.FromShape(shapes.Make(dtypes.Float64, p.M, p.D))
	var err error
	tensors.MustMutableFlatData(theta, func(out []float64) {
		off := 0
		err = e.streamHost(s, func(v []float64) error {
			off += copy(out[off:], v)
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.Theta, s.Base, s.Features = theta, nil, nil
	return nil
}

// sync makes s.Theta current.
func (e *engine) sync(s *State) error {
	if s.Theta != nil || s.Features == nil {
		return nil
	}
	if e.thetaExec == nil {
		if err := e.compileFeatures(); err != nil {
			return err
		}
	}
	out, err := run(e.thetaExec, s.Base, s.Features)
	if err != nil {
		return err
	}
	s.Theta, e.synced = out[0], out[0]
	return nil
}

// current returns the tensor standing for Θ in graphs: Θ, or Zᵀ.
func (e *engine) current(s *State) *tensors.Tensor {
	if e.feature() {
		return s.Features
	}
	return s.Theta
}

// set stores new params in s.
func (e *engine) set(s *State, params *tensors.Tensor) {
	if e.feature() {
		if s.Theta != nil && s.Theta == e.synced && s.Theta != s.Base {
			s.Theta.FinalizeAll()
		}
		s.Features, s.Theta, e.synced = params, nil, nil
		return
	}
	s.Theta = params
}

// StreamTheta passes Θ at s to emit in row-major pieces. Under the feature
// engine Θ is formed a block of rows at a time and never whole, so writing
// a large Θ costs no m×d buffer beyond Θ₀ itself.
func StreamTheta(tr Trainer, s *State, emit func(values []float64) error) error {
	if s.Features == nil || s.Theta != nil {
		var err error
		if cerr := tensors.ConstFlatData(s.Theta, func(flat []float64) { err = emit(flat) }); cerr != nil {
			return cerr
		}
		return err
	}
	eh, ok := tr.(interface{ engine() *engine })
	if !ok || !eh.engine().feature() {
		if err := tr.Sync(s); err != nil {
			return err
		}
		return StreamTheta(tr, s, emit)
	}
	return eh.engine().stream(s, emit)
}

// StreamFeatures passes Zᵀ = ΘXᵀ [m, n] at s to emit in row-major pieces
// (Z [n, m] in column-major order), never holding it beside the state: the
// feature engine's state is Zᵀ itself; under the Θ engine it is formed a
// block of neurons at a time on the host (model.HostFeatures).
func StreamFeatures(p *model.Problem, tr Trainer, s *State, emit func(values []float64) error) error {
	if s.Features != nil {
		var err error
		if cerr := tensors.ConstFlatData(s.Features, func(zt []float64) { err = emit(zt) }); cerr != nil {
			return cerr
		}
		return err
	}
	if s.Theta == nil {
		if err := tr.Sync(s); err != nil {
			return err
		}
	}
	xt := p.XT()
	block := max(1, min(p.M, thetaBlock))
	buf := make([]float64, block*p.N)
	var err error
	if cerr := tensors.ConstFlatData(s.Theta, func(theta []float64) {
		for lo := 0; lo < p.M && err == nil; lo += block {
			hi := min(lo+block, p.M)
			z := buf[:(hi-lo)*p.N]
			model.HostFeatures(p, xt, theta[lo*p.D:hi*p.D], z, p.D)
			err = emit(z)
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

// shift returns S [m, n] with Θ = Θ₀ − S X at a feature state.
func (e *engine) shift(s *State) (*tensors.Tensor, error) {
	p := e.p
	if e.sExec == nil {
		var err error
		if e.sExec, err = compile(e.b, func(base, zt *Node) *Node {
			net := model.NewNet(base.Graph(), p)
			return shiftOf(net, base, zt, Const(base.Graph(), tensors.FromFlatDataAndDimensions(e.pinv, p.N, p.N)))
		}); err != nil {
			return nil, err
		}
	}
	out, err := run(e.sExec, s.Base, s.Features)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func (e *engine) stream(s *State, emit func(values []float64) error) error {
	p := e.p
	if e.hostStream {
		return e.streamHost(s, emit)
	}
	if e.rowsExec == nil {
		var err error
		if e.rowsExec, err = compile(e.b, func(base, shift, idx *Node) *Node {
			net := model.NewNet(base.Graph(), p)
			at := InsertAxes(idx, -1)
			return thetaOf(net, Gather(base, at), Gather(shift, at))
		}); err != nil {
			return err
		}
	}
	shift, err := e.shift(s)
	if err != nil {
		return err
	}
	defer shift.FinalizeAll()
	block := min(thetaBlock, p.M)
	idx := make([]int32, block)
	for start := 0; start < p.M; start += block {
		rows := min(block, p.M-start)
		for i := range idx {
			idx[i] = int32(min(start+i, p.M-1)) // the last block repeats the last row
		}
		out, err := run(e.rowsExec, s.Base, shift, tensors.FromFlatDataAndDimensions(idx, block))
		if err != nil {
			return err
		}
		var eerr error
		tensors.MustConstFlatData(out[0], func(flat []float64) { eerr = emit(flat[:rows*p.D]) })
		out[0].FinalizeAll()
		if eerr != nil {
			return eerr
		}
	}
	return nil
}

// streamHost is stream on the host, on the state's own memory: Θ's rows
// thetaBlock at a time (hostThetaRows).
func (e *engine) streamHost(s *State, emit func(values []float64) error) error {
	p := e.p
	rows, err := e.newHostThetaRows()
	if err != nil {
		return err
	}
	var eerr error
	verr := viewOf(e.b, s.Features, func(zt []float64) {
		eerr = viewOf(e.b, s.Base, func(base []float64) {
			for lo := 0; lo < p.M && eerr == nil; lo += thetaBlock {
				hi := min(lo+thetaBlock, p.M)
				eerr = emit(rows.at(base, zt, lo, hi).RawMatrix().Data[:(hi-lo)*p.D])
			}
		})
	})
	if verr != nil {
		return verr
	}
	return eerr
}

// hostThetaRows forms Θ's rows at a feature state on the host, a block at a
// time, as thetaExec does in a graph (shiftOf): Θ = Θ₀ − S X with S =
// (Θ₀Xᵀ − Zᵀ)G⁺ refined once. Its buffers are of one block's size.
type hostThetaRows struct {
	p               *model.Problem
	x, gm, pinv     *mat.Dense
	gap, s, res, sx mat.Dense
}

func (e *engine) newHostThetaRows() (*hostThetaRows, error) {
	p := e.p
	if e.pinv == nil {
		return nil, fmt.Errorf("feature engine without G⁺")
	}
	return &hostThetaRows{p: p, x: mat.NewDense(p.N, p.D, p.X), gm: mat.NewDense(p.N, p.N, p.Gram()),
		pinv: mat.NewDense(p.N, p.N, e.pinv)}, nil
}

// at returns Θ's rows [lo, hi) [hi−lo, d] from Θ₀ (base [m, d]) and Zᵀ (zt
// [m, n]), valid until the next call.
func (t *hostThetaRows) at(base, zt []float64, lo, hi int) *mat.Dense {
	n, d := t.p.N, t.p.D
	b0 := mat.NewDense(hi-lo, d, base[lo*d:hi*d])
	t.gap.Reset()
	t.gap.Mul(b0, t.x.T())
	t.gap.Sub(&t.gap, mat.NewDense(hi-lo, n, zt[lo*n:hi*n]))
	t.s.Reset()
	t.s.Mul(&t.gap, t.pinv)
	t.res.Reset()
	t.res.Mul(&t.s, t.gm)
	t.res.Sub(&t.gap, &t.res)
	t.gap.Reset()
	t.gap.Mul(&t.res, t.pinv)
	t.s.Add(&t.s, &t.gap)
	t.sx.Reset()
	t.sx.Mul(&t.s, t.x)
	t.sx.Sub(b0, &t.sx)
	return &t.sx
}
