package model

import (
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
		return fastdot.DotGeneral(net.X, []int{1}, nil, theta, []int{1}, nil)
	case 3:
		z := fastdot.DotGeneral(net.X, []int{1}, nil, theta, []int{2}, nil) // [n, K, m]
		return TransposeAllAxes(z, 1, 0, 2)
	default:
		panic("model: Θ must have shape [m, d] or [K, m, d], got " + theta.Shape().String())
	}
}

// Forward is the network evaluated at one Θ inside a graph. Derived nodes are
// built on first use and shared, so each is computed once per graph.
type Forward struct {
	Net   *Net
	Theta *Node // [.., m, d]
	Z     *Node // [.., n, m]
	F     *Node // [.., n] outputs f_i = Σ_j w_j φ(z_ij)
	R     *Node // [.., n] residuals f − y

	dphi [4]*Node
	a    *Node
}

// Forward evaluates the network at Θ.
func (net *Net) Forward(theta *Node) *Forward {
	fw := &Forward{Net: net, Theta: theta}
	fw.Z = net.Features(theta)
	fw.F = ReduceSum(net.weigh(fw.Phi(0)), -1)
	fw.R = Sub(fw.F, lead(net.Y, fw.F.Rank()))
	return fw
}

// Phi returns φ^(order)(Z).
func (fw *Forward) Phi(order int) *Node {
	if fw.dphi[order] == nil {
		fw.dphi[order] = fw.Net.Problem.Act.Eval(fw.Z, order)
	}
	return fw.dphi[order]
}

// A returns A_ij = w_j φ'(z_ij), the coefficients of the Jacobian: ∂f_i/∂θ_j = A_ij x_i.
func (fw *Forward) A() *Node {
	if fw.a == nil {
		fw.a = fw.Net.weigh(fw.Phi(1))
	}
	return fw.a
}

// Loss returns L = Σ_i (f_i − y_i)²: a scalar, or [K] for a batch of Θ.
func (fw *Forward) Loss() *Node { return ReduceSum(Square(fw.R), -1) }

// LossGrad returns ∇_Θ L = 2 Jᵀ r, built from the structured product (no autodiff).
func (fw *Forward) LossGrad() *Node { return fw.JTc(MulScalar(fw.R, 2)) }

// Jv returns J V for V shaped like Θ: (J V)_i = Σ_j A_ij (v_j · x_i).
func (fw *Forward) Jv(v *Node) *Node {
	return ReduceSum(Mul(fw.A(), fw.Net.Features(v)), -1)
}

// JTc returns Jᵀ c for c shaped like the outputs: (Jᵀc)_j = Σ_i c_i A_ij x_i.
func (fw *Forward) JTc(c *Node) *Node {
	weighted := Mul(fw.A(), InsertAxes(c, -1)) // [.., n, m]
	if weighted.Rank() == 2 {
		return fastdot.DotGeneral(weighted, []int{0}, nil, fw.Net.X, []int{0}, nil)
	}
	return fastdot.DotGeneral(weighted, []int{1}, nil, fw.Net.X, []int{0}, nil) // [K, m, d]
}

// JJT returns J Jᵀ = (X Xᵀ) ∘ (A Aᵀ), an n×n matrix (only for unbatched Θ).
func (fw *Forward) JJT() *Node {
	a := fw.A()
	aat := fastdot.DotGeneral(a, []int{1}, nil, a, []int{1}, nil)
	xxt := fastdot.DotGeneral(fw.Net.X, []int{1}, nil, fw.Net.X, []int{1}, nil)
	return Mul(xxt, aat)
}

// weigh multiplies v [.., n, m] by w along its last axis; with w = 1 (the
// paper's setting) it is v itself, which saves an op per use on small graphs.
func (net *Net) weigh(v *Node) *Node {
	if net.Problem.UnitWeights() {
		return v
	}
	return Mul(v, lead(net.W, v.Rank()))
}

// lead prepends unit axes to x until it has the given rank, for broadcasting.
func lead(x *Node, rank int) *Node {
	for x.Rank() < rank {
		x = InsertAxes(x, 0)
	}
	return x
}
