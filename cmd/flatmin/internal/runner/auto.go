package runner

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/flatmin/flatmin/trainers"
)

// Auto is the value of --eta and --init-scale that asks flatmin to choose.
const Auto = "auto"

// Names of the rules that choose η and the initial scale, as summary.json's
// config records them beside the numbers chosen.
const (
	RuleEtaCurvature = "auto: min(1/λ*, 1.9/λ̂₀): half the stability limit 2/λ* of gradient descent at the predicted optimum (λ* = λ_max(D²L) there), where the run spends its time, and 95% of it at Θ₀ (λ̂₀ a bound on ‖D²L‖ there), whose curvature the run leaves behind"
	RuleEtaFlow      = "auto: 1, the Riemannian safeguard's largest step (it halves η until a step decreases the Lagrangian of Tr D²L enough, and lets it regrow)"
	RuleRhoOutputs   = "auto: ρ = rms(y) / (8 rms_i ‖∇f_i‖) at Θ₀, so that the perturbation moves an example's output by about 1/8 of the labels' scale (0.047 on Figure 1a's data, whose paper value is 0.05); ‖∇f_i‖ grows like √m"
	RuleInitOutputs  = "auto: the scale at which the initial outputs' mean square equals the labels' (mean E f_i² = mean y_i²)"
	RuleInitDefault  = "auto: labels all zero, nothing to match; the paper's 0.5"
)

// AutoEta chooses the step size for trainer on problem p from Θ₀ (m×d):
// 1 for riemannian (RuleEtaFlow), else min(1/λ*, 1.9/λ̂₀) (RuleEtaCurvature),
// where λ̂₀ is regularizers.LossHessianNormBound at Θ₀ (the curvature a run
// meets at its start, bounded from above) and λ* is
// regularizers.SharpnessAtOptimum where the theory predicts the optimum
// (w = 1, n ≤ d): the curvature where it is headed. For the cube at large m
// both grow like m, which is why a fixed η diverges on wide networks. It
// also returns the two curvatures (NaN where not used).
func AutoEta(trainer string, p *model.Problem, theta0 []float64) (eta float64, rule string, atStart, atOptimum float64) {
	if strings.EqualFold(trainer, "riemannian") {
		return 1, RuleEtaFlow, math.NaN(), math.NaN()
	}
	atStart = CurvatureBound(p, theta0)
	atOptimum = math.NaN()
	eta = startFraction / atStart
	if opt := regularizers.PredictOptimum(p); opt.OK && p.N <= p.D {
		atOptimum = regularizers.SharpnessAtOptimum(p, opt)
		eta = min(eta, 1/atOptimum)
	}
	if !(eta > 0) || math.IsInf(eta, 0) {
		return trainers.DefaultConfig().Eta, fmt.Sprintf("auto: no curvature to go by (λ̂₀ = %g, λ* = %g); the paper's 0.05", atStart, atOptimum), atStart, atOptimum
	}
	return eta, RuleEtaCurvature, atStart, atOptimum
}

// AutoRho chooses 1-SAM's radius from Θ₀ (RuleRhoOutputs): to first order
// the perturbation ρ g/‖g‖ of example i moves f_i by ρ‖∇f_i‖, which grows
// like √m at a fixed ρ; at the paper's ρ = 0.05 and m = 10 it is about 1/8
// of the labels' scale, and this keeps it there at any width. SAM (sam)
// takes the same ρ: its one perturbation ρu moves the outputs by ρJu, whose
// rms is at most ρ rms_i ‖∇f_i‖ since ‖Ju‖² ≤ Tr JJᵀ.
func AutoRho(p *model.Problem, theta0 []float64) (float64, string) {
	g2, y2 := 0.0, 0.0
	if p.M*max(p.N, p.D) > autoBlockAbove {
		g2 = gradNormSqBlocks(p, theta0)
	} else {
		fw := model.NewHostNet(p).Forward(featuresOf(p, theta0))
		jjt := fw.JJT() // (J Jᵀ)_ii = ‖∇f_i‖²
		for i := range p.N {
			g2 += jjt[i*p.N+i]
		}
	}
	for i := range p.N {
		y2 += p.Y[i] * p.Y[i]
	}
	if !(g2 > 0 && y2 > 0) || math.IsInf(g2, 0) {
		return trainers.DefaultConfig().Rho, "auto: no gradient or labels to go by; the paper's 0.05"
	}
	return math.Sqrt(y2/g2) / 8, RuleRhoOutputs
}

