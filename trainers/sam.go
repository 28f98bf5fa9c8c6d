package trainers

import (
	"fmt"
	"math"

	"github.com/flatmin/flatmin/internal/fastdot"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

func init() { register("sam1", newSAM1) }

// newSAM1 is 1-SAM: each step draws B examples i_b uniformly (with
// replacement) from the RNG state and moves
//
//	Θ ← Θ − (η/B) Σ_b ∇ℓ_{i_b}(Θ + ρ g_b/‖g_b‖),  g_b = ∇ℓ_{i_b}(Θ), ℓ_i = (f_i − y_i)²,
//
// each example with its own perturbation (B = 1 is the paper's 1-SAM). The
// per-example perturbation is applied in closed form (MATH.md): only example
// i's pre-activations move, by ρ sign(r_i) ‖x_i‖ A_ij / ‖A_i·‖, so a batch of
// B perturbed gradients costs about one ordinary gradient on B rows.
// The reported loss is the batch estimate (n/B) Σ_b r_{i_b}², for divergence checks.
func newSAM1(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	if !(cfg.Rho > 0) || math.IsInf(cfg.Rho, 0) {
		return nil, fmt.Errorf("--rho must be positive and finite, got %v", cfg.Rho)
	}
	if cfg.SAMBatch < 1 {
		return nil, fmt.Errorf("--sam-batch must be at least 1, got %d", cfg.SAMBatch)
	}
	batch := cfg.SAMBatch
	exec, err := compile(b, func(theta, rng *Node) (*Node, *Node, *Node) {
		var idx *Node
		rng, idx = RandomIntN(rng, p.N, shapes.Make(dtypes.Int32, batch))
		next, loss := samStep(model.NewNet(theta.Graph(), p), theta, idx, cfg.Rho, cfg.Eta)
		return next, rng, loss
	})
	if err != nil {
		return nil, err
	}
	return &gradientStep{name: "sam1", exec: exec}, nil
}

// samStep is one 1-SAM update of Θ on the examples idx ([B] int32).
func samStep(net *model.Net, theta, idx *Node, rho, eta float64) (next, loss *Node) {
	p := net.Problem
	at := InsertAxes(idx, -1) // [B, 1] for Gather
	xb := Gather(net.X, at)   // [B, d]
	yb := Gather(net.Y, at)   // [B]
	normSq := Gather(net.NormSq, at)
	w := InsertAxes(net.W, 0) // [1, m]
	act := p.Act
	zb := fastdot.DotGeneral(xb, []int{1}, nil, theta, []int{1}, nil) // [B, m]
	r := Sub(ReduceSum(Mul(act.Eval(zb, 0), w), -1), yb)
	a := Mul(act.Eval(zb, 1), w) // A_bj = w_j φ'(z_bj)
	// ρ g/‖g‖ moves z_bj by ρ sign(r_b) ‖x_b‖ A_bj/‖A_b‖; g = 0 (r_b = 0 or A_b = 0) moves nothing.
	aNorm := Sqrt(ReduceSum(Square(a), -1))
	safe := Where(GreaterThan(aNorm, ZerosLike(aNorm)), aNorm, OnesLike(aNorm))
	scale := MulScalar(Div(Mul(Sign(r), Sqrt(normSq)), safe), rho) // [B]
	zt := Add(zb, Mul(a, InsertAxes(scale, -1)))
	rt := Sub(ReduceSum(Mul(act.Eval(zt, 0), w), -1), yb)
	at2 := Mul(act.Eval(zt, 1), w)
	// ∇_{θ_j} ℓ_b(Θ̃) = 2 r̃_b Ã_bj x_b, averaged over the batch.
	coef := Mul(at2, InsertAxes(MulScalar(rt, 2), -1)) // [B, m]
	grad := fastdot.DotGeneral(coef, []int{0}, nil, xb, []int{0}, nil)
	batch := idx.Shape().Dimensions[0]
	next = Sub(theta, MulScalar(grad, eta/float64(batch)))
	loss = MulScalar(ReduceAllSum(Square(r)), float64(p.N)/float64(batch))
	return next, loss
}
