package trainers

import (
	"math"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// flow is what the Riemannian flow computes at a point; params are the
// engine's (Θ, or Zᵀ for the feature engine). graphFlow runs compiled graphs
// on any backend; hostFlow runs the feature engine's on the host, with
// gonum's products, where the backend is SimpleGo (see model.HostNet).
// The step logic (riemannian.go) is the same for both.
type flow interface {
	// residual returns r = f − y and J Jᵀ at params.
	residual(params *tensors.Tensor) (r, jjt []float64, err error)
	// correct returns params moved by −Jᵀδ (J at params), with r and J Jᵀ there.
	correct(params *tensors.Tensor, delta []float64) (next *tensors.Tensor, r, jjt []float64, err error)
	// move returns params − η·u for a velocity u (space.velocity), with r and J Jᵀ there.
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
		fw := sp.forward(model.NewNet(params.Graph(), p), params)
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
type hostFlow struct {
	net    *model.HostNet
	recent []hostPoint
}

type hostPoint struct {
	params *tensors.Tensor
	fw     *model.HostForward
}

// hostRecent is how many points hostFlow remembers. Within a step each
// computation is at the newest point or (a rejected polish) the one before;
// a forgotten point is evaluated again from its tensor.
const hostRecent = 3

func newHostFlow(p *model.Problem) *hostFlow { return &hostFlow{net: model.NewHostNet(p)} }

// forward returns the network at params, from memory when it is recent.
func (f *hostFlow) forward(params *tensors.Tensor) *model.HostForward {
	for _, pt := range f.recent {
		if pt.params == params {
			return pt.fw
		}
	}
	return f.remember(params, tensors.MustCopyFlatData[float64](params))
}

func (f *hostFlow) remember(params *tensors.Tensor, zt []float64) *model.HostForward {
	fw := f.net.Forward(zt)
	if len(f.recent) == hostRecent {
		old := f.recent[0]
		old.fw.Release()
		f.net.Put(old.fw.Zt)
		copy(f.recent, f.recent[1:])
		f.recent = f.recent[:hostRecent-1]
	}
	f.recent = append(f.recent, hostPoint{params, fw})
	return fw
}

// newPoint wraps features zt as params and evaluates the network there.
func (f *hostFlow) newPoint(zt []float64) (*tensors.Tensor, []float64, []float64, error) {
	p := f.net.Problem
	params := tensors.FromFlatDataAndDimensions(zt, p.M, p.N)
	fw := f.remember(params, zt)
	return params, fw.R, fw.JJT(), nil
}

func (f *hostFlow) residual(params *tensors.Tensor) ([]float64, []float64, error) {
	fw := f.forward(params)
	return fw.R, fw.JJT(), nil
}

// correct: Jᵀδ is the direction Coef(δ) X, so Zᵀ moves by −Coef(δ) G.
func (f *hostFlow) correct(params *tensors.Tensor, delta []float64) (*tensors.Tensor, []float64, []float64, error) {
	fw := f.forward(params)
	coef := fw.Coef(delta)
	next := f.net.TimesGram(coef, 1, nil)
	f.net.Put(coef)
	for k, z := range fw.Zt {
		next[k] = z - next[k]
	}
	return f.newPoint(next)
}

func (f *hostFlow) move(params, u *tensors.Tensor, eta float64) (*tensors.Tensor, []float64, []float64, error) {
	zt := f.forward(params).Zt
	cand := f.net.Take()
	if err := tensors.ConstFlatData(u, func(v []float64) {
		for k, z := range zt {
			cand[k] = z - eta*v[k]
		}
	}); err != nil {
		return nil, nil, nil, err
	}
	return f.newPoint(cand)
}

func (f *hostFlow) at(params *tensors.Tensor) (*tangentPoint, error) {
	p := f.net.Problem
	fw := f.forward(params)
	g := regularizers.TraceHessianFeatureGradHost(fw)
	defer f.net.Put(g)
	tp := &tangentPoint{proj: f, n: p.N, theta: params, F: regularizers.TraceHessianHost(fw),
		grad: tensors.FromFlatDataAndDimensions(g, p.M, p.N), jg: fw.Jv(g), jjt: fw.JJT()}
	fw.ReleasePhi(2, 3)
	return tp, nil
}

// projected returns P∇F = ∇F − Coef(c) at tp and its velocity P∇F·G, in
// buffers from Take.
func (f *hostFlow) projected(tp *tangentPoint, c []float64) (pg, u []float64, err error) {
	coef := f.forward(tp.theta).Coef(c)
	err = tensors.ConstFlatData(tp.grad, func(g []float64) {
		for k := range coef {
			coef[k] = g[k] - coef[k]
		}
	})
	return coef, f.net.TimesGram(coef, 1, nil), err
}

func (f *hostFlow) projectAt(tp *tangentPoint, c []float64) (*tensors.Tensor, *tensors.Tensor, float64, error) {
	pg, u, err := f.projected(tp, c)
	if err != nil {
		return nil, nil, math.NaN(), err
	}
	defer f.net.Put(pg, u)
	p := f.net.Problem
	return tensors.FromFlatDataAndDimensions(pg, p.M, p.N), tensors.FromFlatDataAndDimensions(u, p.M, p.N), math.Sqrt(dot(pg, u)), nil
}

func (f *hostFlow) normAt(tp *tangentPoint, c []float64) (float64, error) {
	pg, u, err := f.projected(tp, c)
	if err != nil {
		return math.NaN(), err
	}
	defer f.net.Put(pg, u)
	return math.Sqrt(dot(pg, u)), nil
}

func dot(a, b []float64) float64 {
	s := 0.0
	for k := range a {
		s += a[k] * b[k]
	}
	return s
}

// OnHost reports whether tr computes its steps on the host (hostTrainer,
// hostFlow) rather than in compiled graphs.
func OnHost(tr Trainer) bool {
	switch t := tr.(type) {
	case *hostTrainer:
		return true
	case *riemannian:
		_, ok := t.fl.(*hostFlow)
		return ok
	}
	return false
}

// Path names where tr steps: "host" (OnHost) or "graphs".
func Path(tr Trainer) string {
	if OnHost(tr) {
		return "host"
	}
	return "graphs"
}
