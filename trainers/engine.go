package trainers

import (
	"fmt"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Every trainer here moves Θ by something of the form Σ_i b_ij x_i (a
// "direction" built from coefficients b shaped like Z), because L and Tr D²L
// depend on Θ only through Z = XΘᵀ. The Θ engine applies such moves to Θ
// itself; the feature engine keeps Θ = Θ₀ − T X with T [m, n] and moves T,
// so that Zᵀ = Z₀ᵀ − T G with G = X Xᵀ: a step costs O(n²m) instead of
// O(nmd), and Θ is formed only when asked for (Sync).
//
// space is what a compiled graph needs to know about the representation.
// Inside graphs, "params" is Θ [m, d] (Θ engine) or T [m, n] (feature
// engine), and a direction is Θ-shaped [m, d] or T-shaped [m, n] likewise.
type space interface {
	// forward evaluates the network at params; z0 is Z₀ᵀ (nil for the Θ engine).
	forward(net *model.Net, params, z0 *Node) *model.Forward
	// direction returns the direction Σ_i b_ij x_i for coefficients b shaped like fw.Z.
	direction(fw *model.Forward, b *Node) *Node
	// move returns params moved to Θ − scale·v for a direction v.
	move(params, v *Node, scale float64) *Node
	// moveBy is move with a scale given as a scalar node.
	moveBy(params, v, scale *Node) *Node
	// jv returns J v [n] for a direction v.
	jv(fw *model.Forward, v *Node) *Node
	// normSq returns ‖v‖² (Frobenius norm of the Θ-shaped direction).
	normSq(net *model.Net, v *Node) *Node
	// rows returns z_{i_b, j} [B, m] for example indices idx [B] (one-hot
	// rows oneHot [B, n] of idx are given too).
	rows(net *model.Net, params, z0, idx, oneHot *Node) *Node
	// rowsDirection returns the direction Σ_b c_bj x_{i_b} for c [B, m].
	rowsDirection(net *model.Net, c, idx, oneHot *Node) *Node
}

// thetaSpace is the reference engine: params are Θ.
type thetaSpace struct{}

func (thetaSpace) forward(net *model.Net, theta, _ *Node) *model.Forward { return net.Forward(theta) }
func (thetaSpace) direction(fw *model.Forward, b *Node) *Node            { return fw.Net.ContractX(b) }
func (thetaSpace) move(theta, v *Node, scale float64) *Node              { return Sub(theta, scaled(v, scale)) }
func (thetaSpace) moveBy(theta, v, scale *Node) *Node                    { return Sub(theta, Mul(v, scale)) }
func (thetaSpace) jv(fw *model.Forward, v *Node) *Node                   { return fw.Jv(v) }
func (thetaSpace) normSq(_ *model.Net, v *Node) *Node                    { return ReduceAllSum(Square(v)) }
func (thetaSpace) rows(net *model.Net, theta, _, idx, _ *Node) *Node {
	xb := Gather(net.X, InsertAxes(idx, -1))
	return DotGeneral(xb, []int{1}, nil, theta, []int{1}, nil)
}
func (thetaSpace) rowsDirection(net *model.Net, c, idx, _ *Node) *Node {
	xb := Gather(net.X, InsertAxes(idx, -1))
	return DotGeneral(c, []int{0}, nil, xb, []int{0}, nil)
}

// featureSpace keeps Θ = Θ₀ − T X; params are T [m, n], directions are
// coefficient matrices V [m, n] standing for V X.
type featureSpace struct{}

func (featureSpace) forward(net *model.Net, t, z0 *Node) *model.Forward {
	return net.ForwardFeatures(Sub(z0, Dot(t, net.Gram())))
}

func (featureSpace) direction(fw *model.Forward, b *Node) *Node {
	if !fw.NeuronMajor {
		panic("trainers: the feature engine needs a neuron-major forward")
	}
	return b
}
func (featureSpace) move(t, v *Node, scale float64) *Node { return Add(t, scaled(v, scale)) }
func (featureSpace) moveBy(t, v, scale *Node) *Node       { return Add(t, Mul(v, scale)) }

// jv: (J V X)_i = Σ_j A_ij (V G)_ji.
func (featureSpace) jv(fw *model.Forward, v *Node) *Node {
	return fw.SumNeurons(Mul(fw.A(), Dot(v, fw.Net.Gram())))
}

// normSq: ‖V X‖² = Σ (V G) ∘ V.
func (featureSpace) normSq(net *model.Net, v *Node) *Node {
	return ReduceAllSum(Mul(Dot(v, net.Gram()), v))
}

// rows: z_{i_b} = Z₀ᵀ[:, i_b] − (T G)[:, i_b], with G's rows gathered.
func (featureSpace) rows(net *model.Net, t, z0, idx, oneHot *Node) *Node {
	gb := Gather(net.Gram(), InsertAxes(idx, -1))                    // [B, n]
	z0b := DotGeneral(oneHot, []int{1}, nil, z0, []int{1}, nil)      // [B, m]
	return Sub(z0b, DotGeneral(gb, []int{1}, nil, t, []int{1}, nil)) // [B, m]
}

func (featureSpace) rowsDirection(_ *model.Net, c, _, oneHot *Node) *Node {
	return DotGeneral(c, []int{0}, nil, oneHot, []int{0}, nil) // [m, n]
}

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

	z0Exec    *Exec // Θ₀ → Z₀ᵀ = Θ₀ Xᵀ [m, n]
	thetaExec *Exec // (Θ₀, T) → Θ₀ − T X
	z0, z0Of  *tensors.Tensor
}

func newEngine(b backends.Backend, p *model.Problem, requested string) (*engine, error) {
	name, err := ChooseEngine(requested, p)
	if err != nil {
		return nil, err
	}
	e := &engine{name: name, p: p, sp: thetaSpace{}}
	if name == EngineTheta {
		return e, nil
	}
	e.sp = featureSpace{}
	if e.z0Exec, err = compile(b, func(base *Node) *Node {
		net := model.NewNet(base.Graph(), p)
		return DotGeneral(base, []int{1}, nil, net.X, []int{1}, nil)
	}); err != nil {
		return nil, err
	}
	if e.thetaExec, err = compile(b, func(base, t *Node) *Node {
		net := model.NewNet(base.Graph(), p)
		return Sub(base, Dot(t, net.X))
	}); err != nil {
		return nil, err
	}
	return e, nil
}

// feature reports whether this is the feature engine.
func (e *engine) feature() bool { return e.name == EngineFeature }

// adopt puts s in this engine's representation: a Θ-engine state entering the
// feature engine starts T = 0 at Θ₀ = Θ; a feature state entering the Θ
// engine is synced and drops T.
func (e *engine) adopt(s *State) error {
	if !e.feature() {
		if s.Shift != nil {
			if err := e.sync(s); err != nil {
				return err
			}
			s.Base, s.Shift = nil, nil
		}
		return nil
	}
	if s.Shift == nil {
		if s.Theta == nil {
			return fmt.Errorf("trainers: state has neither Θ nor a feature representation")
		}
		s.Base = s.Theta
		s.Shift = tensors.FromFlatDataAndDimensions(make([]float64, e.p.M*e.p.N), e.p.M, e.p.N)
	}
	if e.z0Of != s.Base {
		out, err := run(e.z0Exec, s.Base)
		if err != nil {
			return err
		}
		e.z0, e.z0Of = out[0], s.Base
	}
	return nil
}

// rebase folds T into Θ₀ (Θ₀ ← Θ, T ← 0). Z = Z₀ − T G loses precision as T
// grows (Z₀ and T G cancel); the Riemannian flow, which compares Tr D²L
// values to rounding level near its optimum, rebases every few steps.
func (e *engine) rebase(s *State) error {
	if !e.feature() {
		return nil
	}
	if err := e.sync(s); err != nil {
		return err
	}
	s.Shift = nil
	return e.adopt(s)
}

// sync makes s.Theta current.
func (e *engine) sync(s *State) error {
	if s.Theta != nil || s.Shift == nil {
		return nil
	}
	out, err := run(e.thetaExec, s.Base, s.Shift)
	if err != nil {
		return err
	}
	s.Theta = out[0]
	return nil
}

// params returns the graph inputs standing for Θ: Θ, or (T, Z₀ᵀ).
func (e *engine) params(s *State) []any { return e.args(e.current(s)) }

// args returns the graph inputs for the point params (Θ or T), then rest.
func (e *engine) args(params *tensors.Tensor, rest ...any) []any {
	if e.feature() {
		return append([]any{params, e.z0}, rest...)
	}
	return append([]any{params}, rest...)
}

// nParams is len(params(s)).
func (e *engine) nParams() int {
	if e.feature() {
		return 2
	}
	return 1
}

// unpack splits graph inputs made from params(s) + rest.
func (e *engine) unpack(in []*Node) (params, z0 *Node, rest []*Node) {
	if e.feature() {
		return in[0], in[1], in[2:]
	}
	return in[0], nil, in[1:]
}

// set stores new params in s.
func (e *engine) set(s *State, params *tensors.Tensor) {
	if e.feature() {
		s.Shift, s.Theta = params, nil
		return
	}
	s.Theta = params
}

// current returns the tensor holding s's params (to recognise a state).
func (e *engine) current(s *State) *tensors.Tensor {
	if e.feature() {
		return s.Shift
	}
	return s.Theta
}
