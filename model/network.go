package model

import (
	"fmt"

	"github.com/flatmin/flatmin/internal/fastdot"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Net is a Problem's data placed in one graph as constants.
type Net struct {
	Problem *Problem
	X       *Node // [n, d]
	Y       *Node // [n]
	W       *Node // [m]
	NormSq  *Node // [n], ‖x_i‖²

	gram    *Node
	gramsBy map[float64]*Node
}

// GramTimes returns s·G as a constant (scaled on the host), cached per s.
func (net *Net) GramTimes(s float64) *Node {
	if s == 1 {
		return net.Gram()
	}
	if g, ok := net.gramsBy[s]; ok {
		return g
	}
	if net.gramsBy == nil {
		net.gramsBy = map[float64]*Node{}
	}
	g := net.Problem.Gram()
	for i := range g {
		g[i] *= s
	}
	net.gramsBy[s] = Const(net.X.Graph(), tensors.FromFlatDataAndDimensions(g, net.Problem.N, net.Problem.N))
	return net.gramsBy[s]
}

// Gram returns G = X Xᵀ [n, n] as a constant (computed once on the host).
func (net *Net) Gram() *Node {
	if net.gram == nil {
		net.gram = Const(net.X.Graph(), tensors.FromFlatDataAndDimensions(net.Problem.Gram(), net.Problem.N, net.Problem.N))
	}
	return net.gram
}

// NewNet places the problem's data in graph g.
func NewNet(g *Graph, p *Problem) *Net {
	return &Net{
		Problem: p,
		X:       Const(g, tensors.FromFlatDataAndDimensions(p.X, p.N, p.D)),
		Y:       Const(g, tensors.FromFlatDataAndDimensions(p.Y, p.N)),
		W:       Const(g, tensors.FromFlatDataAndDimensions(p.W, p.M)),
		NormSq:  Const(g, tensors.FromFlatDataAndDimensions(p.RowNormSq(), p.N)),
	}
}

// Features returns Z = X Θᵀ: [n, m] for Θ [m, d], [K, n, m] for Θ [K, m, d].
func (net *Net) Features(theta *Node) *Node {
	switch theta.Rank() {
	case 2:
		return features(net.X, theta)
	case 3:
		z := fastdot.DotGeneral(net.X, []int{1}, nil, theta, []int{2}, nil) // [n, K, m]
		return TransposeAllAxes(z, 1, 0, 2)
	default:
		panic("model: Θ must have shape [m, d] or [K, m, d], got " + theta.Shape().String())
	}
}

// RowFeatures returns the rows of Z = XΘᵀ for the examples idx ([B] int32):
// z_{i_b, j} [B, m], for Θ [m, d].
func (net *Net) RowFeatures(theta, idx *Node) *Node {
	return features(net.Rows(idx), theta)
}

// Rows returns the examples' rows x_{i_b} [B, d] for indices idx ([B] int32).
func (net *Net) Rows(idx *Node) *Node { return Gather(net.X, InsertAxes(idx, -1)) }

// FeaturesT returns Zᵀ = ΘXᵀ [m, n] for Θ [m, d] (the feature engine's
// layout), by a product that spares SimpleGo copies of Θ at large m.
func (net *Net) FeaturesT(theta *Node) *Node { return fastdot.InputRowsContract(theta, net.X, 1) }

// features returns x Θᵀ [rows, m] for rows x [rows, d].
func features(x, theta *Node) *Node {
	return fastdot.DotGeneral(x, []int{1}, nil, theta, []int{1}, nil)
}

// TimesGram returns V G [m, n] for V [m, n]: the features' change per unit
// step along the direction V X, since (V X) Xᵀ = V G.
func (net *Net) TimesGram(v *Node) *Node { return fastdot.RowsTimes(v, net.Gram()) }

// Forward is the network evaluated at one Θ inside a graph. Derived nodes are
// built on first use and shared, so each is computed once per graph.
//
// Z is example-major, [.., n, m], when built from Θ, and neuron-major, [m, n],
// when built from the features themselves (ForwardFeatures, the feature
// engine's layout); ForwardRows's Z is a few examples' rows [B, m], in the
// Θ layout. Everything below works in either layout through PerExample,
// PerNeuron and SumNeurons.
type Forward struct {
	Net   *Net
	Theta *Node // [.., m, d]; nil when built from features or rows
	Z     *Node // [.., n, m], or [m, n] when NeuronMajor
	F     *Node // [.., n] outputs f_i = Σ_j w_j φ(z_ij)
	R     *Node // [.., n] residuals f − y
	// NeuronMajor is true when Z is laid out [m, n].
	NeuronMajor bool

	y *Node // [n] targets (net.Y), or the drawn rows' for ForwardRows

	dphi [4]*Node
	a    *Node
	z2   *Node
	lc   *Node // LossCoef
}

// squareEvaluator is an activation that evaluates more cheaply given z².
type squareEvaluator interface {
	evalSq(z, z2 *Node, order int) *Node
}

// Forward evaluates the network at Θ.
func (net *Net) Forward(theta *Node) *Forward {
	fw := &Forward{Net: net, Theta: theta, y: net.Y}
	fw.Z = net.Features(theta)
	fw.finish()
	return fw
}

// ForwardFeatures evaluates the network from its features, given neuron-major
// as Zᵀ [m, n] (z_ij at [j, i]): the loss and Tr D²L depend on Θ only through Z.
func (net *Net) ForwardFeatures(zt *Node) *Forward {
	p := net.Problem
	if zt.Rank() != 2 || zt.Shape().Dimensions[0] != p.M || zt.Shape().Dimensions[1] != p.N {
		panic(fmt.Sprintf("model: features must have shape [m=%d, n=%d], got %s", p.M, p.N, zt.Shape()))
	}
	fw := &Forward{Net: net, Z: zt, NeuronMajor: true, y: net.Y}
	fw.finish()
	return fw
}

// ForwardRows evaluates the network on some examples from their
// pre-activations zb [B, m] and targets yb [B] (1-SAM's drawn rows, possibly
// perturbed): F, R and A are those rows' (Loss is over them alone).
func (net *Net) ForwardRows(zb, yb *Node) *Forward {
	if zb.Rank() != 2 || zb.Shape().Dimensions[1] != net.Problem.M || yb.Rank() != 1 || yb.Shape().Dimensions[0] != zb.Shape().Dimensions[0] {
		panic(fmt.Sprintf("model: rows must have shapes [B, m=%d] and [B], got %s and %s", net.Problem.M, zb.Shape(), yb.Shape()))
	}
	fw := &Forward{Net: net, Z: zb, y: yb}
	fw.finish()
	return fw
}

func (fw *Forward) finish() {
	fw.F = fw.SumNeurons(fw.Net.weigh(fw.Phi(0), fw))
	fw.R = Sub(fw.F, lead(fw.y, fw.F.Rank()))
}

// SumNeurons sums v (shaped like Z) over the neurons, giving [.., n].
func (fw *Forward) SumNeurons(v *Node) *Node {
	if fw.NeuronMajor {
		return ReduceSum(v, 0)
	}
	return ReduceSum(v, -1)
}

// PerExample reshapes c [.., n] to broadcast against Z.
func (fw *Forward) PerExample(c *Node) *Node {
	if fw.NeuronMajor {
		return InsertAxes(c, 0)
	}
	return InsertAxes(c, -1)
}

// PerNeuron reshapes v [m] to broadcast against Z.
func (fw *Forward) PerNeuron(v *Node) *Node {
	if fw.NeuronMajor {
		return InsertAxes(v, -1)
	}
	return lead(v, fw.Z.Rank())
}

// Phi returns φ^(order)(Z), or a scalar when that derivative is a constant
// (φ‴ of the cubic): it broadcasts against Z, and a large problem is spared
// an m×n array of one value.
func (fw *Forward) Phi(order int) *Node {
	if fw.dphi[order] == nil {
		if c, ok := constantDerivative(fw.Net.Problem.Act, order); ok {
			fw.dphi[order] = Scalar(fw.Z.Graph(), fw.Z.DType(), c)
		} else if se, ok := fw.Net.Problem.Act.(squareEvaluator); ok {
			if fw.z2 == nil {
				fw.z2 = Square(fw.Z)
			}
			fw.dphi[order] = se.evalSq(fw.Z, fw.z2, order)
		} else {
			fw.dphi[order] = fw.Net.Problem.Act.Eval(fw.Z, order)
		}
	}
	return fw.dphi[order]
}

// A returns A_ij = w_j φ'(z_ij), the coefficients of the Jacobian: ∂f_i/∂θ_j = A_ij x_i.
func (fw *Forward) A() *Node {
	if fw.a == nil {
		fw.a = fw.Net.weigh(fw.Phi(1), fw)
	}
	return fw.a
}

// Loss returns L = Σ_i (f_i − y_i)²: a scalar, or [K] for a batch of Θ.
func (fw *Forward) Loss() *Node { return ReduceSum(Square(fw.R), -1) }

// weigh multiplies v (shaped like fw.Z) by w along the neurons; with w = 1
// (the paper's setting) it is v itself, which saves an op per use on small graphs.
func (net *Net) weigh(v *Node, fw *Forward) *Node {
	if net.Problem.UnitWeights() {
		return v
	}
	return Mul(v, fw.PerNeuron(net.W))
}

// lead prepends unit axes to x until it has the given rank, for broadcasting.
func lead(x *Node, rank int) *Node {
	for x.Rank() < rank {
		x = InsertAxes(x, 0)
	}
	return x
}
