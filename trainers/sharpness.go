package trainers

import (
	"errors"

	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// metrics.csv's columns with --track-sharpness.
const (
	ColumnLambdaMax = "lambda_max"
	ColumnLambdaMin = "lambda_min"
)

// SharpnessColumns are the extra metrics a run tracking sharpness logs.
var SharpnessColumns = []string{ColumnLambdaMax, ColumnLambdaMin}

// sharpnessOptions: one Lanczos run gives both ends of the spectrum; at a log
// step 1e-8 relative residuals are plenty, and 100 steps bound the cost
// (100 products, O(nmd) each, and 100 vectors of m·d kept; fewer where
// those would pass 1 GiB, regularizers.DefaultLanczosSteps).
var sharpnessOptions = regularizers.LanczosOptions{MaxSteps: 100, Tol: 1e-8, Seed: 1}

// TrackSharpness makes MeasureState log λ_max and λ_min of D²L
// (SharpnessColumns), by Lanczos on the structured Hessian-vector product.
func (e *Evaluator) TrackSharpness() error {
	h, err := NewHessian(e.b, e.p)
	if err != nil {
		return err
	}
	e.sharp = h
	return nil
}

// Sharpness returns λ_max and λ_min of D²L at Θ by Lanczos (TrackSharpness
// must have been called). When 100 steps do not reach the tolerance it
// returns the Ritz values reached, which bound λ_max from below and λ_min
// from above.
func (e *Evaluator) Sharpness(theta *tensors.Tensor) (lmax, lmin float64, err error) {
	opt := sharpnessOptions
	opt.MaxSteps = min(opt.MaxSteps, regularizers.DefaultLanczosSteps(e.sharp.Dim(), 1))
	eig, err := e.sharp.Eigenvalues(theta, 1, opt)
	if err != nil && !errors.Is(err, regularizers.ErrLanczosNoConvergence) {
		return 0, 0, err
	}
	return eig.Top[0], eig.Min, nil
}
