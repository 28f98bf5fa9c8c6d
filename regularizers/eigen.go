package regularizers

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// HessianVectorProduct returns H v for H = ∇²loss(params), by a second reverse
// pass through the gradient: ∇⟨∇loss, v⟩.
func HessianVectorProduct(loss func(params *Node) *Node, params, v *Node) *Node {
	g := Gradient(loss(params), params)[0]
	return Gradient(ReduceAllSum(Mul(g, v)), params)[0]
}

// PowerOptions control TopEigenvalue.
type PowerOptions struct {
	MaxIters int     // per power iteration (default 20000)
	Tol      float64 // stop when ‖Hv − λv‖ ≤ Tol·|λ| (default 1e-10)
	Seed     uint64  // of the start vector
}

// ErrNoConvergence is returned when power iteration hits MaxIters.
var ErrNoConvergence = errors.New("power iteration did not converge")

// TopEigenvalue returns the largest (algebraic) eigenvalue of a symmetric
// operator given by its products hvp(v) = H v, by power iteration. Power
// iteration finds the eigenvalue of largest magnitude; if that is negative,
// a second run on H − λI (whose top eigenvalue is λ_max − λ) finds λ_max.
func TopEigenvalue(hvp func(v []float64) ([]float64, error), dim int, opt PowerOptions) (float64, error) {
	if opt.MaxIters <= 0 {
		opt.MaxIters = 20000
	}
	if opt.Tol <= 0 {
		opt.Tol = 1e-10
	}
	lambda, err := power(hvp, dim, 0, opt)
	if err != nil || lambda >= 0 {
		return lambda, err
	}
	top, err := power(hvp, dim, lambda, opt)
	return top + lambda, err
}

// power runs power iteration on H − shift·I and returns its dominant eigenvalue.
func power(hvp func([]float64) ([]float64, error), dim int, shift float64, opt PowerOptions) (float64, error) {
	rng := rand.New(rand.NewPCG(opt.Seed, 0xe16e))
	v := make([]float64, dim)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	normalize(v)
	lambda := 0.0
	for it := 0; it < opt.MaxIters; it++ {
		w, err := hvp(v)
		if err != nil {
			return math.NaN(), err
		}
		if len(w) != dim {
			return math.NaN(), fmt.Errorf("Hessian-vector product has %d entries, want %d", len(w), dim)
		}
		for i := range w {
			w[i] -= shift * v[i]
		}
		lambda = model.HostDot(v, w)
		res := 0.0
		for i := range w {
			d := w[i] - lambda*v[i]
			res += d * d
		}
		if math.IsNaN(lambda) || math.IsInf(lambda, 0) {
			return math.NaN(), fmt.Errorf("power iteration: eigenvalue estimate is %v", lambda)
		}
		if math.Sqrt(res) <= opt.Tol*math.Abs(lambda) || model.HostDot(w, w) == 0 {
			return lambda, nil
		}
		copy(v, w)
		normalize(v)
	}
	return lambda, fmt.Errorf("%w in %d iterations (estimate %g)", ErrNoConvergence, opt.MaxIters, lambda)
}

func normalize(v []float64) {
	n := math.Sqrt(model.HostDot(v, v))
	if n == 0 {
		return
	}
	for i := range v {
		v[i] /= n
	}
}
