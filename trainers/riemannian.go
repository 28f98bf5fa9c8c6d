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

func init() {
	register("riemannian", func(b backends.Backend, p *model.Problem, c Config) (Trainer, error) {
		return NewRiemannian(b, p, c.Riemannian(), c.Execution)
	}, func(c Config) Settings { return c.Riemannian() })
}

// Riemannian's per-run scalars in State.Extra, logged as metrics columns.
const (
	extraEta      = "eta"              // the current step size (halved by the safeguard)
	extraHalvings = "halvings"         // how many times η was halved so far
	extraRetract  = "retraction_iters" // Newton iterations of the last retraction
	// extraConverged is 1 once the flow is stationary (not logged: the
	// summary's stop reason says it).
	extraConverged = "converged"
)

// riemannian is the explicit projected flow of F = Tr D²L on the manifold of
// zero loss M = {Θ : f(Θ) = y}:
//
//	Θ ← R(Θ − η P ∇F),   P v = v − Jᵀ (J Jᵀ)⁻¹ J v,
//
// where the retraction R returns to M by Gauss–Newton steps
// Θ ← Θ − Jᵀ (J Jᵀ)⁻¹ (f − y) until ‖f − y‖ ≤ tol·‖y‖. J is never formed; the
// n×n systems are solved on the host by Cholesky. The safeguard halves η
// (and retries the step) when the Lagrangian F − cᵀr does not decrease
// enough (Armijo; see Step) or the retraction
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

	gtol float64 // stop when ‖grad_M F‖ ≤ gtol (0: at the rounding floor only)

	// last caches F, ∇F and the residual at the current Θ; it saves work
	// only and changes no result.
	last  *tangentPoint
	lastR []float64
}

// Retraction limits.
const (
	initRetractIters = 200 // from Θ₀, possibly far from M, with backtracking
	stepRetractIters = 12  // after a step, close to M: Newton converges quadratically
	maxHalvings      = 60
	etaRecovery      = 1.02 // growth of η per accepted step, up to the nominal η
	armijo           = 1e-4 // sufficient-decrease constant c: F must fall by c η ‖P∇F‖²
)

// NewRiemannian is the projected Riemannian flow of Tr D²L on the manifold
// of zero loss (docs/MATH.md §5): retract Θ₀ onto it (Init), then step along
// −P∇F with an Armijo safeguard on η and retract, until converged.
func NewRiemannian(b backends.Backend, p *model.Problem, s RiemannianSettings, x Execution) (Trainer, error) {
	if err := prepare(p, s, &x); err != nil {
		return nil, err
	}
	if p.Act.DerivativeSignChanges() {
		return nil, fmt.Errorf("riemannian needs φ' ≥ 0 with isolated zeros; %s has φ' changing sign (use ν ≥ 0)", p.Act.Name())
	}
	eng, err := newEngine(b, p, x.Engine)
	if err != nil {
		return nil, err
	}
	var fl flow
	if useHostFlow(b, eng) && !x.Graphs {
		fl = newHostFlow(p)
	} else if fl, err = newGraphFlow(b, p, eng); err != nil {
		return nil, err
	}
	tol := s.RetractTol * math.Max(norm(p.Y), 1e-300)
	return &riemannian{p: p, eng: eng, fl: fl, eta: s.Eta, tol: tol, gtol: s.Gtol}, nil
}

func (t *riemannian) Name() string   { return "riemannian" }
func (t *riemannian) Engine() string { return t.eng.name }

// Path is PathHost for the host flow (feature engine on SimpleGo), else PathGraphs.
func (t *riemannian) Path() string {
	if _, ok := t.fl.(*hostFlow); ok {
		return PathHost
	}
	return PathGraphs
}
func (t *riemannian) engine() *engine     { return t.eng }
func (t *riemannian) Sync(s *State) error { return t.eng.sync(s) }

