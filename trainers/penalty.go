package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() { register("penalty", newPenalty, func(c Config) Settings { return c.Penalty() }) }

// newPenalty is GD on the explicitly regularized loss L + λ Tr D²L, the
// baseline against which the implicit regularizers are compared. The trace's
// gradient is its closed form (regularizers.TraceHessianFeatureGrad).
func newPenalty(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	return newFused(b, p, cfg, rule{
		name: "penalty",
		step: func(sp space, net *model.Net, params, _ *Node) (*Node, *Node) {
			fw := sp.forward(net, params)
			// ∂(L + λ Tr D²L)/∂Z, then along X: the same in both engines.
			coef := Add(fw.Coef(MulScalar(fw.R, 2)), MulScalar(regularizers.TraceHessianFeatureGrad(fw), cfg.Lambda))
			return sp.move(net, params, sp.direction(fw, coef), cfg.Eta), fw.Loss()
		},
	})
}
