package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("labelnoise", func(b backends.Backend, p *model.Problem, c Config) (Trainer, error) {
		return NewLabelNoise(b, p, c.LabelNoise(), c.Execution)
	}, func(c Config) Settings { return c.LabelNoise() })
}

// NewLabelNoise is label-noise SGD: Θ ← Θ − η ∇ Σ_i (f_i − y_i + ζ_i)², with
// fresh ζ_i ~ N(0, σ²) every step drawn in the graph from the RNG state.
func NewLabelNoise(b backends.Backend, p *model.Problem, s LabelNoiseSettings, x Execution) (Trainer, error) {
	if err := prepare(p, s, &x); err != nil {
		return nil, err
	}
	if h, err := hostFor(b, p, x, "labelnoise", hostLabelNoise, hostParams{eta: s.Eta, sigma: s.Sigma}); h != nil || err != nil {
		return h, err
	}
	return newFused(b, p, x, rule{
		name: "labelnoise",
		// The noisy targets y − σζ of all c steps at once.
		draw: func(net *model.Net, key, step *Node, c int) []*Node {
			return drawNormal(key, step, c, p.N, func(zeta *Node) *Node {
				return noisyTargets(net, zeta, s.Sigma, s.Eta)
			})
		},
		step: noisyGDStep(s.Eta),
	})
}

// noisyTargets returns y − σζ for ζ [.., n]; ζ nil means no noise.
func noisyTargets(net *model.Net, zeta *Node, sigma, eta float64) *Node {
	if zeta == nil {
		return net.Y
	}
	return Sub(InsertAxes(net.Y, 0), MulScalar(zeta, sigma))
}
