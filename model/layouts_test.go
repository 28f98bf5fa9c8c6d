package model

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// hostZ is z_ij = θ_j·x_i by loops.
func hostZ(p *Problem, theta []float64, i, j int) float64 {
	z := 0.0
	for c := range p.D {
		z += theta[j*p.D+c] * p.X[i*p.D+c]
	}
	return z
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-11*(1+math.Abs(want)) {
		t.Errorf("%s: %.15g, want %.15g", what, got, want)
	}
}

// Z in its three shapes (example-major, neuron-major, some rows), and V G,
// against loops; sizes large enough for the blocked products.
func TestFeaturesInBothLayouts(t *testing.T) {
	b := testBackend(t)
	act, _ := NewActivation("cubic", 0, 1)
	for _, size := range []struct{ n, m, d int }{{3, 5, 2}, {12, 3000, 10}} {
		p, theta := randomProblem(t, size.n, size.m, size.d, act, 4)
		rng := rand.New(rand.NewPCG(8, 9))
		v := make([]float64, p.M*p.N)
		for k := range v {
			v[k] = rng.NormFloat64()
		}
		idx := []int32{2, 0, 2}
		outs := MustExecOnceN(b, func(th, vn, ix *Node) []*Node {
			net := NewNet(th.Graph(), p)
			return []*Node{net.Features(th), net.FeaturesT(th), net.RowFeatures(th, ix), net.TimesGram(vn)}
		}, thetaTensor(p, theta), tensors.FromFlatDataAndDimensions(v, p.M, p.N), tensors.FromFlatDataAndDimensions(idx, len(idx)))
		z, zt, rows, vg := tensors.MustCopyFlatData[float64](outs[0]), tensors.MustCopyFlatData[float64](outs[1]),
			tensors.MustCopyFlatData[float64](outs[2]), tensors.MustCopyFlatData[float64](outs[3])
		for i := range p.N {
			for j := range p.M {
				want := hostZ(p, theta, i, j)
				near(t, "Z", z[i*p.M+j], want)
				near(t, "Zᵀ", zt[j*p.N+i], want)
				// (V G)_ji = Σ_k v_jk x_k·x_i.
				s := 0.0
				for k := range p.N {
					g := 0.0
					for c := range p.D {
						g += p.X[k*p.D+c] * p.X[i*p.D+c]
					}
					s += v[j*p.N+k] * g
				}
				near(t, "VG", vg[j*p.N+i], s)
			}
		}
		for r, i := range idx {
			for j := range p.M {
				near(t, "row features", rows[r*p.M+j], hostZ(p, theta, int(i), j))
			}
		}
		if t.Failed() {
			return
		}
	}
}

// ForwardRows on some examples' pre-activations: F, R and A by loops, and
// LossCoef = ∂L/∂Z by autodiff, as ForwardFeatures's LossCoef.
func TestForwardRowsAndLossCoef(t *testing.T) {
	b := testBackend(t)
	for _, act := range testActivations(t) {
		p, theta := randomProblem(t, 4, 5, 3, act, 13)
		idx := []int32{3, 1, 3}
		zb := make([]float64, len(idx)*p.M)
		yb := make([]float64, len(idx))
		for r, i := range idx {
			yb[r] = p.Y[i]
			for j := range p.M {
				zb[r*p.M+j] = hostZ(p, theta, int(i), j)
			}
		}
		zt := make([]float64, p.M*p.N)
		for j := range p.M {
			for i := range p.N {
				zt[j*p.N+i] = hostZ(p, theta, i, j)
			}
		}
		outs := MustExecOnceN(b, func(z, y, ztn *Node) []*Node {
			net := NewNet(z.Graph(), p)
			fw := net.ForwardRows(z, y)
			fwt := net.ForwardFeatures(ztn)
			return []*Node{fw.F, fw.R, fw.A(), fw.LossCoef(), Gradient(fw.Loss(), z)[0],
				fwt.LossCoef(), Gradient(fwt.Loss(), ztn)[0]}
		}, tensors.FromFlatDataAndDimensions(zb, len(idx), p.M), tensors.FromFlatDataAndDimensions(yb, len(idx)),
			tensors.FromFlatDataAndDimensions(zt, p.M, p.N))
		f, r, a := tensors.MustCopyFlatData[float64](outs[0]), tensors.MustCopyFlatData[float64](outs[1]), tensors.MustCopyFlatData[float64](outs[2])
		for k := range idx {
			want := 0.0
			for j := range p.M {
				want += p.W[j] * act.Host(zb[k*p.M+j], 0)
				near(t, act.Name()+" A", a[k*p.M+j], p.W[j]*act.Host(zb[k*p.M+j], 1))
			}
			near(t, act.Name()+" f", f[k], want)
			near(t, act.Name()+" r", r[k], want-yb[k])
		}
		for _, pair := range [][2]int{{3, 4}, {5, 6}} {
			got, auto := tensors.MustCopyFlatData[float64](outs[pair[0]]), tensors.MustCopyFlatData[float64](outs[pair[1]])
			for k := range auto {
				near(t, act.Name()+" ∂L/∂Z", got[k], auto[k])
			}
		}
	}
}

