package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("gd", newGD, func(c Config) Settings { return c.GD() })
}

// newGD is plain gradient descent on L: Θ ← Θ − η ∇L.
func newGD(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if h, err := hostFor(b, p, cfg, "gd", hostGDKind); h != nil || err != nil {
		return h, err
	}
	return newFused(b, p, cfg, rule{name: "gd", step: noisyGDStep(cfg.Eta)})
}

// noisyGDStep is Θ ← Θ − η ∇ Σ (f_i − y_i + σζ_i)² = Θ − 2η Jᵀ(f − t) with
// the targets t = y − σζ given per step (nil: GD's y). With noise and σ = 0
// the draw still happens, so that path can be checked against GD.
func noisyGDStep(eta float64) func(sp space, net *model.Net, params, targets *Node) (*Node, *Node) {
	return func(sp space, net *model.Net, params, targets *Node) (*Node, *Node) {
		if targets == nil {
			targets = net.Y
		}
		fw := sp.forward(net, params)
		return sp.moveJT(fw, params, Sub(fw.F, targets), 2*eta), fw.Loss()
	}
}

// hostFor returns the host trainer (hostgd.go) where it applies, else nil.
func hostFor(b backends.Backend, p *model.Problem, cfg Config, name string, kind hostKind) (Trainer, error) {
	engine, err := ChooseEngine(cfg.Engine, p)
	if err != nil || !useHost(b, p, cfg, engine) {
		return nil, err
	}
	eng, err := newEngine(b, p, cfg.Engine)
	if err != nil {
		return nil, err
	}
	return newHostTrainer(p, eng, cfg, name, kind), nil
}
