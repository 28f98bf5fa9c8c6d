package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("labelnoise", newLabelNoise, func(c Config) Settings { return c.LabelNoise() })
}

// newLabelNoise is label-noise SGD: Θ ← Θ − η ∇ Σ_i (f_i − y_i + ζ_i)², with
// fresh ζ_i ~ N(0, σ²) every step drawn in the graph from the RNG state.
func newLabelNoise(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if h, err := hostFor(b, p, cfg, "labelnoise", hostLabelNoise); h != nil || err != nil {
		return h, err
	}
	return newFused(b, p, cfg, rule{
		name: "labelnoise",
		// The noisy targets y − σζ of all c steps at once.
		draw: func(net *model.Net, key, step *Node, c int) []*Node {
			return drawNormal(key, step, c, p.N, func(zeta *Node) *Node {
				return noisyTargets(net, zeta, cfg.Sigma, cfg.Eta)
			})
		},
		step: noisyGDStep(cfg.Eta),
	})
}

// noisyTargets returns y − σζ for ζ [.., n]; ζ nil means no noise.
func noisyTargets(net *model.Net, zeta *Node, sigma, eta float64) *Node {
	if zeta == nil {
		return net.Y
	}
	return Sub(InsertAxes(net.Y, 0), MulScalar(zeta, sigma))
}
