package trainers

import (
	"fmt"
	"math"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("gd", newGD)
	register("labelnoise", newLabelNoise)
}

// newGD is plain gradient descent on L: Θ ← Θ − η ∇L.
func newGD(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	return newFused(b, p, cfg, rule{name: "gd", step: noisyGDStep(cfg.Eta, 0)})
}

// newLabelNoise is label-noise SGD: Θ ← Θ − η ∇ Σ_i (f_i − y_i + ζ_i)², with
// fresh ζ_i ~ N(0, σ²) every step drawn in the graph from the RNG state.
func newLabelNoise(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if !(cfg.Sigma >= 0) || math.IsInf(cfg.Sigma, 0) {
		return nil, fmt.Errorf("--sigma must be ≥ 0 and finite, got %v", cfg.Sigma)
	}
	return newFused(b, p, cfg, rule{
		name: "labelnoise",
		draw: func(rng *Node, c int, bulk bool) (*Node, []*Node) { return drawNormal(rng, c, bulk, p.N) },
		step: noisyGDStep(cfg.Eta, cfg.Sigma),
	})
}

// noisyGDStep is Θ ← Θ − η 2Jᵀ(r + σζ) (ζ nil: GD). With noise and σ = 0
// the draw still happens, so that path can be checked against GD.
func noisyGDStep(eta, sigma float64) func(sp space, net *model.Net, params, z0, zeta *Node) (*Node, *Node) {
	return func(sp space, net *model.Net, params, z0, zeta *Node) (*Node, *Node) {
		fw := sp.forward(net, params, z0)
		r := fw.R
		loss := fw.Loss()
		if zeta != nil {
			r = Add(r, MulScalar(zeta, sigma))
		}
		// ∇ Σ (r_i + ζ_i)² = 2 Jᵀ (r + ζ); η is folded into the n-vector.
		coef := fw.Coef(MulScalar(r, 2*eta))
		return sp.move(params, sp.direction(fw, coef), 1), loss
	}
}
