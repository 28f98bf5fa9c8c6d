package regularizers

import (
	"fmt"
	"math"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
)

// Optimum is Theorem 2's prediction for w = 1: at every stationary point of
// Tr D²L on the manifold of zero loss, θ_j·x_i = z*_i = φ⁻¹(y_i/m) for all j,
// and the trace takes its minimum F* = 2 Σ_i ‖x_i‖² m φ'(z*_i)².
type Optimum struct {
	Z        []float64 // z*_i per data point
	TraceMin float64   // F*
	OK       bool      // false when the prediction is undefined (see Why)
	Why      string
}

// PredictOptimum returns the theory's optimum for the problem, or why there is none.
func PredictOptimum(p *model.Problem) Optimum {
	if !p.UnitWeights() {
		return Optimum{Why: "second-layer weights are not all ones: the theory then predicts φ''(z_ij) = α_i/w_j (φ''(Z) rank one), not z*_i"}
	}
	opt := Optimum{Z: make([]float64, p.N), OK: true}
	norms := p.RowNormSq()
	for i, y := range p.Y {
		z, ok := p.Act.Inverse(y / float64(p.M))
		if !ok {
			return Optimum{Why: fmt.Sprintf("φ⁻¹(y_%d/m) = φ⁻¹(%g) does not exist for %s", i, y/float64(p.M), p.Act.Name())}
		}
		opt.Z[i] = z
		d := p.Act.Host(z, 1)
		opt.TraceMin += 2 * norms[i] * float64(p.M) * d * d
	}
	return opt
}

// Theta returns a Θ at the optimum: every neuron the minimum-norm θ with
// θ·x_i = z*_i for all i (it exists when the x_i are linearly independent).
func (o Optimum) Theta(p *model.Problem) ([]float64, error) {
	if !o.OK {
		return nil, fmt.Errorf("no optimum: %s", o.Why)
	}
	alpha, err := linalg.SolveSPD(p.Gram(), p.N, o.Z)
	if err != nil {
		return nil, fmt.Errorf("θ·x_i = z*_i has no solution for these data: %w", err)
	}
	theta := make([]float64, p.M*p.D)
	for j := range p.M {
		for i := range p.N {
			for c := range p.D {
				theta[j*p.D+c] += alpha[i] * p.X[i*p.D+c]
			}
		}
	}
	return theta, nil
}

// TheoryGap returns max_ij |z_ij − z*_i| for Z given as n×m row-major, NaN when the optimum is undefined.
func (o Optimum) TheoryGap(z []float64, n, m int) float64 { return o.gap(z, n, m, m, 1) }

// TheoryGapNeuronMajor is TheoryGap for Zᵀ given m×n (the feature engine's layout).
func (o Optimum) TheoryGapNeuronMajor(zt []float64, n, m int) float64 { return o.gap(zt, n, m, 1, n) }

// gap is the theory gap's one home (docs/MATH.md §6.2) for z_ij at
// z[i·exampleStride + j·neuronStride]: a maximum, so the order of the loops
// does not change its bits.
func (o Optimum) gap(z []float64, n, m, exampleStride, neuronStride int) float64 {
	if !o.OK {
		return math.NaN()
	}
	gap := 0.0
	for j := range m {
		row := z[j*neuronStride:]
		for i := range n {
			gap = math.Max(gap, math.Abs(row[i*exampleStride]-o.Z[i]))
		}
	}
	return gap
}

// Theory collects what the paper says about a problem: the activation's
// constants, the data's coherence μ, which assumptions hold, Theorem 2's
// optimum and Theorem 3's time bound.
type Theory struct {
	Activation  string
	Constants   model.Constants
	Mu          float64 // λ_min(X Xᵀ)
	Assumption2 bool    // n ≤ d and the x_i linearly independent (μ > 0)
	Why2        string
	Optimum     Optimum
	// Eps and F0 are Theorem 3's accuracy and F = Tr D²L at the flow's start
	// on the manifold (NaN if unknown); TimeBound is the flow time after which
	// ‖grad_M F‖ ≤ ε (NaN unless w = 1 and Assumptions 1–3 hold).
	Eps, F0, TimeBound float64
	// Note says what the theory predicts when w is not all ones.
	Note string
}

// PredictTheory evaluates the paper's assumptions and predictions for p.
func PredictTheory(p *model.Problem, eps, f0 float64) Theory {
	th := Theory{Activation: p.Act.Name(), Constants: p.Act.Constants(), Optimum: PredictOptimum(p), Eps: eps, F0: f0, TimeBound: math.NaN()}
	gram := p.Gram()
	trace := 0.0
	for i := range p.N {
		trace += gram[i*p.N+i]
	}
	th.Mu = math.NaN()
	if mu, err := linalg.MinEigenSym(gram, p.N); err == nil {
		th.Mu = math.Max(mu, 0)
	}
	switch {
	case p.N > p.D:
		th.Why2 = fmt.Sprintf("Assumption 2 fails: n = %d > d = %d, so the x_i cannot be linearly independent (μ = 0); Z cannot become rank one", p.N, p.D)
		th.Mu = 0
	case !(th.Mu > 1e-12*trace):
		th.Why2 = "Assumption 2 fails: the x_i are linearly dependent (μ = λ_min(X Xᵀ) ≈ 0)"
	default:
		th.Assumption2 = true
	}
	switch {
	case !p.UnitWeights():
		th.Note = "w is not all ones: at a stationary point φ''(z_ij) = α_i/w_j, so φ''(Z), not Z, becomes rank one"
	case p.N > p.D && th.Optimum.OK:
		th.Note = "n > d: θ_j·x_i = z*_i for all i has no solution in general, so F* is a lower bound Tr D²L does not reach and the theory gap stays positive"
	}
	c := th.Constants
	// Theorem 3 is stated for w = 1.
	if p.UnitWeights() && c.Assumption1 && c.Assumption3 && th.Assumption2 && eps > 0 && !math.IsNaN(f0) {
		b2 := c.Beta * c.Beta
		r := c.Rho1 * c.Rho2
		th.TimeBound = f0/(th.Mu*b2) + math.Log(math.Max(b2/(r*r*eps*eps), 1))/(r*th.Mu)
	}
	return th
}

// Why lists the reasons the theorems do not apply, empty when they all do.
func (t Theory) Why() []string {
	why := append([]string(nil), t.Constants.Why...)
	if t.Why2 != "" {
		why = append(why, t.Why2)
	}
	return why
}
