package model

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// HostForward at Zᵀ = (XΘᵀ)ᵀ against plain loops from Θ: the outputs, J Jᵀ
// (J formed row by row as J_i = Σ_j A_ij e_j ⊗ x_i), J v for v = V X, and
// V G and the features after a move −Jᵀδ, for every activation with non-unit and unit weights.
func TestHostForwardMatchesLoops(t *testing.T) {
	for _, a := range testActivations(t) {
		for _, unit := range []bool{false, true} {
			p, theta := randomProblem(t, 4, 6, 3, a, 13)
			if unit {
				for j := range p.W {
					p.W[j] = 1
				}
			}
			z := make([]float64, p.N*p.M) // [n, m]
			zt := make([]float64, p.M*p.N)
			for i := range p.N {
				for j := range p.M {
					for c := range p.D {
						z[i*p.M+j] += theta[j*p.D+c] * p.X[i*p.D+c]
					}
					zt[j*p.N+i] = z[i*p.M+j]
				}
			}
			h := NewHostNet(p).Forward(zt)
			near := func(what string, got, want float64) {
				t.Helper()
				if math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
					t.Errorf("%s unit=%v %s: host %.15g, loops %.15g", a.Name(), unit, what, got, want)
				}
			}
			J := make([][]float64, p.N) // [n][m·d]
			for i := range p.N {
				f := 0.0
				J[i] = make([]float64, p.M*p.D)
				for j := range p.M {
					zij := z[i*p.M+j]
					f += p.W[j] * a.Host(zij, 0)
					for c := range p.D {
						J[i][j*p.D+c] = p.W[j] * a.Host(zij, 1) * p.X[i*p.D+c]
					}
					for order := range 4 {
						near("φ", h.Phi(order)[j*p.N+i], a.Host(zij, order))
					}
				}
				near("f", h.F[i], f)
				near("r", h.R[i], f-p.Y[i])
			}
			jjt := h.JJT()
			for i := range p.N {
				for l := range p.N {
					s := 0.0
					for k := range J[i] {
						s += J[i][k] * J[l][k]
					}
					near("JJᵀ", jjt[i*p.N+l], s)
				}
			}
			rng := rand.New(rand.NewPCG(4, 4))
			v := make([]float64, p.M*p.N)
			for k := range v {
				v[k] = rng.NormFloat64()
			}
			vx := make([]float64, p.M*p.D) // the direction V X, Θ-shaped
			for j := range p.M {
				for i := range p.N {
					for c := range p.D {
						vx[j*p.D+c] += v[j*p.N+i] * p.X[i*p.D+c]
					}
				}
			}
			jv := h.Jv(v)
			for i := range p.N {
				s := 0.0
				for k := range vx {
					s += J[i][k] * vx[k]
				}
				near("Jv", jv[i], s)
			}
			// The same over blocks of neurons [0, 2) and [2, m): V G and J V
			// by TimesGram and HostAddJv, Coef(c) by HostCoef against
			// c_i w_j φ′(z_ij), and ‖VX‖² as the blocks' ⟨V, VG⟩ (Velocity).
			jvb, coef, vxSq := make([]float64, p.N), make([]float64, p.M*p.N), 0.0
			c := v[p.N : 2*p.N]
			for _, bl := range [][2]int{{0, 2}, {2, p.M}} {
				rows := v[bl[0]*p.N : bl[1]*p.N]
				a := make([]float64, len(rows))
				HostA(p.Act, p.W[bl[0]:bl[1]], zt[bl[0]*p.N:bl[1]*p.N], a)
				HostAddJv(a, h.Net.TimesGram(rows, 1, make([]float64, len(rows))), jvb)
				HostCoef(a, c, coef[bl[0]*p.N:bl[1]*p.N])
				vxSq += h.Net.Velocity(rows, make([]float64, len(rows)))
			}
			for i := range p.N {
				s := 0.0
				for k := range vx {
					s += J[i][k] * vx[k]
				}
				near("Jv by blocks", jvb[i], s)
			}
			whole := h.Coef(c)
			for j := range p.M {
				for i := range p.N {
					want := c[i] * p.W[j] * a.Host(z[i*p.M+j], 1)
					near("Coef(c) by blocks", coef[j*p.N+i], want)
					near("Coef(c)", whole[j*p.N+i], want)
				}
			}
			s := 0.0
			for _, x := range vx {
				s += x * x
			}
			near("‖VX‖² by blocks", vxSq, s)
			// Zᵀ after the move −Jᵀδ, from Θ − Jᵀδ.
			delta := v[:p.N]
			moved := make([]float64, p.M*p.N)
			h.Corrected(delta, moved)
			for j := range p.M {
				for i := range p.N {
					s := 0.0
					for c := range p.D {
						th := theta[j*p.D+c]
						for l := range p.N {
							th -= delta[l] * J[l][j*p.D+c]
						}
						s += th * p.X[i*p.D+c]
					}
					near("Zᵀ − Coef(δ)G", moved[j*p.N+i], s)
				}
			}
			vg := h.Net.TimesGram(v, 2, nil)
			for j := range p.M {
				for i := range p.N {
					s := 0.0
					for c := range p.D {
						s += vx[j*p.D+c] * p.X[i*p.D+c]
					}
					near("2VG", vg[j*p.N+i], 2*s)
				}
			}
		}
	}
}

