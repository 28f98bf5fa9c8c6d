package trainers

import (
	"fmt"
	"math"

	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() { register("penalty", newPenalty) }

// newPenalty is GD on the explicitly regularized loss L + λ Tr D²L, the
// baseline against which the implicit regularizers are compared. The trace's
// gradient comes from GoMLX autodiff of the closed form.
func newPenalty(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if !(cfg.Lambda >= 0) || math.IsInf(cfg.Lambda, 0) {
		return nil, fmt.Errorf("--lambda must be ≥ 0 and finite, got %v", cfg.Lambda)
	}
	exec, err := compile(b, func(theta, rng *Node) (*Node, *Node, *Node) {
		fw := model.NewNet(theta.Graph(), p).Forward(theta)
		grad := Add(fw.LossGrad(), MulScalar(regularizers.TraceHessianGrad(fw), cfg.Lambda))
		return Sub(theta, MulScalar(grad, cfg.Eta)), rng, fw.Loss()
	})
	if err != nil {
		return nil, err
	}
	return &gradientStep{name: "penalty", exec: exec}, nil
}
