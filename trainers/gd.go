package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("gd", newGD, func(c Config) Settings { return c.GD() })
	register("labelnoise", newLabelNoise, func(c Config) Settings { return c.LabelNoise() })
}

// newGD is plain gradient descent on L: Θ ← Θ − η ∇L.
func newGD(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if h, err := hostFor(b, p, cfg, "gd", hostGDKind); h != nil || err != nil {
		return h, err
	}
	return newFused(b, p, cfg, rule{name: "gd", step: noisyGDStep(cfg.Eta)})
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