// Corrected rounds the moved features about once: within one unit in the
// last place of an exact evaluation (math/big), where summing the small
// correction terms onto Zᵀ one by one would be off by several.
func TestCorrectedRoundsOnce(t *testing.T) {
	act, _ := NewActivation("cubic", 0.1, 1)
	p, theta := randomProblem(t, 16, 32, 200, act, 3)
	zt := make([]float64, p.M*p.N)
	for j := range p.M {
		for i := range p.N {
			for c := range p.D {
				zt[j*p.N+i] += theta[j*p.D+c] * p.X[i*p.D+c]
			}
		}
	}
	h := NewHostNet(p).Forward(zt)
	rng := rand.New(rand.NewPCG(9, 9))
	a := h.A()
	// δ scaled so that the move is about 1e-3 of Zᵀ, as near the manifold.
	delta, move, size := make([]float64, p.N), 0.0, 0.0
	for i := range delta {
		delta[i] = rng.NormFloat64()
	}
	for j := range p.M {
		for i := range p.N {
			c := 0.0
			for k := range p.N {
				c += a[j*p.N+k] * delta[k] * h.Net.G[k*p.N+i]
			}
			move, size = math.Max(move, math.Abs(c)), math.Max(size, math.Abs(zt[j*p.N+i]))
		}
	}
	for i := range delta {
		delta[i] *= 1e-3 * size / move
	}
	out := make([]float64, p.M*p.N)
	h.Corrected(delta, out)
	worst := 0.0
	for j := range p.M {
		for i := range p.N {
			exact := new(big.Float).SetPrec(300).SetFloat64(zt[j*p.N+i])
			for k := range p.N {
				term := new(big.Float).SetPrec(300).SetFloat64(a[j*p.N+k])
				term.Mul(term, new(big.Float).SetFloat64(delta[k]))
				term.Mul(term, new(big.Float).SetFloat64(h.Net.G[k*p.N+i]))
				exact.Sub(exact, term)
			}
			want, _ := exact.Float64()
			ulp := math.Nextafter(math.Abs(want), math.Inf(1)) - math.Abs(want)
			worst = math.Max(worst, math.Abs(out[j*p.N+i]-want)/ulp)
		}
	}
	if worst > 1 {
		t.Errorf("Corrected is off by up to %.2f ulp from the exact value, want ≤ 1", worst)
	}
}