// Advance takes k steps one by one: each needs host solves.
func (t *riemannian) Advance(s *State, k int64) (float64, error) {
	loss := math.NaN()
	for range k {
		var err error
		if loss, err = t.Step(s); err != nil || t.Converged(s) {
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
func (t *riemannian) retract(theta *tensors.Tensor, r, jjt []float64, maxIters int, damped bool) (*tensors.Tensor, int, []float64, error) {
	rn := norm(r)
	for it := 0; ; it++ {
		if math.IsNaN(rn) || math.IsInf(rn, 0) {
			return nil, it, nil, fmt.Errorf("%w: the residual is %v", errNoConvergence, rn)
		}
		if rn <= t.tol {
			if polished, pr, ok := t.polish(theta, r, jjt, rn); ok {
				return polished, it + 1, pr, nil
			}
			return theta, it, r, nil
		}
		if it == maxIters {
			return nil, it, nil, fmt.Errorf("%w: residual %.3g after %d Gauss–Newton steps (tolerance %.3g)", errNoConvergence, rn, it, t.tol)
		}
		delta, err := linalg.SolveSPD(jjt, t.p.N, r)
		if err != nil {
			return nil, it, nil, fmt.Errorf("%w: %v", ErrSingularJJT, err)
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
				return nil, it, nil, err
			}
			if n := norm(nr); !damped || n < rn {
				theta, r, jjt, rn = next, nr, njjt, n
				accepted = true
				break
			}
		}
		if !accepted {
			return nil, it, nil, fmt.Errorf("%w: no Gauss–Newton step reduces the residual %.3g", errNoConvergence, rn)
		}
	}
}

// polish tries one Gauss–Newton step from a point already within tolerance
// and keeps it (returning its residual) if it lowers the residual.
func (t *riemannian) polish(theta *tensors.Tensor, r, jjt []float64, rn float64) (*tensors.Tensor, []float64, bool) {
	if rn == 0 {
		return nil, nil, false
	}
	delta, err := linalg.SolveSPD(jjt, t.p.N, r)
	if err != nil {
		return nil, nil, false
	}
	next, nr, _, err := t.fl.correct(theta, delta)
	if err != nil {
		return nil, nil, false
	}
	if norm(nr) < rn {
		return next, nr, true
	}
	return nil, nil, false
}

// Step takes one projected step, halving η until the Lagrangian decreases
// and the retraction converges. It returns the loss at Θ before the step.
// At a point stationary to rounding (see stationary) it takes no step and
// marks the state converged instead.
//
// The sufficient-decrease test is on the Lagrangian F̃(Θ') = F(Θ') − cᵀr(Θ'),
// with c = (J Jᵀ)⁻¹J∇F the multiplier at the current Θ, not on F: F has a
// large derivative normal to M (∇F − P∇F = Jᵀc), so the rounding-level
// residual r that every retraction leaves moves F by about cᵀΔr, which near
// the optimum exceeds the decrease η‖P∇F‖² and made the test fail at every
// η. F̃ has no first-order dependence on r (∂F̃/∂Θ = P∇F to first order), so
// only F's own rounding error remains, which the slack covers.
func (t *riemannian) Step(s *State) (float64, error) {
	if err := t.eng.adopt(s); err != nil {
		return math.NaN(), err
	}
	eta := s.Extra[extraEta]
	if eta == 0 {
		eta = t.eta
	}
	here := t.eng.current(s)
	tp, rHere := t.last, t.lastR
	if tp == nil || tp.theta != here {
		var err error
		if tp, err = t.fl.at(here); err != nil {
			return math.NaN(), err
		}
		if rHere, _, err = t.fl.residual(here); err != nil {
			return math.NaN(), err
		}
	}
	// L = Σr² by its host home, with zero targets (r − 0 = r exactly). The
	// loop reads it only to detect divergence: no logged value changes.
	loss := model.HostLoss(rHere)
	_, vnorm, err := tp.project()
	if err != nil {
		return math.NaN(), t.singular(s, err)
	}
	if t.stationary(tp, vnorm) {
		s.Extra[extraConverged] = 1
		return loss, nil
	}
	lHere := tp.F - model.HostDot(tp.c, rHere)
	slack := roundingSlack * math.Abs(tp.F)
	floor := t.floor(tp, vnorm)
	for range maxHalvings {
		cand, cr, cjjt, err := t.fl.move(here, tp.velocity, eta)
		if err != nil {
			return math.NaN(), err
		}
		next, iters, rNext, rerr := t.retract(cand, cr, cjjt, stepRetractIters, false)
		if rerr == nil {
			np, err := t.fl.at(next)
			if err != nil {
				return math.NaN(), err
			}
			// Sufficient decrease (Armijo) of the Lagrangian, up to F's rounding.
			// At the largest such η, stiff directions may oscillate (‖grad_M F‖
			// can rise for a few steps, at the edge of stability) while F keeps
			// falling; the gain in the slow directions is worth it.
			if np.F-model.HostDot(tp.c, rNext) <= lHere-armijo*eta*vnorm*vnorm+slack && t.settles(np, vnorm, eta, slack, floor) {
				t.eng.set(s, next)
				s.Step++
				s.Extra[extraRetract] = float64(iters)
				t.last, t.lastR = np, rNext
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
	return math.NaN(), fmt.Errorf("step size η fell below %.3g without decreasing Tr D²L (‖grad_M F‖ = %.3g, %.3g times its rounding floor): J Jᵀ may be ill-conditioned",
		eta, vnorm, vnorm/t.floor(tp, vnorm))
}

// Rounding thresholds of the flow, in units of the float64 epsilon.
const (
	// roundingSlack bounds the rounding error of F = Tr D²L relative to |F|:
	// a sum of m·n positive terms (on M) in float64, accumulated blockwise.
	roundingSlack = 64 * epsilon
	// floorFactor times ε‖∇F‖ is the rounding floor of ‖P∇F‖: P∇F = ∇F − Jᵀc
	// is the difference of two vectors of norm up to ‖∇F‖, each carrying
	// rounding errors of order ε‖∇F‖ (times the products' lengths).
	floorFactor = 4096
	epsilon     = 0x1p-52
)

// floor is the rounding floor of ‖P∇F‖ at tp (after project): below it,
// the projected gradient is indistinguishable from the rounding error of
// its two terms ∇F and Jᵀc, and no step can reliably decrease F.
func (t *riemannian) floor(tp *tangentPoint, vnorm float64) float64 {
	normal := tp.normalNorm()
	return floorFactor * epsilon * math.Sqrt(vnorm*vnorm+normal*normal)
}

// stationary reports whether ‖grad_M F‖ = vnorm is at or below the larger of
// the user's tolerance (Config.Gtol) and the rounding floor.
func (t *riemannian) stationary(tp *tangentPoint, vnorm float64) bool {
	return vnorm <= max(t.gtol, t.floor(tp, vnorm))
}

// settles is the second half of the acceptance test, for steps whose
// Armijo decrease η‖P∇F‖² is below F's rounding slack: there the test on F̃
// cannot tell a decrease from noise, and would let η grow past the edge of
// stability until an oscillation of the stiffest direction became visible in
// F (gap ~1e-8 with F ~ 30). Near the optimum F̃ is nearly quadratic and a
// stable step does not lengthen the projected gradient, so such a step is
// accepted only if ‖P∇F‖ at the new point is at most its old value plus the
// rounding floor. The projection at np is needed by the next step anyway.
func (t *riemannian) settles(np *tangentPoint, vnorm, eta, slack, floor float64) bool {
	if armijo*eta*vnorm*vnorm > slack {
		return true
	}
	_, next, err := np.project()
	return err == nil && next <= vnorm+floor
}

// Converged reports whether the flow has reached a point stationary to
// rounding (or to Config.Gtol): further steps would not change Θ.
func (t *riemannian) Converged(s *State) bool { return s.Extra[extraConverged] != 0 }

func (t *riemannian) singular(s *State, err error) error {
	hint := "e.g. duplicate or collinear data points, or all neurons with φ'(θ_j·x_i) = 0 for some i"
	if t.p.N > t.p.D {
		hint = fmt.Sprintf("n = %d > d = %d: check for collinear data points", t.p.N, t.p.D)
	}
	return fmt.Errorf("J Jᵀ is singular at step %d (%s): %w", s.Step, hint, err)
}

// norm returns ‖v‖ (model.HostDot, the host's one inner product).
func norm(v []float64) float64 { return math.Sqrt(model.HostDot(v, v)) }