// A neuron-major forward's directions are coefficients V standing for V X:
// its Jv(V) must equal J (V X), and its JTc(c) and LossGrad, taken along X,
// Jᵀc and ∇L, with J and ∇L from autodiff over Θ.
func TestNeuronMajorDirections(t *testing.T) {
	b := testBackend(t)
	act, _ := NewActivation("odd", 0.1, 2)
	p, theta := randomProblem(t, 4, 6, 3, act, 17)
	rng := rand.New(rand.NewPCG(5, 5))
	v := make([]float64, p.M*p.N)
	for k := range v {
		v[k] = rng.NormFloat64()
	}
	c := []float64{0.3, -1.2, 0.7, 2}
	outs := MustExecOnceN(b, func(th, vn, cn *Node) []*Node {
		net := NewNet(th.Graph(), p)
		fwt := net.ForwardFeatures(net.FeaturesT(th))
		fw := net.Forward(th)
		out := []*Node{fwt.Jv(vn), fwt.JTc(cn), fwt.LossGrad(), Gradient(fw.Loss(), th)[0]}
		for i := range p.N {
			out = append(out, Gradient(ReduceAllSum(Mul(fw.F, OneHot(Const(th.Graph(), int32(i)), p.N, fw.F.DType()))), th)[0])
		}
		return out
	}, thetaTensor(p, theta), tensors.FromFlatDataAndDimensions(v, p.M, p.N), tensors.FromFlatDataAndDimensions(c, p.N))
	// alongX returns V X [m, d] for V [m, n].
	alongX := func(v []float64) []float64 {
		out := make([]float64, p.M*p.D)
		for j := range p.M {
			for col := range p.D {
				for k := range p.N {
					out[j*p.D+col] += v[j*p.N+k] * p.X[k*p.D+col]
				}
			}
		}
		return out
	}
	jv := tensors.MustCopyFlatData[float64](outs[0])
	jtc := alongX(tensors.MustCopyFlatData[float64](outs[1]))
	grad := alongX(tensors.MustCopyFlatData[float64](outs[2]))
	auto := tensors.MustCopyFlatData[float64](outs[3])
	J := make([][]float64, p.N)
	for i := range p.N {
		J[i] = tensors.MustCopyFlatData[float64](outs[4+i])
	}
	vx := alongX(v)
	for i := range p.N {
		s := 0.0
		for k := range vx {
			s += J[i][k] * vx[k]
		}
		near(t, "J(VX)", jv[i], s)
	}
	for k := range auto {
		s := 0.0
		for i := range p.N {
			s += J[i][k] * c[i]
		}
		near(t, "Jᵀc", jtc[k], s)
		near(t, "∇L", grad[k], auto[k])
	}
}
