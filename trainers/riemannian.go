package trainers

import (
	"errors"
	"fmt"
	"math"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func init() { register("riemannian", newRiemannian) }

// Riemannian's per-run scalars in State.Extra, logged as metrics columns.
const (
	extraEta      = "eta"              // the current step size (halved by the safeguard)
	extraHalvings = "halvings"         // how many times η was halved so far
	extraRetract  = "retraction_iters" // Newton iterations of the last retraction
)

// riemannian is the explicit projected flow of F = Tr D²L on the manifold of
// zero loss M = {Θ : f(Θ) = y}:
//
//	Θ ← R(Θ − η P ∇F),   P v = v − Jᵀ (J Jᵀ)⁻¹ J v,
//
// where the retraction R returns to M by Gauss–Newton steps
// Θ ← Θ − Jᵀ (J Jᵀ)⁻¹ (f − y) until ‖f − y‖ ≤ tol·‖y‖. J is never formed; the
// n×n systems are solved on the host by Cholesky. The safeguard halves η
// (and retries the step) when F does not decrease (Armijo) or the retraction
// does not converge; after each accepted step η grows back by 2%, never
// beyond the nominal --eta, so η tracks the largest stable step. The
// computations at a point go through a flow (flow.go): compiled graphs, or
// the host for the feature engine on SimpleGo.
type riemannian struct {
	p   *model.Problem
	eng *engine
	fl  flow
	eta float64
	tol float64 // absolute residual tolerance

	// last caches F, ∇F and the loss at the current Θ; it saves work only and
	// changes no result.
	last     *tangentPoint
	lastLoss float64
}

// Retraction limits.
const (
	initRetractIters = 200 // from Θ₀, possibly far from M, with backtracking
	stepRetractIters = 12  // after a step, close to M: Newton converges quadratically
	maxHalvings      = 60
	etaRecovery      = 1.02 // growth of η per accepted step, up to the nominal η
	armijo           = 1e-4 // sufficient-decrease constant c: F must fall by c η ‖P∇F‖²
)

func newRiemannian(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if p.Act.DerivativeSignChanges() {
		return nil, fmt.Errorf("riemannian needs φ' ≥ 0 with isolated zeros; %s has φ' changing sign (use ν ≥ 0)", p.Act.Name())
	}
	if !(cfg.RetractTol > 0) || cfg.RetractTol >= 1 {
		return nil, fmt.Errorf("--retract-tol must be in (0, 1), got %v", cfg.RetractTol)
	}
	eng, err := newEngine(b, p, cfg.Engine)
	if err != nil {
		return nil, err
	}
	var fl flow
	if useHostFlow(b, eng) && !cfg.Graphs {
		fl = newHostFlow(p)
	} else if fl, err = newGraphFlow(b, p, eng); err != nil {
		return nil, err
	}
	yNorm := 0.0
	for _, y := range p.Y {
		yNorm += y * y
	}
	tol := cfg.RetractTol * math.Max(math.Sqrt(yNorm), 1e-300)
	return &riemannian{p: p, eng: eng, fl: fl, eta: cfg.Eta, tol: tol}, nil
}

func (t *riemannian) Name() string        { return "riemannian" }
func (t *riemannian) Engine() string      { return t.eng.name }
func (t *riemannian) engine() *engine     { return t.eng }
func (t *riemannian) Sync(s *State) error { return t.eng.sync(s) }

// Advance takes k steps one by one: each needs host solves.
func (t *riemannian) Advance(s *State, k int64) (float64, error) {
	loss := math.NaN()
	for range k {
		var err error
		if loss, err = t.Step(s); err != nil {
			return loss, err
		}
	}
	return loss, nil
}
func (t *riemannian) Extras() []string { return []string{extraEta, extraHalvings, extraRetract} }

// Init retracts Θ₀ onto M by damped Gauss–Newton (the step is halved until
// the residual decreases) and sets the step size.
func (t *riemannian) Init(s *State) error {
	if err := t.eng.adopt(s); err != nil {
		return err
	}
	start := t.eng.current(s)
	r, jjt, err := t.fl.residual(start)
	if err != nil {
		return err
	}
	theta, iters, _, err := t.retract(start, r, jjt, initRetractIters, true)
	if err != nil {
		return fmt.Errorf("could not reach the manifold of zero loss from Θ₀: %w", err)
	}
	t.eng.set(s, theta)
	s.Extra[extraEta] = t.eta
	s.Extra[extraHalvings] = 0
	s.Extra[extraRetract] = float64(iters)
	return nil
}

// errNoConvergence is a retraction that did not reach the tolerance.
var errNoConvergence = errors.New("retraction did not converge")

// retract runs Gauss–Newton from theta, where the residual is r and J Jᵀ is
// jjt, until ‖f − y‖ ≤ tol, then one more step to take the residual to
// rounding level. Damped (from Θ₀): each step is halved until the
// residual decreases.
func (t *riemannian) retract(theta *tensors.Tensor, r, jjt []float64, maxIters int, damped bool) (*tensors.Tensor, int, float64, error) {
	rn := norm(r)
	for it := 0; ; it++ {
		if math.IsNaN(rn) || math.IsInf(rn, 0) {
			return nil, it, rn, fmt.Errorf("%w: the residual is %v", errNoConvergence, rn)
		}
		if rn <= t.tol {
			if polished, pr, ok := t.polish(theta, r, jjt, rn); ok {
				return polished, it + 1, pr, nil
			}
			return theta, it, rn, nil
		}
		if it == maxIters {
			return nil, it, rn, fmt.Errorf("%w: residual %.3g after %d Gauss–Newton steps (tolerance %.3g)", errNoConvergence, rn, it, t.tol)
		}
		delta, err := linalg.SolveSPD(jjt, t.p.N, r)
		if err != nil {
			return nil, it, rn, fmt.Errorf("%w: %v", ErrSingularJJT, err)
		}
		accepted := false
		for scale := 1.0; scale > 1e-6; scale /= 2 {
			d := delta
			if scale != 1 {
				d = make([]float64, len(delta))
				for i := range d {
					d[i] = scale * delta[i]
				}
			}
			next, nr, njjt, err := t.fl.correct(theta, d)
			if err != nil {
				return nil, it, rn, err
			}
			if n := norm(nr); !damped || n < rn {
				theta, r, jjt, rn = next, nr, njjt, n
				accepted = true
				break
			}
		}
		if !accepted {
			return nil, it, rn, fmt.Errorf("%w: no Gauss–Newton step reduces the residual %.3g", errNoConvergence, rn)
		}
	}
}

// polish tries one Gauss–Newton step from a point already within tolerance
// and keeps it if it lowers the residual.
func (t *riemannian) polish(theta *tensors.Tensor, r, jjt []float64, rn float64) (*tensors.Tensor, float64, bool) {
	if rn == 0 {
		return nil, 0, false
	}
	delta, err := linalg.SolveSPD(jjt, t.p.N, r)
	if err != nil {
		return nil, 0, false
	}
	next, nr, _, err := t.fl.correct(theta, delta)
	if err != nil {
		return nil, 0, false
	}
	if n := norm(nr); n < rn {
		return next, n, true
	}
	return nil, 0, false
}

// Step takes one projected step, halving η until F decreases and the
// retraction converges. It returns the loss at Θ before the step.
func (t *riemannian) Step(s *State) (float64, error) {
	if err := t.eng.adopt(s); err != nil {
		return math.NaN(), err
	}
	eta := s.Extra[extraEta]
	if eta == 0 {
		eta = t.eta
	}
	here := t.eng.current(s)
	tp := t.last
	if tp == nil || tp.theta != here {
		var err error
		if tp, err = t.fl.at(here); err != nil {
			return math.NaN(), err
		}
	}
	loss := t.lastLoss
	if t.last == nil || t.last.theta != here {
		var err error
		if loss, err = t.loss(here); err != nil {
			return math.NaN(), err
		}
	}
	_, vnorm, err := tp.project()
	if err != nil {
		return math.NaN(), t.singular(s, err)
	}
	for range maxHalvings {
		cand, cr, cjjt, err := t.fl.move(here, tp.velocity, eta)
		if err != nil {
			return math.NaN(), err
		}
		next, iters, rn, rerr := t.retract(cand, cr, cjjt, stepRetractIters, false)
		if rerr == nil {
			np, err := t.fl.at(next)
			if err != nil {
				return math.NaN(), err
			}
			// Sufficient decrease (Armijo), up to rounding. At the largest such
			// η, stiff directions may oscillate (‖grad_M F‖ can rise for a few
			// steps, at the edge of stability) while F keeps falling; the gain
			// in the slow directions is worth it.
			if np.F <= tp.F-armijo*eta*vnorm*vnorm+1e-14*math.Abs(tp.F) {
				t.eng.set(s, next)
				s.Step++
				s.Extra[extraRetract] = float64(iters)
				t.last, t.lastLoss = np, rn*rn
				// Let η recover toward its nominal value, so that an early
				// halving (far from the optimum, where F is steep) does not slow
				// the whole run.
				s.Extra[extraEta] = math.Min(eta*etaRecovery, t.eta)
				return loss, nil
			}
		}
		// A candidate where the retraction fails (J Jᵀ singular there included:
		// a long step can saturate neurons) is just a step too long.
		eta /= 2
		s.Extra[extraHalvings]++
	}
	return math.NaN(), fmt.Errorf("step size η fell below %.3g without decreasing Tr D²L: Θ may be stationary to rounding, or J Jᵀ ill-conditioned", eta)
}

func (t *riemannian) singular(s *State, err error) error {
	hint := "e.g. duplicate or collinear data points, or all neurons with φ'(θ_j·x_i) = 0 for some i"
	if t.p.N > t.p.D {
		hint = fmt.Sprintf("n = %d > d = %d: check for collinear data points", t.p.N, t.p.D)
	}
	return fmt.Errorf("J Jᵀ is singular at step %d (%s): %w", s.Step, hint, err)
}

func (t *riemannian) loss(theta *tensors.Tensor) (float64, error) {
	r, _, err := t.fl.residual(theta)
	if err != nil {
		return math.NaN(), err
	}
	rn := norm(r)
	return rn * rn, nil
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}
