package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("gd", func(b backends.Backend, p *model.Problem, c Config) (Trainer, error) {
		return NewGD(b, p, c.GD(), c.Execution)
	},
		func(c Config) Settings { return c.GD() })
}

// NewGD is plain gradient descent on L: Θ ← Θ − η ∇L.
func NewGD(b backends.Backend, p *model.Problem, s GDSettings, x Execution) (Trainer, error) {
	if err := prepare(p, s, &x); err != nil {
		return nil, err
	}
	if h, err := hostFor(b, p, x, "gd", hostGDKind, hostParams{eta: s.Eta}); h != nil || err != nil {
		return h, err
	}
	return newFused(b, p, x, rule{name: "gd", step: noisyGDStep(s.Eta)})
}

// noisyGDStep is Θ ← Θ − η ∇ Σ (f_i − y_i + σζ_i)² = Θ − 2η Jᵀ(f − t) with
// the targets t = y − σζ given per step (nil: GD's y). With noise and σ = 0
// the draw still happens, so that path can be checked against GD.
func noisyGDStep(eta float64) func(sp space, net *model.Net, params, targets *Node) (*Node, *Node) {
	return func(sp space, net *model.Net, params, targets *Node) (*Node, *Node) {
		fw := sp.forward(net, params)
		r := fw.R // f − y
		if targets != nil {
			r = Sub(fw.F, targets)
		}
		return sp.moveJT(fw, params, r, 2*eta), fw.Loss()
	}
}

// hostFor returns the host trainer (hostgd.go) where it applies, else nil.
func hostFor(b backends.Backend, p *model.Problem, x Execution, name string, kind hostKind, hp hostParams) (Trainer, error) {
	if !useHost(b, x) {
		return nil, nil
	}
	eng, err := newEngine(b, p, x.Engine)
	if err != nil {
		return nil, err
	}
	return newHostTrainer(p, eng, hp, name, kind), nil
}
