package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("sam", func(b backends.Backend, p *model.Problem, c Config) (Trainer, error) {
		return NewSAM(b, p, c.SAM(), c.Execution)
	},
		func(c Config) Settings { return c.SAM() })
}

// NewSAM is standard (full-batch) SAM, Foret et al.: one perturbation from
// the full gradient,
//
//	Θ ← Θ − η ∇L(Θ + ρ g/‖g‖),  g = ∇L(Θ),
//
// beside the paper's 1-SAM (sam1), where each example has its own. g = 0
// (Θ already fits the data) perturbs nothing, so the step is plain GD there.
// It is deterministic. The graphs are the reference and the XLA path; the
// feature engine on SimpleGo steps on the host (hostsam.go).
func NewSAM(b backends.Backend, p *model.Problem, s SAMSettings, x Execution) (Trainer, error) {
	if err := prepare(p, s, &x); err != nil {
		return nil, err
	}
	if h, err := hostSAMFor(b, p, s, x); h != nil || err != nil {
		return h, err
	}
	return newFused(b, p, x, rule{
		name: "sam",
		step: func(sp space, net *model.Net, params, _ *Node) (*Node, *Node) {
			return samFullStep(sp, net, params, s.Rho, s.Eta)
		},
	})
}

// samFullStep is one SAM step; it returns the next params and L before the step.
func samFullStep(sp space, net *model.Net, params *Node, rho, eta float64) (next, loss *Node) {
	fw := sp.forward(net, params)
	g := fw.LossGrad() // ∇L = 2 Jᵀ r, in the engine's layout
	n2 := sp.normSq(net, g)
	// ‖g‖ = 0 (or a rounding-negative ‖VX‖² under the feature engine): no
	// perturbation rather than 0/0.
	zero := ScalarZero(params.Graph(), dtypes.Float64)
	pos := GreaterThan(n2, zero)
	norm := Sqrt(Where(pos, n2, OnesLike(n2)))
	scale := Where(pos, Div(Scalar(params.Graph(), dtypes.Float64, -rho), norm), zero)
	pert := sp.moveBy(net, params, g, scale) // params − scale·g = Θ + ρ g/‖g‖
	fwt := sp.forward(net, pert)
	// ∇L at the perturbed point, applied at the unperturbed params.
	return sp.moveJT(fwt, params, fwt.R, 2*eta), fw.Loss()
}
