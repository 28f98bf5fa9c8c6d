package regularizers

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/flatmin/flatmin/model"
)

// BlockHVP multiplies a symmetric operator by several vectors at once
// (one batched graph call rather than one per vector).
type BlockHVP func(vs [][]float64) ([][]float64, error)

// TraceEstimate is a stochastic estimate of a trace.
type TraceEstimate struct {
	Estimate float64
	// Stderr is the sample standard deviation of the estimate's random
	// quadratic forms over √(their number); for Hutch++ only the residual part
	// is random once the sketch is drawn, so it is that part's standard error,
	// conditional on the sketch (0 with a single residual probe).
	Stderr float64
	HVPs   int // products with the operator used
}

// removeAlong removes from v its component along the unit vector b: one
// step of classical Gram–Schmidt.
func removeAlong(v, b []float64) {
	c := model.HostDot(b, v)
	for t := range v {
		v[t] -= c * b[t]
	}
}

// rademacher draws a vector of dim fair ±1 entries from rng: the host
// estimators' probes (Hutchinson on an operator, Hutch++, SLQ).
func rademacher(rng *rand.Rand, dim int) []float64 {
	v := make([]float64, dim)
	for i := range v {
		v[i] = float64(2*int(rng.Uint64()&1) - 1)
	}
	return v
}

// HutchinsonHost is Hutchinson's estimate of Tr H, the mean of vᵀHv over
// `probes` Rademacher vectors, on the host from a block operator.
func HutchinsonHost(hvp BlockHVP, dim, probes int, seed uint64) (TraceEstimate, error) {
	if probes < 1 {
		return TraceEstimate{}, fmt.Errorf("Hutchinson needs at least one probe, got %d", probes)
	}
	rng := rand.New(rand.NewPCG(seed, 0x4a7c))
	g := make([][]float64, probes)
	for i := range g {
		g[i] = rademacher(rng, dim)
	}
	hg, err := hvp(g)
	if err != nil {
		return TraceEstimate{}, err
	}
	q := make([]float64, probes)
	for i := range g {
		q[i] = model.HostDot(g[i], hg[i])
	}
	mean, se := hostMeanAndStderr(q)
	return TraceEstimate{Estimate: mean, Stderr: se, HVPs: probes}, nil
}

// HutchPlusPlus estimates Tr H with `probes` ≥ 3 products by Hutch++ (Meyer,
// Musco, Musco, Woodruff 2021, Algorithm 1): with r = ⌊probes/3⌋ Rademacher
// vectors S and Q an orthonormal basis of HS, the trace is Tr(QᵀHQ) (exact on
// the dominant subspace) plus Hutchinson's estimate of the rest,
// (1/g) Σ_k gₖᵀ(I−QQᵀ)H(I−QQᵀ)gₖ over the other g = probes − 2r probes. Its
// error falls like 1/probes where Hutchinson's falls like 1/√probes when the
// spectrum decays. Columns of HS that are dependent to rounding (H of rank
// < r) are dropped from Q, which saves their products.
func HutchPlusPlus(hvp BlockHVP, dim, probes int, seed uint64) (TraceEstimate, error) {
	if probes < 3 {
		return TraceEstimate{}, fmt.Errorf("Hutch++ needs at least 3 probes, got %d", probes)
	}
	rng := rand.New(rand.NewPCG(seed, 0x4a7d))
	r := probes / 3
	ng := probes - 2*r
	s := make([][]float64, r)
	for i := range s {
		s[i] = rademacher(rng, dim)
	}
	g := make([][]float64, ng)
	for i := range g {
		g[i] = rademacher(rng, dim)
	}
	hs, err := hvp(s)
	if err != nil {
		return TraceEstimate{}, err
	}
	q := orthonormalBasis(hs)
	est := 0.0
	used := r
	if len(q) > 0 {
		hq, err := hvp(q)
		if err != nil {
			return TraceEstimate{}, err
		}
		used += len(q)
		for i := range q {
			est += model.HostDot(q[i], hq[i])
		}
	}
	// Residual probes (I − QQᵀ)g; their quadratic forms with H.
	for _, v := range g {
		for _, b := range q {
			removeAlong(v, b)
		}
	}
	hg, err := hvp(g)
	if err != nil {
		return TraceEstimate{}, err
	}
	used += ng
	quad := make([]float64, ng)
	for i := range g {
		quad[i] = model.HostDot(g[i], hg[i])
	}
	mean, se := hostMeanAndStderr(quad)
	return TraceEstimate{Estimate: est + mean, Stderr: se, HVPs: used}, nil
}

// orthonormalBasis returns an orthonormal basis of the span of cols by
// Gram–Schmidt, twice, dropping columns whose remainder is below 1e-12 of
// the largest column's norm (rank deficiency to rounding).
func orthonormalBasis(cols [][]float64) [][]float64 {
	big := 0.0
	for _, c := range cols {
		big = math.Max(big, math.Sqrt(model.HostDot(c, c)))
	}
	var q [][]float64
	for _, c := range cols {
		v := append([]float64(nil), c...)
		for range 2 {
			for _, b := range q {
				removeAlong(v, b)
			}
		}
		n := math.Sqrt(model.HostDot(v, v))
		if n <= 1e-12*big || n == 0 {
			continue
		}
		for t := range v {
			v[t] /= n
		}
		q = append(q, v)
	}
	return q
}
