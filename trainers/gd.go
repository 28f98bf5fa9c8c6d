package trainers

import (
	"fmt"
	"math"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

func init() {
	register("gd", newGD)
	register("labelnoise", newLabelNoise)
}

// gradientStep is a trainer whose update is one compiled graph of (Θ, RNG).
type gradientStep struct {
	name string
	exec *Exec // (Θ, rng) → (Θ', rng', L(Θ))
}

func (t *gradientStep) Name() string      { return t.name }
func (t *gradientStep) Init(*State) error { return nil }
func (t *gradientStep) Extras() []string  { return nil }
func (t *gradientStep) Step(s *State) (float64, error) {
	out, err := run(t.exec, s.Theta, s.RNG)
	if err != nil {
		return math.NaN(), err
	}
	s.Theta, s.RNG = out[0], out[1]
	s.Step++
	return scalar(out[2]), nil
}

// newGD is plain gradient descent on L: Θ ← Θ − η ∇L.
func newGD(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	return compileNoisyGD("gd", b, p, cfg.Eta, 0, false)
}

// newLabelNoise is label-noise SGD: Θ ← Θ − η ∇ Σ_i (f_i − y_i + ζ_i)², with
// fresh ζ_i ~ N(0, σ²) every step drawn in the graph from the RNG state.
func newLabelNoise(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if !(cfg.Sigma >= 0) || math.IsInf(cfg.Sigma, 0) {
		return nil, fmt.Errorf("--sigma must be ≥ 0 and finite, got %v", cfg.Sigma)
	}
	return compileNoisyGD("labelnoise", b, p, cfg.Eta, cfg.Sigma, true)
}

// compileNoisyGD builds Θ ← Θ − η 2Jᵀ(r + ζ); without noise it is GD. With
// noise and σ = 0 the draw still happens, so that path can be checked against GD.
func compileNoisyGD(name string, b backends.Backend, p *model.Problem, eta, sigma float64, noisy bool) (Trainer, error) {
	exec, err := compile(b, func(theta, rng *Node) (*Node, *Node, *Node) {
		fw := model.NewNet(theta.Graph(), p).Forward(theta)
		r := fw.R
		if noisy {
			var noise *Node
			rng, noise = RandomNormal(rng, shapes.Make(dtypes.Float64, p.N))
			r = Add(r, MulScalar(noise, sigma))
		}
		// ∇ Σ (r_i + ζ_i)² = 2 Jᵀ (r + ζ)
		grad := fw.JTc(MulScalar(r, 2))
		return Sub(theta, MulScalar(grad, eta)), rng, fw.Loss()
	})
	if err != nil {
		return nil, err
	}
	return &gradientStep{name: name, exec: exec}, nil
}
