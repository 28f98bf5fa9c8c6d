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
	return newFused(b, p, cfg, rule{name: "gd", step: noisyGDStep(cfg.Eta)})
}

// newLabelNoise is label-noise SGD: Θ ← Θ − η ∇ Σ_i (f_i − y_i + ζ_i)², with
// fresh ζ_i ~ N(0, σ²) every step drawn in the graph from the RNG state.
func newLabelNoise(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if !(cfg.Sigma >= 0) || math.IsInf(cfg.Sigma, 0) {
		return nil, fmt.Errorf("--sigma must be ≥ 0 and finite, got %v", cfg.Sigma)
	}
	return newFused(b, p, cfg, rule{
		name: "labelnoise",
		// The noisy targets 2η(y − σζ) of all c steps at once.
		draw: func(net *model.Net, rng *Node, c int, bulk bool) (*Node, []*Node) {
			return drawNormal(rng, c, bulk, p.N, func(zeta *Node) *Node {
				return noisyTargets(net, zeta, cfg.Sigma, cfg.Eta)
			})
		},
		step: noisyGDStep(cfg.Eta),
	})
}

// noisyTargets returns 2η(y − σζ) for ζ [.., n]; ζ nil means no noise.
func noisyTargets(net *model.Net, zeta *Node, sigma, eta float64) *Node {
	y := net.Y
	if zeta != nil {
		y = Sub(InsertAxes(y, 0), MulScalar(zeta, sigma))
	}
	return MulScalar(y, 2*eta)
}

// noisyGDStep is Θ ← Θ − η ∇ Σ (f_i − y_i + σζ_i)² = Θ − Jᵀc with
// c = 2ηf − 2η(y − σζ), the targets given per step (nil: GD's 2ηy). With
// noise and σ = 0 the draw still happens, so that path can be checked against GD.
func noisyGDStep(eta float64) func(sp space, net *model.Net, params, targets *Node) (*Node, *Node) {
	return func(sp space, net *model.Net, params, targets *Node) (*Node, *Node) {
		if targets == nil {
			targets = noisyTargets(net, nil, 0, eta)
		}
		fw := sp.forward(net, params)
		c := Sub(MulScalar(fw.F, 2*eta), targets)
		return sp.moveJT(fw, params, c), fw.Loss()
	}
}
