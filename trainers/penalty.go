package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("penalty", func(b backends.Backend, p *model.Problem, c Config) (Trainer, error) {
		return NewPenalty(b, p, c.Penalty(), c.Execution)
	}, func(c Config) Settings { return c.Penalty() })
}

// NewPenalty is GD on the explicitly regularized loss L + λ Tr D²L, the
// baseline against which the implicit regularizers are compared. The trace's
// gradient is its closed form (regularizers.TraceHessianFeatureGrad).
func NewPenalty(b backends.Backend, p *model.Problem, s PenaltySettings, x Execution) (Trainer, error) {
	if err := prepare(p, s, &x); err != nil {
		return nil, err
	}
	return newFused(b, p, x, rule{
		name: "penalty",
		step: func(sp space, net *model.Net, params, _ *Node) (*Node, *Node) {
			fw := sp.forward(net, params)
			// ∂(L + λ Tr D²L)/∂Z, then along X: the same in both engines.
			coef := Add(fw.LossCoef(), MulScalar(regularizers.TraceHessianFeatureGrad(fw), s.Lambda))
			return sp.move(net, params, sp.direction(fw, coef), s.Eta), fw.Loss()
		},
	})
}
