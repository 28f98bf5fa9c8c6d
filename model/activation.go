package model

import (
	"fmt"
	"math"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// Activation is an elementwise φ with its first three derivatives, in graphs
// and on the host, its inverse where one exists, and the paper's constants.
type Activation interface {
	// Name identifies the activation with its parameters, e.g. "cubic(nu=0.1)".
	Name() string
	// Eval returns φ^(order)(z) elementwise, order 0..3, as a differentiable graph.
	Eval(z *Node, order int) *Node
	// Host returns φ^(order)(z), order 0..3.
	Host(z float64, order int) float64
	// Inverse returns φ⁻¹(t), and false where φ has no inverse at t.
	Inverse(t float64) (float64, bool)
	// Constants returns ϱ1, ϱ2, β and whether Assumptions 1 and 3 hold.
	Constants() Constants
	// DerivativeSignChanges reports whether φ' takes both signs, which leaves
	// the manifold of zero loss without a smooth structure the flow can follow.
	DerivativeSignChanges() bool
}

// Constants are the activation's constants in the paper's assumptions.
type Constants struct {
	Rho1 float64 // inf φ'; Assumption 1 needs it > 0
	Rho2 float64 // inf φ'''; Assumption 1 needs it > 0
	// Beta is the largest β with β φ'' ≤ φ'² φ''' for all z (Assumption 3), 0 if none is positive.
	Beta float64
	// BetaPaper is the paper's sufficient constant for z^(2k+1)+νz, min{1/((2k+1)²(2k−1)), ν²}; NaN otherwise.
	BetaPaper   float64
	Assumption1 bool
	Assumption3 bool
	// Why explains each assumption that fails, empty when both hold.
	Why []string
}

// NewActivation returns the activation named "cubic" (z³+νz), "odd" (z^(2k+1)+νz) or "tanh".
func NewActivation(name string, nu float64, k int) (Activation, error) {
	if math.IsNaN(nu) || math.IsInf(nu, 0) {
		return nil, fmt.Errorf("nu must be finite, got %v", nu)
	}
	switch strings.ToLower(name) {
	case "cubic", "cube":
		return &OddActivation{K: 1, Nu: nu}, nil
	case "odd":
		if k < 1 {
			return nil, fmt.Errorf("k must be at least 1 for the odd activation z^(2k+1)+νz, got %d", k)
		}
		if k > 10 {
			return nil, fmt.Errorf("k must be at most 10 for the odd activation (z^%d overflows quickly), got %d", 2*k+1, k)
		}
		return &OddActivation{K: k, Nu: nu}, nil
	case "tanh":
		return TanhActivation{}, nil
	default:
		return nil, fmt.Errorf("unknown activation %q: use cubic, odd or tanh", name)
	}
}

// OddActivation is φ(z) = z^(2k+1) + νz; K = 1 is the cubic z³ + νz (ν = 0 is the paper's cube).
type OddActivation struct {
	K  int
	Nu float64
}

// Name implements Activation.
func (a *OddActivation) Name() string {
	if a.K == 1 {
		return fmt.Sprintf("cubic(nu=%g)", a.Nu)
	}
	return fmt.Sprintf("odd(k=%d,nu=%g)", a.K, a.Nu)
}

// terms returns φ^(order) as (coefficient, power) pairs, differentiating the
// two monomials of φ: this is the one place the polynomial is written.
func (a *OddActivation) terms(order int) [][2]float64 {
	var out [][2]float64
	for _, t := range [][2]float64{{1, float64(2*a.K + 1)}, {a.Nu, 1}} {
		c, p := t[0], t[1]
		for range order {
			c *= p
			p--
		}
		if c != 0 && p >= 0 {
			out = append(out, [2]float64{c, p})
		}
	}
	return out
}

// Eval implements Activation.
func (a *OddActivation) Eval(z *Node, order int) *Node { return a.evalSq(z, Square(z), order) }

// constantDerivative reports whether φ^(order) is a constant, and which.
func constantDerivative(act Activation, order int) (float64, bool) {
	a, ok := act.(*OddActivation)
	if !ok {
		return 0, false
	}
	terms := a.terms(order)
	switch {
	case len(terms) == 0:
		return 0, true
	case len(terms) == 1 && terms[0][1] == 0:
		return terms[0][0], true
	}
	return 0, false
}

// evalSq evaluates φ^(order) in Horner form in u = z², given u: z^(2k+1)+νz and
// its derivatives are z^q·P(z²), which costs a few elementwise ops (this is
// the inner loop of every small step).
func (a *OddActivation) evalSq(z, u *Node, order int) *Node {
	coef, q := a.poly(order)
	if coef == nil {
		return ZerosLike(z)
	}
	top := len(coef) - 1
	if top == 0 {
		return MulScalar(intPow(z, q), coef[0])
	}
	poly := scaled(u, coef[top]) // c_top u, then Horner downwards
	for e := top - 1; e >= 1; e-- {
		if coef[e] != 0 {
			poly = AddScalar(poly, coef[e])
		}
		poly = Mul(poly, u)
	}
	if coef[0] != 0 {
		poly = AddScalar(poly, coef[0])
	}
	if q == 0 {
		return poly
	}
	return Mul(poly, intPow(z, q))
}

// poly returns φ^(order)(z) = z^q P(z²): P's coefficients, lowest first
// (nil when φ^(order) = 0), and q. It is the one Horner table, which the
// graph (evalSq) and the host (hostSlice) both evaluate.
func (a *OddActivation) poly(order int) (coef []float64, q int) {
	checkOrder(order)
	terms := a.terms(order)
	if len(terms) == 0 {
		return nil, 0
	}
	q = int(terms[len(terms)-1][1])
	top := 0
	for _, t := range terms {
		top = max(top, (int(t[1])-q)/2)
	}
	coef = make([]float64, top+1)
	for _, t := range terms {
		coef[(int(t[1])-q)/2] += t[0]
	}
	return coef, q
}

// Host implements Activation. It sums the monomials, not hostSlice's Horner
// form: the two round differently (z·z·z + νz against (z·z + ν)z), and
// Inverse's Newton steps on these bits reach saved outputs (theory_gap,
// trace_min).
func (a *OddActivation) Host(z float64, order int) float64 {
	checkOrder(order)
	s := 0.0
	for _, t := range a.terms(order) {
		s += t[0] * hostIntPow(z, int(t[1]))
	}
	return s
}

// Inverse implements Activation: φ is strictly increasing when ν ≥ 0.
func (a *OddActivation) Inverse(t float64) (float64, bool) {
	if a.Nu < 0 || math.IsNaN(t) || math.IsInf(t, 0) {
		return math.NaN(), false
	}
	p := float64(2*a.K + 1)
	at := math.Abs(t)
	if a.Nu == 0 {
		return math.Copysign(math.Pow(at, 1/p), t), true
	}
	// Both monomials share the sign of z, so |z| ≤ min(|t|^(1/p), |t|/ν).
	lo, hi := 0.0, math.Min(math.Pow(at, 1/p), at/a.Nu)
	z := hi
	for range 200 {
		f := a.Host(z, 0) - at
		if f > 0 {
			hi = z
		} else {
			lo = z
		}
		next := z - f/a.Host(z, 1)
		if !(next > lo && next < hi) { // Newton left the bracket: bisect.
			next = 0.5 * (lo + hi)
		}
		if next == z || hi-lo <= 4e-16*hi {
			break
		}
		z = next
	}
	return math.Copysign(z, t), true
}

// DerivativeSignChanges implements Activation: φ' = (2k+1)z^(2k) + ν < 0 near 0 when ν < 0.
func (a *OddActivation) DerivativeSignChanges() bool { return a.Nu < 0 }

// Constants implements Activation.
func (a *OddActivation) Constants() Constants {
	k, nu := float64(a.K), a.Nu
	c := Constants{Rho1: nu, Rho2: a.Host(0, 3)}
	c.BetaPaper = math.Min(1/((2*k+1)*(2*k+1)*(2*k-1)), nu*nu)
	if nu > 0 {
		// For z > 0, φ'²φ'''/φ'' = (2k−1)((2k+1)z^(2k)+ν)²/z, minimal where
		// z^(2k) = ν/((2k+1)(4k−1)); for z ≤ 0 the inequality holds for any β ≥ 0.
		z0 := math.Pow(nu/((2*k+1)*(4*k-1)), 1/(2*k))
		d1 := 4 * k * nu / (4*k - 1)
		c.Beta = (2*k - 1) * d1 * d1 / z0
	}
	c.Assumption1 = c.Rho1 > 0 && c.Rho2 > 0
	c.Assumption3 = c.Beta > 0
	if c.Rho1 <= 0 {
		c.Why = append(c.Why, fmt.Sprintf("Assumption 1 fails: inf φ' = ν = %g is not positive", nu))
	}
	if c.Rho2 <= 0 {
		c.Why = append(c.Why, fmt.Sprintf("Assumption 1 fails: φ'''(0) = 0 for k = %d ≥ 2", a.K))
	}
	if !c.Assumption3 {
		c.Why = append(c.Why, "Assumption 3 fails: with ν ≤ 0 no β > 0 has β φ'' ≤ φ'² φ''' near z = 0")
	}
	return c
}

// TanhActivation is φ = tanh, outside the theory but useful for experiments.
type TanhActivation struct{}

// Name implements Activation.
func (TanhActivation) Name() string { return "tanh" }

// Eval implements Activation, writing each derivative through t = tanh z.
func (TanhActivation) Eval(z *Node, order int) *Node {
	checkOrder(order)
	t := Tanh(z)
	if order == 0 {
		return t
	}
	s := OneMinus(Square(t)) // sech² z
	switch order {
	case 1:
		return s
	case 2:
		return MulScalar(Mul(t, s), -2)
	default:
		return MulScalar(Mul(s, OneMinus(MulScalar(Square(t), 3))), -2)
	}
}

// Host implements Activation.
func (TanhActivation) Host(z float64, order int) float64 {
	checkOrder(order)
	t := math.Tanh(z)
	s := 1 - t*t
	switch order {
	case 0:
		return t
	case 1:
		return s
	case 2:
		return -2 * t * s
	default:
		return -2 * s * (1 - 3*t*t)
	}
}

// Inverse implements Activation: atanh on (−1, 1).
func (TanhActivation) Inverse(t float64) (float64, bool) {
	if !(t > -1 && t < 1) {
		return math.NaN(), false
	}
	return math.Atanh(t), true
}

// DerivativeSignChanges implements Activation: sech² > 0.
func (TanhActivation) DerivativeSignChanges() bool { return false }

// Constants implements Activation.
func (TanhActivation) Constants() Constants {
	return Constants{
		Rho1: 0, Rho2: -2, Beta: 0, BetaPaper: math.NaN(),
		Why: []string{
			"Assumption 1 fails: inf φ' = inf sech² = 0 and φ'''(0) = −2 < 0",
			"Assumption 3 fails: for small z < 0, φ'' > 0 while φ''' < 0",
		},
	}
}

func checkOrder(order int) {
	if order < 0 || order > 3 {
		panic(fmt.Sprintf("activation derivative order %d out of 0..3", order))
	}
}

// intPow is z^p by repeated squaring, differentiable everywhere (Pow's gradient is not at z = 0).
func intPow(z *Node, p int) *Node {
	if p == 0 {
		return OnesLike(z)
	}
	var result *Node
	base := z
	for p > 0 {
		if p&1 == 1 {
			if result == nil {
				result = base
			} else {
				result = Mul(result, base)
			}
		}
		p >>= 1
		if p > 0 {
			base = Square(base)
		}
	}
	return result
}

func hostIntPow(z float64, p int) float64 {
	r := 1.0
	for range p {
		r *= z
	}
	return r
}

func scaled(v *Node, c float64) *Node {
	if c == 1 {
		return v
	}
	return MulScalar(v, c)
}
