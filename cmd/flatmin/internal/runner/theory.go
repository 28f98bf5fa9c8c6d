package runner

import (
	"fmt"
	"math"

	"github.com/flatmin/flatmin/regularizers"
	"github.com/flatmin/flatmin/trainers"
	"github.com/gomlx/gomlx/backends"
)

// TheoryPoint is the prediction for one data point.
type TheoryPoint struct {
	I        int                `json:"i"`
	Y        float64            `json:"y"`
	NormSq   float64            `json:"norm_sq"`
	ZStar    trainers.JSONFloat `json:"z_star"`    // φ⁻¹(y_i/m)
	PhiPrime trainers.JSONFloat `json:"phi_prime"` // φ'(z*_i)
}

// TheoryReport is `flatmin theory`'s output.
type TheoryReport struct {
	Activation  string             `json:"activation"`
	M           int                `json:"m"`
	N           int                `json:"n"`
	D           int                `json:"d"`
	Rho1        float64            `json:"rho1"`
	Rho2        float64            `json:"rho2"`
	Beta        float64            `json:"beta"`
	BetaPaper   trainers.JSONFloat `json:"beta_paper"`
	Mu          float64            `json:"mu"`
	Assumption1 bool               `json:"assumption1"`
	Assumption2 bool               `json:"assumption2"`
	Assumption3 bool               `json:"assumption3"`
	Why         []string           `json:"why"`
	TraceMin    trainers.JSONFloat `json:"trace_min"`
	Optimum     string             `json:"optimum"` // why there is none, or "defined"
	Points      []TheoryPoint      `json:"points"`
	Eps         float64            `json:"eps"`
	F0          trainers.JSONFloat `json:"F0"`         // Tr D²L where the flow starts on the manifold
	TimeBound   trainers.JSONFloat `json:"time_bound"` // Theorem 3, flow time to ε-stationarity
	// TimeBoundNote says why time_bound is null, "" when it is not.
	TimeBoundNote string `json:"time_bound_note,omitempty"`
	Note          string `json:"note,omitempty"`
}

// Theory evaluates the paper's predictions for the configured problem. F(0)
// is Tr D²L at Θ₀ retracted onto the manifold, where `--trainer riemannian`
// would start; it is NaN when that retraction is impossible.
func Theory(cfg Config, b backends.Backend, eps float64) (*TheoryReport, error) {
	if !(eps > 0) || math.IsInf(eps, 0) {
		return nil, Input(fmt.Errorf("--eps must be positive and finite, got %v", eps))
	}
	p, err := cfg.Problem()
	if err != nil {
		return nil, Input(err)
	}
	f0 := math.NaN()
	if theta0, err := cfg.Theta0(p); err != nil {
		return nil, Input(err)
	} else if tr, err := trainers.New("riemannian", b, p, trainers.Config{Eta: 1, RetractTol: cfg.RetractTol}); err == nil {
		s, err := trainers.NewState(p, theta0, cfg.Seed)
		if err != nil {
			return nil, Input(err)
		}
		if tr.Init(s) == nil && tr.Sync(s) == nil {
			ev, err := trainers.NewEvaluator(b, p)
			if err != nil {
				return nil, err
			}
			if m, err := ev.Measure(s.Theta); err == nil {
				f0 = m.TraceHessian
			}
		}
	}
	th := regularizers.PredictTheory(p, eps, f0)
	c := th.Constants
	r := &TheoryReport{
		Activation: th.Activation, M: p.M, N: p.N, D: p.D,
		Rho1: c.Rho1, Rho2: c.Rho2, Beta: c.Beta, BetaPaper: trainers.JSONFloat(c.BetaPaper), Mu: th.Mu,
		Assumption1: c.Assumption1, Assumption2: th.Assumption2, Assumption3: c.Assumption3, Why: th.Why(),
		TraceMin: trainers.JSONFloat(math.NaN()), Optimum: "defined", Eps: eps, F0: trainers.JSONFloat(f0),
		TimeBound: trainers.JSONFloat(th.TimeBound), Note: th.Note,
	}
	switch {
	case !math.IsNaN(th.TimeBound):
	case !p.UnitWeights():
		r.TimeBoundNote = "not applicable: Theorem 3 is stated for w = 1"
	default:
		r.TimeBoundNote = "none: it needs Assumptions 1-3 and F(0)"
	}
	if r.Why == nil {
		r.Why = []string{}
	}
	if th.Optimum.OK {
		r.TraceMin = trainers.JSONFloat(th.Optimum.TraceMin)
	} else {
		r.Optimum = th.Optimum.Why
	}
	norms := p.RowNormSq()
	for i := range p.N {
		pt := TheoryPoint{I: i, Y: p.Y[i], NormSq: norms[i], ZStar: trainers.JSONFloat(math.NaN()), PhiPrime: trainers.JSONFloat(math.NaN())}
		if th.Optimum.OK {
			z := th.Optimum.Z[i]
			pt.ZStar, pt.PhiPrime = trainers.JSONFloat(z), trainers.JSONFloat(p.Act.Host(z, 1))
		}
		r.Points = append(r.Points, pt)
	}
	return r, nil
}
