package model

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func randomSlice(rng *rand.Rand, k int) []float64 {
	v := make([]float64, k)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// exactMove returns params − A·C for entry (j, l), exactly rounded (big.Float).
func exactMove(params, a, c []float64, k, cols, j, l int) float64 {
	s := new(big.Float).SetPrec(400).SetFloat64(params[j*cols+l])
	for i := range k {
		t := new(big.Float).SetPrec(400).SetFloat64(a[j*k+i])
		t.Mul(t, new(big.Float).SetFloat64(c[i*cols+l]))
		s.Sub(s, t)
	}
	v, _ := s.Float64()
	return v
}

// HostSubtractProduct in each order against the exact move, at sizes that
// take its loops and its Gemm; the ProductFirst entries are also the bits of
// their definition (an in-order fused sum, then one subtraction), and the
// accumulating orders work in place or from a copy alike.
func TestHostSubtractProduct(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	for _, sz := range [][3]int{{7, 3, 5}, {200, 16, 24}, {1, 1, 1}} {
		rows, k, cols := sz[0], sz[1], sz[2]
		params, a, c := randomSlice(rng, rows*cols), randomSlice(rng, rows*k), randomSlice(rng, k*cols)
		for _, order := range []MoveOrder{ProductFirst, Accumulate, AccumulateLoops} {
			out := make([]float64, rows*cols)
			HostSubtractProduct(out, params, a, c, rows, k, cols, order)
			for j := range rows {
				for l := range cols {
					want := exactMove(params, a, c, k, cols, j, l)
					scale := math.Abs(params[j*cols+l])
					for i := range k {
						scale += math.Abs(a[j*k+i] * c[i*cols+l])
					}
					if got := out[j*cols+l]; math.Abs(got-want) > 4*float64(k+1)*0x1p-52*scale {
						t.Fatalf("%v order %d (%d,%d): %.17g, exact %.17g", sz, order, j, l, got, want)
					}
					if order == ProductFirst {
						s := 0.0
						for i := range k {
							s = math.FMA(a[j*k+i], c[i*cols+l], s)
						}
						if got, want := out[j*cols+l], params[j*cols+l]-s; got != want {
							t.Fatalf("%v ProductFirst (%d,%d): %.17g, its definition %.17g", sz, j, l, got, want)
						}
					}
				}
			}
			if order == ProductFirst {
				continue
			}
			inPlace := append([]float64(nil), params...)
			HostSubtractProduct(inPlace, inPlace, a, c, rows, k, cols, order)
			for i := range out {
				if inPlace[i] != out[i] {
					t.Fatalf("%v order %d: in place %.17g, from a copy %.17g", sz, order, inPlace[i], out[i])
				}
			}
		}
	}
}

// HostMoveBy, HostScaleRows and HostDot against their definitions.
func TestHostMoveByScaleRowsDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 7))
	params, u := randomSlice(rng, 12), randomSlice(rng, 12)
	for _, s := range []float64{1, -0.37} {
		out := append([]float64(nil), u...)
		HostMoveBy(out, params, out, s) // out aliases u
		for k := range out {
			if want := params[k] - s*u[k]; out[k] != want {
				t.Errorf("HostMoveBy s=%g [%d]: %g, want %g", s, k, out[k], want)
			}
		}
	}
	c, r := randomSlice(rng, 3), randomSlice(rng, 12)
	out := make([]float64, 12)
	HostScaleRows(c, r, out)
	for i := range 3 {
		for l := range 4 {
			if want := c[i] * r[i*4+l]; out[i*4+l] != want {
				t.Errorf("HostScaleRows (%d,%d): %g, want %g", i, l, out[i*4+l], want)
			}
		}
	}
	exact := new(big.Float).SetPrec(400)
	for k := range params {
		t := new(big.Float).SetPrec(400).SetFloat64(params[k])
		exact.Add(exact, t.Mul(t, new(big.Float).SetFloat64(u[k])))
	}
	want, _ := exact.Float64()
	if got := HostDot(params, u); math.Abs(got-want) > 1e-14*(1+math.Abs(want)) {
		t.Errorf("HostDot %.17g, exact %.17g", got, want)
	}
}

// Velocity: u = V G and ‖VX‖², from VX [m, d] formed explicitly.
func TestHostVelocity(t *testing.T) {
	act, _ := NewActivation("cubic", 0.1, 1)
	p, _ := randomProblem(t, 5, 7, 4, act, 11)
	net := NewHostNet(p)
	rng := rand.New(rand.NewPCG(8, 9))
	v := randomSlice(rng, p.M*p.N)
	u := make([]float64, p.M*p.N)
	got := net.Velocity(v, u)
	want := 0.0
	for j := range p.M {
		for c := range p.D {
			vx := 0.0
			for i := range p.N {
				vx += v[j*p.N+i] * p.X[i*p.D+c]
			}
			want += vx * vx
		}
		for i := range p.N {
			vg := 0.0
			for k := range p.N {
				for c := range p.D {
					vg += v[j*p.N+k] * p.X[k*p.D+c] * p.X[i*p.D+c]
				}
			}
			if math.Abs(u[j*p.N+i]-vg) > 1e-12*(1+math.Abs(vg)) {
				t.Errorf("V G (%d,%d): %g, want %g", j, i, u[j*p.N+i], vg)
			}
		}
	}
	if math.Abs(got-want) > 1e-12*want {
		t.Errorf("‖VX‖² %.15g, from VX %.15g", got, want)
	}
}
