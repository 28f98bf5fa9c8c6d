package bench

import (
	"math"

	"github.com/flatmin/flatmin/trainers"
)

// Flop counts of one step as flatmin performs it: an estimate, good enough to
// compare work across sizes, engines and backends. A multiply-add is 2 flops;
// an elementwise op on an n×m array is nm flops (φ and φ' of the cubic a few
// each); vectors of length n or m, RNG draws and constants folded at compile
// time (the Gram matrix G = XXᵀ) are left out.
//
// The two engines (trainers/engine.go) differ in what the compiled graphs
// carry, Θ [m,d] or the features Zᵀ = ΘXᵀ [m,n], and so in what moves cost:
//
//	                        Θ engine      feature engine (G = XXᵀ)
//	forward Z               XΘᵀ: 2nmd     Z itself: 0
//	direction Σ_i b_ij x_i  bᵀX: 2nmd     b itself: 0
//	moving by a direction   2md           Zᵀ − sVG: 2n²m + 2nm
//	J v, ‖v‖²               2nmd, 2md     2n²m, 2n²m
type costs struct {
	forward, direction, move, jv, normSq float64
}

func engineCosts(engine string, s Size) costs {
	m, d, n := float64(s.M), float64(s.D), float64(s.N)
	if engine == trainers.EngineFeature {
		return costs{forward: 0, direction: 0, move: 2*n*n*m + 2*n*m, jv: 2 * n * n * m, normSq: 2 * n * n * m}
	}
	return costs{forward: 2 * n * m * d, direction: 2 * n * m * d, move: 2 * m * d, jv: 2 * n * m * d, normSq: 2 * m * d}
}

// LabelNoiseFlops is one label-noise SGD step: the forward, the gradient's
// direction, about 10 nm elementwise (φ(Z), the sums, φ'(Z), A∘(r+ζ)) and
// the move. Θ engine: 4nmd + 10nm + 2md; feature engine: 2n²m + 12nm. Fused
// steps (trainers.Config.Fuse) do the same work per step.
func LabelNoiseFlops(engine string, s Size) float64 {
	c := engineCosts(engine, s)
	nm := float64(s.N) * float64(s.M)
	return c.forward + c.direction + 10*nm + c.move
}

// riemannianRetractions is the number of Gauss–Newton corrections a typical
// Riemannian step makes after its move: one or two to reach the tolerance and
// the polishing one (trainers/riemannian.go, retract and polish).
const riemannianRetractions = 3

// RiemannianFlops is one accepted step of the Riemannian flow without halvings
// (trainers/riemannian.go and tangent.go), with JJᵀ = G∘(AAᵀ) costing 2n²m
// and each n×n Cholesky solve on the host n³/3 + 2n²:
//
//   - ∇F and the tangent data at the new point: forward, ∇F's closed form
//     (~30 nm) and its direction, J∇F, JJᵀ;
//   - the projection P∇F = ∇F − Jᵀc and its norm: forward, direction, ‖·‖²,
//     ~10 nm;
//   - the move along P∇F;
//   - the retraction's first residual and JJᵀ: forward, JJᵀ, ~8 nm;
//   - each of R = 3 corrections Θ − Jᵀδ: forward, direction, move, forward at
//     the new point and its JJᵀ, ~15 nm;
//   - R+1 solves (the projection's and the corrections').
//
// Θ engine, (1000,64,32): about 75 MFLOP.
func RiemannianFlops(engine string, s Size) float64 {
	c := engineCosts(engine, s)
	m, n := float64(s.M), float64(s.N)
	r := float64(riemannianRetractions)
	jjt := 2 * n * n * m
	gradF := c.forward + 30*n*m + c.direction + c.jv + jjt
	project := c.forward + c.direction + c.normSq + 10*n*m
	residual := c.forward + jjt + 8*n*m
	correct := 2*c.forward + c.direction + c.move + jjt + 15*n*m
	solve := n*n*n/3 + 2*n*n
	return gradF + project + c.move + residual + r*correct + (r+1)*solve
}

// HutchinsonFlops is one estimate with K probes (regularizers.
// HutchinsonTraceHessian): the forward once (2nmd + ~10nm for Z, φ′, φ″, r
// and the curvature coefficients), then per probe P = V Xᵀ (2nmd), P² and
// its two contractions over the neurons (5nm); unpacking the probes' random
// bits is not counted: K(2nmd + 5nm) + 2nmd + 10nm.
func HutchinsonFlops(probes int, s Size) float64 {
	m, d, n := float64(s.M), float64(s.D), float64(s.N)
	return float64(probes)*(2*n*m*d+5*n*m) + 2*n*m*d + 10*n*m
}

// LanczosFlops is one Lanczos run (S = min(LanczosSteps, N) steps, N = md)
// on the network's structured Hessian-vector product: the forward's
// coefficients once (2nmd + ~10nm), per step the product (P = V Xᵀ and the
// contraction with X, 4nmd, ~8nm) and one pass of reorthogonalization
// against the j vectors so far (two matrix–vector products, 4Nj):
// S(4nmd + 8nm) + 2nmd + 10nm + 2N·S(S+1). Second passes (rare) and T's
// eigen-decompositions (O(S³) every 5 steps) are not counted.
func LanczosFlops(s Size) float64 {
	m, d, n := float64(s.M), float64(s.D), float64(s.N)
	steps := math.Min(LanczosSteps, m*d)
	return steps*(4*n*m*d+8*n*m) + 2*n*m*d + 10*n*m + 2*m*d*steps*(steps+1)
}

// StepFlops is the flop count of one step of a row's work with the engine in
// force: fig1a's is a label-noise step on Figure 1a, tts's a Riemannian step.
func StepFlops(work, engine string, s Size, probes int) float64 {
	switch work {
	case LabelNoise, Fig1a:
		return LabelNoiseFlops(engine, s)
	case Riemannian, TTS:
		return RiemannianFlops(engine, s)
	case Hutchinson:
		return HutchinsonFlops(probes, s)
	case Lanczos:
		return LanczosFlops(s)
	}
	return nan()
}
