package trainers

import (
	"errors"
	"fmt"

	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Hessian gives the loss Hessian's products at any Θ of one problem, by the
// network's structured product (regularizers.NetHessianVectorProduct, O(nmd)
// a vector). Its graphs are compiled once; at one Θ the forward's
// coefficients are computed once for all products.
type Hessian struct {
	b     backends.Backend
	p     *model.Problem
	coefs *Exec // Θ → A, C (regularizers.NetHessianCoefficients)
	hvp   *Exec // (A, C, V [m, d] or [K, m, d]) → H V; Exec caches by shape
}

// NewHessian compiles the Hessian-vector product for p.
func NewHessian(b backends.Backend, p *model.Problem) (*Hessian, error) {
	coefs, err := compile(b, func(th *Node) []*Node {
		a, c := regularizers.NetHessianCoefficients(model.NewNet(th.Graph(), p).Forward(th))
		return []*Node{a, c}
	})
	if err != nil {
		return nil, err
	}
	hvp, err := compile(b, func(a, c, v *Node) *Node {
		return regularizers.NetHessianVectorProductFrom(model.NewNet(v.Graph(), p), a, c, v)
	})
	if err != nil {
		return nil, err
	}
	return &Hessian{b: b, p: p, coefs: coefs, hvp: hvp}, nil
}

// Dim is the Hessian's dimension m·d.
func (h *Hessian) Dim() int { return h.p.M * h.p.D }

// at returns the coefficients at Θ, computed on first use.
func (h *Hessian) at(theta *tensors.Tensor) func() ([]*tensors.Tensor, error) {
	var coefs []*tensors.Tensor
	return func() ([]*tensors.Tensor, error) {
		if coefs == nil {
			out, err := run(h.coefs, theta)
			if err != nil {
				return nil, err
			}
			coefs = out
		}
		return coefs, nil
	}
}

// At returns v ↦ (D²L) v at Θ.
func (h *Hessian) At(theta *tensors.Tensor) regularizers.HVP {
	p := h.p
	coefs := h.at(theta)
	return func(v []float64) ([]float64, error) {
		c, err := coefs()
		if err != nil {
			return nil, err
		}
		out, err := run(h.hvp, c[0], c[1], tensors.FromFlatDataAndDimensions(v, p.M, p.D))
		if err != nil {
			return nil, err
		}
		return tensors.MustCopyFlatData[float64](out[0]), nil
	}
}

// BlockAt returns the product with several vectors at once, in one call.
func (h *Hessian) BlockAt(theta *tensors.Tensor) regularizers.BlockHVP {
	p := h.p
	dim := h.Dim()
	coefs := h.at(theta)
	return func(vs [][]float64) ([][]float64, error) {
		k := len(vs)
		if k == 0 {
			return nil, nil
		}
		c, err := coefs()
		if err != nil {
			return nil, err
		}
		flat := make([]float64, 0, k*dim)
		for _, v := range vs {
			flat = append(flat, v...)
		}
		out, err := run(h.hvp, c[0], c[1], tensors.FromFlatDataAndDimensions(flat, k, p.M, p.D))
		if err != nil {
			return nil, err
		}
		all := tensors.MustCopyFlatData[float64](out[0])
		res := make([][]float64, k)
		for i := range res {
			res[i] = all[i*dim : (i+1)*dim]
		}
		return res, nil
	}
}

// Eigenvalues returns the k largest eigenvalues (descending) and the smallest
// eigenvalue of the loss Hessian at Θ by Lanczos (regularizers.LanczosEigen).
// When Lanczos stops short of its tolerance the estimates come back with an
// error wrapping regularizers.ErrLanczosNoConvergence.
func (h *Hessian) Eigenvalues(theta *tensors.Tensor, k int, opt regularizers.LanczosOptions) (regularizers.Eigen, error) {
	return regularizers.LanczosEigen(h.At(theta), h.Dim(), k, opt)
}

// EigenReport is what `flatmin inspect --top-k` adds.
type EigenReport struct {
	Top       []float64
	Min       float64
	Steps     int
	Converged bool
}

// TopEigenvalues is Hessian.Eigenvalues for one Θ, compiling its own Hessian.
func TopEigenvalues(b backends.Backend, p *model.Problem, theta *tensors.Tensor, k int) (*EigenReport, error) {
	h, err := NewHessian(b, p)
	if err != nil {
		return nil, err
	}
	e, err := h.Eigenvalues(theta, k, regularizers.LanczosOptions{})
	if err != nil && !errors.Is(err, regularizers.ErrLanczosNoConvergence) {
		return nil, err
	}
	return &EigenReport{Top: e.Top, Min: e.Min, Steps: e.Steps, Converged: e.Converged}, nil
}

// DensityReport is the JSON object "spectral_density".
type DensityReport struct {
	Grid         []float64 `json:"grid"`
	Density      []float64 `json:"density"`
	Method       string    `json:"method"`
	Probes       int       `json:"probes"`
	LanczosSteps int       `json:"lanczos_steps"`
	Sigma        float64   `json:"sigma"`
	Dimension    int       `json:"dimension"` // N = m·d, the number of eigenvalues
}

// SpectralDensity estimates the loss Hessian's spectral density at Θ by SLQ
// (regularizers.SpectralDensity; sigma 0 picks 1% of the Ritz values' range).
func SpectralDensity(b backends.Backend, p *model.Problem, theta *tensors.Tensor, probes, steps int, sigma float64, seed uint64) (*DensityReport, error) {
	h, err := NewHessian(b, p)
	if err != nil {
		return nil, err
	}
	d, err := regularizers.SpectralDensity(h.At(theta), h.Dim(), regularizers.DensityOptions{
		Probes: probes, Steps: steps, Sigma: sigma, Seed: seed})
	if err != nil {
		return nil, err
	}
	return &DensityReport{Grid: d.Grid, Density: d.Density, Method: "slq", Probes: probes,
		LanczosSteps: steps, Sigma: d.Sigma, Dimension: h.Dim()}, nil
}

// Trace estimators' names (--trace-estimator).
const (
	EstimatorHutchinson = "hutchinson"
	EstimatorHutchPP    = "hutchpp"
)

// HutchPlusPlus estimates Tr D²L at Θ by Hutch++ with `probes` (≥ 3)
// Hessian-vector products (regularizers.HutchPlusPlus, on the structured product).
func HutchPlusPlus(b backends.Backend, p *model.Problem, theta *tensors.Tensor, probes int, seed uint64) (*HutchinsonReport, error) {
	h, err := NewHessian(b, p)
	if err != nil {
		return nil, err
	}
	e, err := regularizers.HutchPlusPlus(h.BlockAt(theta), h.Dim(), probes, seed)
	if err != nil {
		return nil, fmt.Errorf("Hutch++: %w", err)
	}
	return &HutchinsonReport{Estimate: e.Estimate, Stderr: e.Stderr, Probes: probes, Method: EstimatorHutchPP,
		StderrMethod: "standard error of the residual part only, conditional on the sketch: sample standard deviation of its probes' quadratic forms over √(their number)"}, nil
}
