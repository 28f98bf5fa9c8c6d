package regularizers

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// DensityOptions control SpectralDensity.
type DensityOptions struct {
	Probes int     // random start vectors V (≥ 1)
	Steps  int     // Lanczos steps S per probe (≥ 1; at most dim are taken)
	Sigma  float64 // Gaussian width; 0: 1% of the range of the Ritz values
	Grid   int     // grid points (default 1000)
	Seed   uint64  // of the probes
}

// Density is a spectral density estimated by stochastic Lanczos quadrature.
type Density struct {
	Grid    []float64 // equally spaced
	Density []float64 // on Grid; its trapezoid integral over Grid is 1
	Sigma   float64
	Probes  int
	Steps   int // Lanczos steps asked for (a probe stops early on breakdown)
	// Nodes[v] and Weights[v] are probe v's quadrature rule: the Ritz values
	// θ_i of its T and the squared first components τ_i of T's eigenvectors
	// (Σ_i τ_i = 1), so Σ_i τ_i g(θ_i) ≈ vᵀg(H)v/‖v‖², exactly for polynomials
	// g of degree < 2S.
	Nodes, Weights [][]float64
}

// Moment returns the quadrature's estimate of Tr Hᵖ/N, the mean over the
// probes of Σ_i τ_i θ_iᵖ (for p < 2S exactly the mean of vᵀHᵖv/‖v‖²).
func (d *Density) Moment(p int) float64 {
	s := 0.0
	for v := range d.Nodes {
		for i, t := range d.Nodes[v] {
			s += d.Weights[v][i] * math.Pow(t, float64(p))
		}
	}
	return s / float64(len(d.Nodes))
}

// SpectralDensity estimates the spectral density of the symmetric operator
// hvp, (1/N) Σ_k δ(t − λ_k) smoothed by a Gaussian of width Sigma, by
// stochastic Lanczos quadrature: for each of V Rademacher probes v, S Lanczos
// steps from v give T = QᵀHQ; with T = U diag(θ) Uᵀ, the weights are the
// squared first components τ_i = U_{1i}² (not the eigenvectors' other
// entries), and the density is (1/V) Σ_v Σ_i τ_i g_σ(t − θ_i).
func SpectralDensity(hvp HVP, dim int, opt DensityOptions) (*Density, error) {
	if opt.Probes < 1 || opt.Steps < 1 || opt.Sigma < 0 || math.IsNaN(opt.Sigma) {
		return nil, fmt.Errorf("spectral density: need probes ≥ 1, steps ≥ 1, sigma ≥ 0 (got %d, %d, %g)", opt.Probes, opt.Steps, opt.Sigma)
	}
	if opt.Grid < 2 {
		opt.Grid = 1000
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x51c))
	d := &Density{Probes: opt.Probes, Steps: opt.Steps}
	for range opt.Probes {
		nodes, weights, err := quadrature(hvp, rademacher(rng, dim), opt.Steps, rng)
		if err != nil {
			return nil, err
		}
		d.Nodes = append(d.Nodes, nodes)
		d.Weights = append(d.Weights, weights)
	}
	d.smooth(opt.Sigma, opt.Grid)
	return d, nil
}

// quadrature runs up to steps Lanczos steps from v and returns the Gauss
// quadrature rule of vᵀg(H)v/‖v‖²: T's eigenvalues and the squares of its
// eigenvectors' first components.
func quadrature(hvp HVP, v []float64, steps int, rng *rand.Rand) (nodes, weights []float64, err error) {
	l := newLanczos(hvp, v, false, rng, steps)
	for range min(steps, len(v)) {
		if err := l.step(); err != nil {
			return nil, nil, err
		}
	}
	vals, vecs, err := l.ritz()
	if err != nil {
		return nil, nil, err
	}
	weights = make([]float64, len(vals))
	for i := range vals {
		u := vecs.At(0, i)
		weights[i] = u * u
	}
	return vals, weights, nil
}

// smooth places the Gaussians on an equally spaced grid (at least `points`
// points) from the smallest node less 5σ to the largest plus 5σ and
// normalizes the trapezoid integral to 1.
func (d *Density) smooth(sigma float64, points int) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, ns := range d.Nodes {
		for _, t := range ns {
			lo, hi = math.Min(lo, t), math.Max(hi, t)
		}
	}
	if sigma == 0 {
		sigma = 0.01 * (hi - lo)
		if sigma == 0 {
			sigma = 0.01 * math.Max(math.Abs(hi), 1)
		}
	}
	d.Sigma = sigma
	lo, hi = lo-5*sigma, hi+5*sigma
	// At least 4 points per σ, so that a narrow width is resolved.
	points = max(points, min(100001, int(math.Ceil(4*(hi-lo)/sigma))+1))
	h := (hi - lo) / float64(points-1)
	d.Grid = make([]float64, points)
	d.Density = make([]float64, points)
	c := 1 / (sigma * math.Sqrt(2*math.Pi) * float64(len(d.Nodes)))
	for g := range d.Grid {
		t := lo + float64(g)*h
		d.Grid[g] = t
		s := 0.0
		for v, ns := range d.Nodes {
			for i, x := range ns {
				u := (t - x) / sigma
				s += d.Weights[v][i] * math.Exp(-0.5*u*u)
			}
		}
		d.Density[g] = c * s
	}
	integral := 0.0
	for g := 1; g < points; g++ {
		integral += 0.5 * h * (d.Density[g-1] + d.Density[g])
	}
	if integral > 0 {
		for g := range d.Density {
			d.Density[g] /= integral
		}
	}
}
