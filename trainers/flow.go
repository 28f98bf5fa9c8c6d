package trainers

import (
	"math"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// flow is what the Riemannian flow computes at a point; params are the
// engine's (Θ, or Zᵀ for the feature engine). graphFlow runs compiled graphs
// on any backend; hostFlow runs the feature engine's on the host, with
// linalg's products, where the backend is SimpleGo (see model.HostNet).
// The step logic (riemannian.go) is the same for both.
type flow interface {
	// residual returns r = f − y and J Jᵀ at params.
	residual(params *tensors.Tensor) (r, jjt []float64, err error)
	// correct returns params moved by −Jᵀδ (J at params), with r and J Jᵀ there.
	correct(params *tensors.Tensor, delta []float64) (next *tensors.Tensor, r, jjt []float64, err error)
	// move returns params − η·u for a velocity u (space.velocity), with r and J Jᵀ there.
	// It starts a new attempt from params: the points and tangent points the
	// flow returned before, other than params and the tangent point whose
	// velocity u is, must not be used afterwards (hostFlow reuses their
	// tensors; a point once moved from, a state, is never reused).
	move(params, u *tensors.Tensor, eta float64) (cand *tensors.Tensor, r, jjt []float64, err error)
	// at returns F = Tr D²L, its gradient, J∇F and J Jᵀ at params.
	at(params *tensors.Tensor) (*tangentPoint, error)
}

// useHostFlow reports whether the Riemannian flow runs on the host: the
// feature engine on SimpleGo (whose buffers are host memory anyway).
func useHostFlow(b backends.Backend, eng *engine) bool {
	return eng.feature() && backend.IsSimpleGo(b)
}

// graphFlow is flow in compiled graphs.
type graphFlow struct {
	ts        *tangentSpace
	residualX *Exec // params → (r, J Jᵀ)
	correctX  *Exec // (params, δ) → (params − Jᵀδ, r, J Jᵀ at the new point)
	moveX     *Exec // (params, u, η) → (params − η u, r, J Jᵀ there)
}

func newGraphFlow(b backends.Backend, p *model.Problem, eng *engine) (*graphFlow, error) {
	sp := eng.sp
	ts, err := newTangentSpace(b, p, eng)
	if err != nil {
		return nil, err
	}
	f := &graphFlow{ts: ts}
	if f.residualX, err = compile(b, func(params *Node) []*Node {
		_, fw := forwardAt(sp, p, params)
		return []*Node{fw.R, fw.JJT()}
	}); err != nil {
		return nil, err
	}
	if f.correctX, err = compile(b, func(params, delta *Node) []*Node {
		net := model.NewNet(params.Graph(), p)
		next := sp.moveJT(sp.forward(net, params), params, delta, 1)
		fw := sp.forward(net, next)
		return []*Node{next, fw.R, fw.JJT()}
	}); err != nil {
		return nil, err
	}
	if f.moveX, err = compile(b, func(params, u, eta *Node) []*Node {
		cand := Sub(params, Mul(u, eta))
		fw := sp.forward(model.NewNet(params.Graph(), p), cand)
		return []*Node{cand, fw.R, fw.JJT()}
	}); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *graphFlow) residual(params *tensors.Tensor) ([]float64, []float64, error) {
	out, err := run(f.residualX, params)
	if err != nil {
		return nil, nil, err
	}
	return tensors.MustCopyFlatData[float64](out[0]), tensors.MustCopyFlatData[float64](out[1]), nil
}

func (f *graphFlow) correct(params *tensors.Tensor, delta []float64) (*tensors.Tensor, []float64, []float64, error) {
	return f.point(run(f.correctX, params, tensors.FromFlatDataAndDimensions(delta, len(delta))))
}

func (f *graphFlow) move(params, u *tensors.Tensor, eta float64) (*tensors.Tensor, []float64, []float64, error) {
	return f.point(run(f.moveX, params, u, tensors.FromScalar(eta)))
}

func (f *graphFlow) point(out []*tensors.Tensor, err error) (*tensors.Tensor, []float64, []float64, error) {
	if err != nil {
		return nil, nil, nil, err
	}
	return out[0], tensors.MustCopyFlatData[float64](out[1]), tensors.MustCopyFlatData[float64](out[2]), nil
}

func (f *graphFlow) at(params *tensors.Tensor) (*tangentPoint, error) { return f.ts.at(params) }

// hostFlow is flow for the feature engine on the host: params are Zᵀ [m, n]
// as local tensors. It keeps the forwards of the last few points, so a
// point reached by a retraction is not evaluated again by at (the values are
// the same either way).
//
// It also recycles the m×n tensors it makes (points, ∇F, P∇F and velocities):
// a fresh 256 KB tensor costs far more than the arithmetic of a step at
// (1000, 64, 32), in allocation, zeroing and garbage collection. The step
// logic (riemannian.go) keeps, across a move, only the point it moves from
// (the state) and that point's tangentPoint, so move recycles every other
// tensor made since; a point that was ever moved from is left to the
// garbage collector, since the state may be read outside the flow.
type hostFlow struct {
	net    *model.HostNet
	recent []hostPoint

	own     map[*tensors.Tensor][]float64 // tensors made here → their values (to read without a copy)
	scratch []*tensors.Tensor             // made since the last move, not yet known to be dead
	spare   []*tensors.Tensor             // dead, to be refilled
	tangent map[*tensors.Tensor]*tangentPoint
	state   *tensors.Tensor // the last point moved from
}

type hostPoint struct {
	params *tensors.Tensor
	fw     *model.HostForward
	copied bool // fw.Zt is a copy from Take (else the tensor's own values)
}

// hostRecent is how many points hostFlow remembers. Within a step each
// computation is at the newest point or (a rejected polish) the one before;
// a forgotten point is evaluated again from its tensor.
const hostRecent = 3

// hostSpare bounds the tensors kept for reuse (a step with halvings makes more).
const hostSpare = 16

func newHostFlow(p *model.Problem) *hostFlow {
	return &hostFlow{net: model.NewHostNet(p), own: map[*tensors.Tensor][]float64{},
		tangent: map[*tensors.Tensor]*tangentPoint{}}
}

// newTensor returns an m×n tensor to fill and its values, reused when one is spare.
func (f *hostFlow) newTensor() (*tensors.Tensor, []float64) {
	var t *tensors.Tensor
	if k := len(f.spare); k > 0 {
		t, f.spare = f.spare[k-1], f.spare[:k-1]
	} else {
		p := f.net.Problem
		t = tensors.FromShape(shapes.Make(dtypes.Float64, p.M, p.N))
	}
	var data []float64
	tensors.MustMutableFlatData(t, func(v []float64) { data = v })
	f.own[t] = data
	f.scratch = append(f.scratch, t)
	return t, data
}

// values returns t's values: its own for a tensor made here, else a copy
// from Take (copied).
func (f *hostFlow) values(t *tensors.Tensor) (v []float64, copied bool) {
	if v, ok := f.own[t]; ok {
		return v, false
	}
	v = f.net.Take()
	tensors.MustConstFlatData(t, func(src []float64) { copy(v, src) })
	return v, true
}

// recycle is called by move from here with velocity u: every tensor made
// since the last move is dead but here and here's tangent point (its ∇F,
// P∇F and u). here becomes the state and is never recycled.
func (f *hostFlow) recycle(here, u *tensors.Tensor) {
	live := map[*tensors.Tensor]bool{here: true, u: true}
	if tp := f.tangent[u]; tp != nil {
		live[tp.grad], live[tp.projected] = true, true
	}
	if f.state != nil && f.state != here {
		delete(f.own, f.state) // an old state: the garbage collector's
	}
	f.state = here
	keep := f.scratch[:0]
	for _, t := range f.scratch {
		switch {
		case t == here:
		case live[t]:
			keep = append(keep, t)
		default:
			f.forget(t)
			delete(f.tangent, t)
			if len(f.spare) < hostSpare {
				f.spare = append(f.spare, t)
			} else {
				delete(f.own, t)
			}
		}
	}
	clear(f.scratch[len(keep):])
	f.scratch = keep
}

// forget drops t's remembered forward.
func (f *hostFlow) forget(t *tensors.Tensor) {
	for i, pt := range f.recent {
		if pt.params == t {
			f.release(pt)
			f.recent = append(f.recent[:i], f.recent[i+1:]...)
			return
		}
	}
}

func (f *hostFlow) release(pt hostPoint) {
	pt.fw.Release()
	if pt.copied {
		f.net.Put(pt.fw.Zt)
	}
}

// forward returns the network at params, from memory when it is recent.
func (f *hostFlow) forward(params *tensors.Tensor) *model.HostForward {
	for _, pt := range f.recent {
		if pt.params == params {
			return pt.fw
		}
	}
	zt, copied := f.values(params)
	return f.remember(params, zt, copied)
}

func (f *hostFlow) remember(params *tensors.Tensor, zt []float64, copied bool) *model.HostForward {
	fw := f.net.Forward(zt)
	if len(f.recent) == hostRecent {
		f.release(f.recent[0])
		copy(f.recent, f.recent[1:])
		f.recent = f.recent[:hostRecent-1]
	}
	f.recent = append(f.recent, hostPoint{params, fw, copied})
	return fw
}

// newPoint evaluates the network at params (from newTensor, with values zt).
func (f *hostFlow) newPoint(params *tensors.Tensor, zt []float64) (*tensors.Tensor, []float64, []float64, error) {
	fw := f.remember(params, zt, false)
	return params, fw.R, fw.JJT(), nil
}

func (f *hostFlow) residual(params *tensors.Tensor) ([]float64, []float64, error) {
	fw := f.forward(params)
	return fw.R, fw.JJT(), nil
}

// correct: Jᵀδ is the direction Coef(δ) X, so Zᵀ moves by −Coef(δ) G
// (HostForward.Corrected: model.HostSubtractProduct, ProductFirst).
func (f *hostFlow) correct(params *tensors.Tensor, delta []float64) (*tensors.Tensor, []float64, []float64, error) {
	fw := f.forward(params)
	t, next := f.newTensor()
	fw.Corrected(delta, next)
	return f.newPoint(t, next)
}

// move: Zᵀ − η·u by model.HostMoveBy (u = P∇F·G, formed once per point).
func (f *hostFlow) move(params, u *tensors.Tensor, eta float64) (*tensors.Tensor, []float64, []float64, error) {
	f.recycle(params, u)
	zt := f.forward(params).Zt
	v, copied := f.values(u)
	t, cand := f.newTensor()
	model.HostMoveBy(cand, zt, v, eta)
	if copied {
		f.net.Put(v)
	}
	return f.newPoint(t, cand)
}

func (f *hostFlow) at(params *tensors.Tensor) (*tangentPoint, error) {
	p := f.net.Problem
	fw := f.forward(params)
	grad, gv := f.newTensor()
	F := regularizers.TraceHessianWithGradHost(fw, gv)
	tp := &tangentPoint{proj: f, n: p.N, theta: params, F: F, grad: grad, jg: fw.Jv(gv), jjt: fw.JJT()}
	fw.ReleasePhi(2, 3)
	return tp, nil
}

// projected writes P∇F = ∇F − Coef(c) at tp and its velocity P∇F·G into
// pg and u (m×n) and returns ‖P∇F‖ (HostNet.Velocity): the host home of
// the projection, for projectAt and normAt.
func (f *hostFlow) projected(tp *tangentPoint, c, pg, u []float64) float64 {
	coef := f.net.Take()
	g, copied := f.values(tp.grad)
	projectRows(pg, g, f.forward(tp.theta).A(), c, coef)
	f.net.Put(coef)
	if copied {
		f.net.Put(g)
	}
	return math.Sqrt(f.net.Velocity(pg, u))
}

// projectRows writes P∇F = ∇F − Jᵀc for rows of Zᵀ (the feature layout:
// ∇F − Coef(c)) into out, given those rows of ∇F (g) and A, with scratch of
// g's size: the host home of the projection, for the flow (whole arrays)
// and the metrics' blocks. out may be g.
func projectRows(out, g, a, c, scratch []float64) {
	model.HostCoef(a[:len(g)], c, scratch)
	model.HostMoveBy(out, g, scratch, 1)
}

func (f *hostFlow) projectAt(tp *tangentPoint, c []float64) (*tensors.Tensor, *tensors.Tensor, float64, error) {
	pgT, pg := f.newTensor()
	uT, u := f.newTensor()
	norm := f.projected(tp, c, pg, u)
	f.tangent[uT] = tp
	return pgT, uT, norm, nil
}

func (f *hostFlow) normAt(tp *tangentPoint, c []float64) (float64, error) {
	pg, u := f.net.Take(), f.net.Take()
	defer f.net.Put(pg, u)
	return f.projected(tp, c, pg, u), nil
}

// Where a trainer computes its steps (Trainer.Path).
const (
	PathHost   = "host"   // Go loops and gonum on the host (SimpleGo's fast paths)
	PathGraphs = "graphs" // compiled GoMLX graphs: the reference, and the XLA path
)

// OnHost reports whether tr computes its steps on the host.
func OnHost(tr Trainer) bool { return tr.Path() == PathHost }
