package regularizers

import (
	"fmt"
	"math"

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

// TheoryGap returns max_ij |z_ij − z*_i| for Z given as n×m row-major, NaN when the optimum is undefined.
func (o Optimum) TheoryGap(z []float64, n, m int) float64 {
	if !o.OK {
		return math.NaN()
	}
	gap := 0.0
	for i := range n {
		for j := range m {
			gap = math.Max(gap, math.Abs(z[i*m+j]-o.Z[i]))
		}
	}
	return gap
}
