package model

import (
	"fmt"
	"math"
)

// Problem is everything the loss depends on except Θ: data, labels, the fixed
// second-layer weights and the activation. Arrays are float64, row-major.
type Problem struct {
	X       []float64 // n×d, row i is x_i
	Y       []float64 // n labels
	W       []float64 // m second-layer weights (fixed, not trained)
	N, D, M int
	Act     Activation
}

// NewProblem checks and assembles a problem; w == nil means all ones.
func NewProblem(x []float64, n, d int, y []float64, w []float64, m int, act Activation) (*Problem, error) {
	if w == nil && m > 0 {
		w = make([]float64, m)
		for j := range w {
			w[j] = 1
		}
	}
	p := &Problem{X: x, Y: y, W: w, N: n, D: d, M: m, Act: act}
	return p, p.Validate()
}

// Validate reports the first thing wrong with the problem: sizes, shapes,
// non-finite values, or a row of X with zero norm (its output ignores Θ).
func (p *Problem) Validate() error {
	switch {
	case p.N <= 0:
		return fmt.Errorf("need at least one data point, got n = %d", p.N)
	case p.D <= 0:
		return fmt.Errorf("input dimension d must be positive, got %d", p.D)
	case p.M <= 0:
		return fmt.Errorf("number of neurons m must be positive, got %d", p.M)
	case p.Act == nil:
		return fmt.Errorf("no activation given")
	case len(p.X) != p.N*p.D:
		return fmt.Errorf("X has %d values, want n×d = %d×%d", len(p.X), p.N, p.D)
	case len(p.Y) != p.N:
		return fmt.Errorf("y has %d labels but X has %d rows", len(p.Y), p.N)
	case len(p.W) != p.M:
		return fmt.Errorf("w has %d entries but m = %d", len(p.W), p.M)
	}
	for i := range p.N {
		norm := 0.0
		for k := range p.D {
			v := p.X[i*p.D+k]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("X row %d column %d is %v", i, k, v)
			}
			norm += v * v
		}
		if norm == 0 {
			return fmt.Errorf("X row %d has zero norm: its output does not depend on Θ", i)
		}
		if math.IsInf(norm, 0) {
			return fmt.Errorf("X row %d is too large: its squared norm overflows", i)
		}
	}
	if err := CheckFinite("y", p.Y); err != nil {
		return err
	}
	return CheckFinite("w", p.W)
}

// CheckFinite returns an error naming the first NaN or Inf entry of values.
func CheckFinite(what string, values []float64) error {
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%s entry %d is %v", what, i, v)
		}
	}
	return nil
}

// UnitWeights reports whether w is all ones, the setting of the paper's theorems.
func (p *Problem) UnitWeights() bool {
	for _, v := range p.W {
		if v != 1 {
			return false
		}
	}
	return true
}

// RowNormSq returns ‖x_i‖² for each row.
func (p *Problem) RowNormSq() []float64 {
	out := make([]float64, p.N)
	for i := range p.N {
		for k := range p.D {
			v := p.X[i*p.D+k]
			out[i] += v * v
		}
	}
	return out
}

// CheckTheta returns an error if theta is not an m×d array of finite values.
func (p *Problem) CheckTheta(theta []float64) error {
	if len(theta) != p.M*p.D {
		return fmt.Errorf("Θ has %d values, want m×d = %d×%d", len(theta), p.M, p.D)
	}
	return CheckFinite("Θ", theta)
}

// Gram returns X Xᵀ (n×n, row-major): x_i·x_k.
func (p *Problem) Gram() []float64 {
	g := make([]float64, p.N*p.N)
	for i := range p.N {
		for k := range p.N {
			for c := range p.D {
				g[i*p.N+k] += p.X[i*p.D+c] * p.X[k*p.D+c]
			}
		}
	}
	return g
}

// XT returns Xᵀ [d, n], a new copy.
func (p *Problem) XT() []float64 {
	xt := make([]float64, p.D*p.N)
	for i := range p.N {
		for c := range p.D {
			xt[c*p.N+i] = p.X[i*p.D+c]
		}
	}
	return xt
}
