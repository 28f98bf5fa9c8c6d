package trainers

import (
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

func init() {
	register("sam1", func(b backends.Backend, p *model.Problem, c Config) (Trainer, error) {
		return NewSAM1(b, p, c.SAM1(), c.Execution)
	},
		func(c Config) Settings { return c.SAM1() })
}

// NewSAM1 is 1-SAM: each step draws B examples i_b uniformly (with
// replacement) from the RNG state and moves
//
//	Θ ← Θ − (η/B) Σ_b ∇ℓ_{i_b}(Θ + ρ g_b/‖g_b‖),  g_b = ∇ℓ_{i_b}(Θ), ℓ_i = (f_i − y_i)²,
//
// each example with its own perturbation (B = 1 is the paper's 1-SAM). The
// per-example perturbation is applied in closed form (docs/MATH.md §4.4): only example
// i's pre-activations move, by ρ sign(r_i) ‖x_i‖ A_ij / ‖A_i·‖, so a batch of
// B perturbed gradients costs about one ordinary gradient on B rows.
// The reported loss is the batch estimate (n/B) Σ_b r_{i_b}², for divergence checks.
func NewSAM1(b backends.Backend, p *model.Problem, s SAM1Settings, x Execution) (Trainer, error) {
	if err := prepare(p, s, &x); err != nil {
		return nil, err
	}
	if h, err := hostFor(b, p, x, "sam1", hostSAM1, hostParams{eta: s.Eta, rho: s.Rho, batch: s.SAMBatch}); h != nil || err != nil {
		return h, err
	}
	batch := s.SAMBatch
	return newFused(b, p, x, rule{
		name: "sam1",
		draw: func(_ *model.Net, key, step *Node, c int) []*Node {
			return drawIndices(key, step, c, batch, p.N)
		},
		step: func(sp space, net *model.Net, params, idx *Node) (*Node, *Node) {
			return samStep(sp, net, params, idx, s.Rho, s.Eta)
		},
	})
}

// samStep is one 1-SAM update of the params on the examples idx ([B] int32).
func samStep(sp space, net *model.Net, params, idx *Node, rho, eta float64) (next, loss *Node) {
	oneHot := OneHot(idx, net.Problem.N, dtypes.Float64) // [B, n]
	zb := sp.rows(net, params, idx, oneHot)
	coef, loss := samCoef(net, zb, idx, rho)
	return sp.moveRows(net, params, coef, idx, eta/float64(idx.Shape().Dimensions[0])), loss
}

// samCoef is one 1-SAM gradient on the examples idx ([B] int32) whose
// pre-activations are zb [B, m]: the coefficients c [B, m] of the gradient
// Σ_b Σ_j c_bj x_{i_b} (summed over the batch) and the batch loss estimate.
func samCoef(net *model.Net, zb, idx *Node, rho float64) (coef, loss *Node) {
	p := net.Problem
	at := InsertAxes(idx, -1) // [B, 1] for Gather
	yb := Gather(net.Y, at)   // [B]
	normSq := Gather(net.NormSq, at)
	fw := net.ForwardRows(zb, yb)
	r, a := fw.R, fw.A() // A_bj = w_j φ'(z_bj)
	// ρ g/‖g‖ moves z_bj by ρ sign(r_b) ‖x_b‖ A_bj/‖A_b‖; g = 0 (r_b = 0 or A_b = 0) moves nothing.
	aNorm := Sqrt(ReduceSum(Square(a), -1))
	safe := Where(GreaterThan(aNorm, ZerosLike(aNorm)), aNorm, OnesLike(aNorm))
	scale := MulScalar(Div(Mul(Sign(r), Sqrt(normSq)), safe), rho) // [B]
	// ∇_{θ_j} ℓ_b(Θ̃) = 2 r̃_b Ã_bj x_b: ∂ℓ/∂Z at the perturbed rows.
	coef = net.ForwardRows(Add(zb, Mul(a, InsertAxes(scale, -1))), yb).LossCoef() // [B, m]
	batch := idx.Shape().Dimensions[0]
	loss = MulScalar(ReduceAllSum(Square(r)), float64(p.N)/float64(batch))
	return coef, loss
}