// The block and per-example views (HostAddOutputs, HostA, HostResiduals:
// the host trainers' blocks and 1-SAM's rows) give HostNet.Forward's bits:
// blocks of 3 rows added into one f, and each example's column alone.
func TestHostBlockViewsMatchForward(t *testing.T) {
	for _, a := range testActivations(t) {
		for _, unit := range []bool{false, true} {
			p, theta := randomProblem(t, 4, 6, 3, a, 17)
			var w []float64
			if unit {
				for j := range p.W {
					p.W[j] = 1
				}
			} else {
				w = p.W
			}
			zt := make([]float64, p.M*p.N)
			HostFeatures(p, p.XT(), theta, zt, 0)
			h := NewHostNet(p).Forward(zt)
			same := func(what string, got, want float64) {
				t.Helper()
				if math.Float64bits(got) != math.Float64bits(want) {
					t.Errorf("%s unit=%v %s: view %.17g, Forward %.17g", a.Name(), unit, what, got, want)
				}
			}
			// Forward's f and A (one fused pass for the cubic) are Phi's
			// values weighed and summed in order of j, by plain loops.
			phi0, phi1 := h.Phi(0), h.Phi(1)
			for i := range p.N {
				s := 0.0
				for j := range p.M {
					s += p.W[j] * phi0[j*p.N+i]
					same("A (Phi(1))", h.A()[j*p.N+i], p.W[j]*phi1[j*p.N+i])
				}
				same("f (Phi(0))", h.F[i], s)
			}
			f, ab, scratch := make([]float64, p.N), make([]float64, p.M*p.N), make([]float64, p.M*p.N)
			for lo := 0; lo < p.M; lo += 3 {
				hi := min(lo+3, p.M)
				var wb []float64
				if w != nil {
					wb = w[lo:hi]
				}
				HostAddOutputs(p.Act, wb, zt[lo*p.N:hi*p.N], scratch, f)
				HostA(p.Act, wb, zt[lo*p.N:hi*p.N], ab[lo*p.N:hi*p.N])
			}
			r := make([]float64, p.N)
			HostResiduals(f, p.Y, r)
			col, acol, out := make([]float64, p.M), make([]float64, p.M), make([]float64, 1)
			for i := range p.N {
				same("f (blocks)", f[i], h.F[i])
				same("r", r[i], h.R[i])
				for j := range p.M {
					col[j] = zt[j*p.N+i]
					same("A (blocks)", ab[j*p.N+i], h.A()[j*p.N+i])
				}
				out[0] = 0
				HostAddOutputs(p.Act, w, col, scratch, out)
				same("f (one example)", out[0], h.F[i])
				HostA(p.Act, w, col, acol)
				for j := range p.M {
					same("A (one example)", acol[j], h.A()[j*p.N+i])
				}
			}
		}
	}
}

// HostJJT against J Jᵀ from J formed explicitly, J_i = Σ_j A_ji e_j ⊗ x_i,
// with AᵀA summed by loops.
func TestHostJJT(t *testing.T) {
	for _, tc := range []struct {
		name    string
		m, n, d int
		a, x    []float64 // A [m, n], X [n, d]
	}{
		{"one neuron", 1, 2, 2, []float64{2, -1}, []float64{1, 0, 0.5, 3}},
		{"orthogonal x", 2, 2, 2, []float64{1, 2, -3, 0.5}, []float64{2, 0, 0, -1}},
		{"general", 3, 3, 2, []float64{0.5, -1, 2, 1, 1, -0.5, 3, 0, 1}, []float64{1, 2, -1, 0.5, 0.3, -2}},
	} {
		g, ata := make([]float64, tc.n*tc.n), make([]float64, tc.n*tc.n)
		for i := range tc.n {
			for k := range tc.n {
				for c := range tc.d {
					g[i*tc.n+k] += tc.x[i*tc.d+c] * tc.x[k*tc.d+c]
				}
				for j := range tc.m {
					ata[i*tc.n+k] += tc.a[j*tc.n+i] * tc.a[j*tc.n+k]
				}
			}
		}
		J := make([][]float64, tc.n) // [n][m·d]
		for i := range tc.n {
			J[i] = make([]float64, tc.m*tc.d)
			for j := range tc.m {
				for c := range tc.d {
					J[i][j*tc.d+c] = tc.a[j*tc.n+i] * tc.x[i*tc.d+c]
				}
			}
		}
		got := HostJJT(g, ata)
		for i := range tc.n {
			for k := range tc.n {
				want := 0.0
				for c := range J[i] {
					want += J[i][c] * J[k][c]
				}
				if math.Abs(got[i*tc.n+k]-want) > 1e-12*(1+math.Abs(want)) {
					t.Errorf("%s: (JJᵀ)_%d%d = %g, explicit J %g", tc.name, i, k, got[i*tc.n+k], want)
				}
			}
		}
	}
}

// AᵀA summed over uneven blocks of rows equals the definition Σ_j a_ji a_jk.
func TestHostAddGramOfColumns(t *testing.T) {
	const m, n = 7, 3
	a := make([]float64, m*n)
	for k := range a {
		a[k] = math.Sin(float64(3*k + 1))
	}
	for _, blocks := range [][]int{{0, 7}, {0, 3, 7}, {0, 1, 2, 6, 7}} {
		ata, part := make([]float64, n*n), make([]float64, n*n)
		for b := 1; b < len(blocks); b++ {
			HostAddGramOfColumns(ata, part, a[blocks[b-1]*n:blocks[b]*n], n)
		}
		for i := range n {
			for k := range n {
				want := 0.0
				for j := range m {
					want += a[j*n+i] * a[j*n+k]
				}
				if math.Abs(ata[i*n+k]-want) > 1e-14 {
					t.Errorf("blocks %v: (AᵀA)_%d%d = %.17g, want %.17g", blocks, i, k, ata[i*n+k], want)
				}
			}
		}
	}
}
