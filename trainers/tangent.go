package trainers

import (
	"errors"
	"fmt"
	"math"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// ErrSingularJJT is returned when J Jᵀ cannot be inverted, so the tangent
// space of the manifold of zero loss is not defined there.
var ErrSingularJJT = errors.New("J Jᵀ is singular")

// tangentSpace holds the compiled graphs that project F = Tr D²L's gradient
// onto the tangent space of M at Θ: P v = v − Jᵀ (J Jᵀ)⁻¹ J v. The n×n solve
// runs on the host (gonum Cholesky); J is never formed.
type tangentSpace struct {
	p       *model.Problem
	eng     *engine
	gradF   *Exec // params → (F, ∇F, J∇F, J Jᵀ)
	project *Exec // (params, g, c) → (g − Jᵀc, its velocity, ‖g − Jᵀc‖)
	norm    *Exec // (params, g, c) → ‖g − Jᵀc‖ alone (for metrics: no m-sized outputs)

	// gradF in two calls, for measuring large problems: each holds fewer
	// m-sized temporaries at once. Compiled on first use.
	grad, jvJJT *Exec // params → ∇F; (params, g) → (J g, J Jᵀ)
}

// Directions (∇F, P∇F) are in the engine's form: Θ-shaped, or T-shaped for the feature engine.
func newTangentSpace(b backends.Backend, p *model.Problem, eng *engine) (*tangentSpace, error) {
	sp := eng.sp
	gradF, err := compile(b, func(params *Node) []*Node {
		_, fw := forwardAt(sp, p, params)
		f := regularizers.TraceHessian(fw)
		g := gradFAt(sp, fw)
		return append([]*Node{f, g}, jvJJTAt(sp, fw, g)...)
	})
	if err != nil {
		return nil, err
	}
	project, err := compile(b, func(params, g, c *Node) []*Node {
		net, fw := forwardAt(sp, p, params)
		pg := projectedAt(sp, fw, g, c)
		u := sp.velocity(net, pg)
		return []*Node{pg, u, Sqrt(sp.inner(pg, u))}
	})
	if err != nil {
		return nil, err
	}
	norm, err := compile(b, func(params, g, c *Node) *Node {
		net, fw := forwardAt(sp, p, params)
		return Sqrt(sp.normSq(net, projectedAt(sp, fw, g, c)))
	})
	if err != nil {
		return nil, err
	}
	return &tangentSpace{p: p, eng: eng, gradF: gradF, project: project, norm: norm}, nil
}

// forwardAt builds the network at params in the engine's form.
func forwardAt(sp space, p *model.Problem, params *Node) (*model.Net, *model.Forward) {
	net := model.NewNet(params.Graph(), p)
	return net, sp.forward(net, params)
}

// gradFAt builds ∇F at fw as a direction: the graph home of ∇F at a tangent
// point (gradF whole, atLean's first call).
func gradFAt(sp space, fw *model.Forward) *Node {
	return sp.direction(fw, regularizers.TraceHessianFeatureGrad(fw))
}

// jvJJTAt builds J g and J Jᵀ at fw for g = ∇F: the graph home of the
// point's n-sized terms (gradF whole, atLean's second call).
func jvJJTAt(sp space, fw *model.Forward, g *Node) []*Node {
	return []*Node{sp.jv(fw, g), fw.JJT()}
}

// projectedAt builds P∇F = ∇F − Jᵀc at fw for g = ∇F and the multiplier c:
// the graph home of the projection (the project and norm graphs).
func projectedAt(sp space, fw *model.Forward, g, c *Node) *Node {
	return Sub(g, sp.direction(fw, fw.Coef(c)))
}

// projector computes, at a tangent point, ∇F − Jᵀc: whole (projectAt: it,
// its velocity and its norm) or its norm alone (normAt). tangentSpace does
// it in graphs, hostFlow on the host.
type projector interface {
	projectAt(tp *tangentPoint, c []float64) (pg, u *tensors.Tensor, norm float64, err error)
	normAt(tp *tangentPoint, c []float64) (float64, error)
}

// tangentPoint is F and its gradient at one Θ, with J Jᵀ there.
type tangentPoint struct {
	proj  projector
	n     int
	theta *tensors.Tensor // the point's params (Θ, or T for the feature engine)
	F     float64
	grad  *tensors.Tensor
	jg    []float64
	jjt   []float64

	projected *tensors.Tensor // P∇F, once computed
	velocity  *tensors.Tensor // its velocity (space.velocity)
	projNorm  float64
	// c is the multiplier (J Jᵀ)⁻¹ J∇F of P∇F = ∇F − Jᵀc, once projected:
	// ∇F's component normal to M is Jᵀc, of norm √(cᵀ J Jᵀ c).
	c []float64
}

func (ts *tangentSpace) at(theta *tensors.Tensor) (*tangentPoint, error) {
	out, err := run(ts.gradF, theta)
	if err != nil {
		return nil, err
	}
	return &tangentPoint{proj: ts, n: ts.p.N, theta: theta, F: scalar(out[0]), grad: out[1],
		jg: tensors.MustCopyFlatData[float64](out[2]), jjt: tensors.MustCopyFlatData[float64](out[3])}, nil
}

// atLean is at without F, in two smaller calls (lower peak memory; for the metrics).
func (ts *tangentSpace) atLean(theta *tensors.Tensor, b backends.Backend) (*tangentPoint, error) {
	p, sp := ts.p, ts.eng.sp
	if ts.grad == nil {
		var err error
		if ts.grad, err = compile(b, func(params *Node) *Node {
			_, fw := forwardAt(sp, p, params)
			return gradFAt(sp, fw)
		}); err != nil {
			return nil, err
		}
		if ts.jvJJT, err = compile(b, func(params, g *Node) []*Node {
			_, fw := forwardAt(sp, p, params)
			return jvJJTAt(sp, fw, g)
		}); err != nil {
			return nil, err
		}
	}
	g, err := run(ts.grad, theta)
	if err != nil {
		return nil, err
	}
	out, err := run(ts.jvJJT, theta, g[0])
	if err != nil {
		g[0].FinalizeAll()
		return nil, err
	}
	return &tangentPoint{proj: ts, n: ts.p.N, theta: theta, F: math.NaN(), grad: g[0],
		jg: tensors.MustCopyFlatData[float64](out[0]), jjt: tensors.MustCopyFlatData[float64](out[1])}, nil
}

// project returns P∇F and its norm ‖grad_M F‖, computed as ∇F − Jᵀc (not
// through ‖∇F‖² − ..., which cancels catastrophically near a stationary point).
func (tp *tangentPoint) project() (*tensors.Tensor, float64, error) {
	if tp.projected != nil {
		return tp.projected, tp.projNorm, nil
	}
	c, err := tp.multiplier()
	if err != nil {
		return nil, math.NaN(), err
	}
	if tp.projected, tp.velocity, tp.projNorm, err = tp.proj.projectAt(tp, c); err != nil {
		return nil, math.NaN(), err
	}
	tp.c = c
	return tp.projected, tp.projNorm, nil
}

// normalNorm returns ‖Jᵀc‖, the norm of ∇F's component normal to M (after project).
func (tp *tangentPoint) normalNorm() float64 {
	n, s := tp.n, 0.0
	for i := range n {
		for k := range n {
			s += tp.c[i] * tp.jjt[i*n+k] * tp.c[k]
		}
	}
	return math.Sqrt(max(s, 0))
}

// gradNorm returns ‖grad_M F‖ = ‖P∇F‖ only, as project computes it but
// without keeping P∇F (the metrics need the number alone).
func (tp *tangentPoint) gradNorm() (float64, error) {
	if tp.projected != nil {
		return tp.projNorm, nil
	}
	c, err := tp.multiplier()
	if err != nil {
		return math.NaN(), err
	}
	return tp.proj.normAt(tp, c)
}

// multiplier solves J Jᵀ c = J∇F for c (Cholesky on the host): the one
// home of c, for project and gradNorm.
func (tp *tangentPoint) multiplier() ([]float64, error) {
	c, err := linalg.SolveSPD(tp.jjt, tp.n, tp.jg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSingularJJT, err)
	}
	return c, nil
}

func (ts *tangentSpace) projectAt(tp *tangentPoint, c []float64) (*tensors.Tensor, *tensors.Tensor, float64, error) {
	out, err := run(ts.project, tp.theta, tp.grad, tensors.FromFlatDataAndDimensions(c, len(c)))
	if err != nil {
		return nil, nil, math.NaN(), err
	}
	return out[0], out[1], scalar(out[2]), nil
}

func (ts *tangentSpace) normAt(tp *tangentPoint, c []float64) (float64, error) {
	out, err := run(ts.norm, tp.theta, tp.grad, tensors.FromFlatDataAndDimensions(c, len(c)))
	if err != nil {
		return math.NaN(), err
	}
	return scalar(out[0]), nil
}

// release frees the point's device buffers now rather than at garbage
// collection (each is m×d or m×n).
func (tp *tangentPoint) release() {
	for _, t := range []*tensors.Tensor{tp.grad, tp.projected, tp.velocity} {
		if t != nil {
			t.FinalizeAll()
		}
	}
	tp.grad, tp.projected, tp.velocity = nil, nil, nil
}