// autoBlockAbove is the size (m·max(n, d)) above which AutoRho works in
// blocks of neurons: whole, it held Zᵀ and A [m, n] (2×Θ at n = d).
const autoBlockAbove = 1 << 20

// autoBlockRows is the rows of a block of neurons in the automatic rules.
const autoBlockRows = 4096

// gradNormSqBlocks returns Σ_i ‖∇f_i‖² = Σ_i ‖x_i‖² Σ_j A_ji² at Θ (m×d),
// the trace of J Jᵀ, a block of 4096 neurons at a time: half the manifold
// form of Tr D²L (docs/MATH.md §3.2), whose host home is
// regularizers.TraceHost.
func gradNormSqBlocks(p *model.Problem, theta []float64) float64 {
	const block = autoBlockRows
	tr := regularizers.NewTraceHost(model.NewHostNet(p), nil)
	a, zb := make([]float64, block*p.N), make([]float64, block*p.N)
	xt := p.XT()
	for lo := 0; lo < p.M; lo += block {
		hi := min(lo+block, p.M)
		z := zb[:(hi-lo)*p.N]
		model.HostFeatures(p, xt, theta[lo*p.D:hi*p.D], z, p.D) // in loops: no allocation
		ab := a[:len(z)]
		model.HostA(p.Act, p.W[lo:hi], z, ab)
		tr.Add(regularizers.TraceBlock{Lo: lo, Z: z, A: ab})
	}
	return tr.TraceManifold() / 2
}

// startFraction times 2/λ̂₀ is the largest η AutoEta takes at Θ₀: close to
// the limit, since λ̂₀ bounds ‖D²L‖ from above (by 15–35% in our checks) and
// the curvature falls as the loss does.
const startFraction = 1.9

// CurvatureBound is regularizers.LossHessianNormBound at Θ (m×d, row-major);
// above autoBlockAbove values, its blockwise form, which holds no m×n array
// (whole, Zᵀ and its companions took 4.7×Θ at m = 2·10⁶, n = d = 3).
func CurvatureBound(p *model.Problem, theta []float64) float64 {
	if p.M*max(p.N, p.D) > autoBlockAbove {
		xt := p.XT()
		return regularizers.LossHessianNormBoundBlocks(p, func(lo, hi int, buf []float64) []float64 {
			z := buf[:(hi-lo)*p.N]
			model.HostFeatures(p, xt, theta[lo*p.D:hi*p.D], z, p.D)
			return z
		}, autoBlockRows)
	}
	return regularizers.LossHessianNormBound(model.NewHostNet(p).Forward(featuresOf(p, theta)))
}

// StableEta returns the step size --eta auto would choose for the run in
// dir (from its theta0.npy), for a diverged run's advice: the curvature at
// the state where it diverged is that of a blown-up Θ, no guide to a step
// that avoids getting there. 0 when Θ₀ cannot be read.
func StableEta(p *model.Problem, trainer, dir string) float64 {
	theta0, rows, cols, err := model.ReadMatrix(filepath.Join(dir, Theta0File), Theta0File)
	if err != nil || rows != p.M || cols != p.D {
		return 0
	}
	eta, _, _, _ := AutoEta(trainer, p, theta0)
	return eta
}

// featuresOf returns Zᵀ = Θ Xᵀ [m, n] for Θ [m, d] (model.HostFeatures).
func featuresOf(p *model.Problem, theta []float64) []float64 {
	zt := make([]float64, p.M*p.N)
	model.HostFeatures(p, nil, theta, zt, -1)
	return zt
}

// resolveInitScale chooses the initial scale when it is automatic (c.InitScaleRule == Auto).
func (c *Config) resolveInitScale(p *model.Problem) {
	if c.InitScaleRule != Auto {
		return
	}
	if s, ok := model.AutoInitScale(p); ok {
		c.InitScale, c.InitScaleRule = s, RuleInitOutputs
	} else {
		c.InitScale, c.InitScaleRule = 0.5, RuleInitDefault
	}
}
