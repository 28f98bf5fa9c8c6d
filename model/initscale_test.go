package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// At the automatic scale the outputs' mean square over many random Θ₀
// matches the labels' (a Monte Carlo check of the quadrature), at any width.
func TestAutoInitScaleMatchesLabels(t *testing.T) {
	for _, tc := range []struct {
		act    string
		nu     float64
		m      int
		labels string
		w      bool
	}{
		{"cubic", 0.1, 10, "uniform:0.5,1", false},
		{"cubic", 0.1, 1000, "uniform:0.5,1", false},
		{"cubic", 0.05, 100, "uniform:0.1,0.5", true},
		{"odd", 0.5, 30, "normal:0,2", false},
		{"tanh", 0, 50, "uniform:0.5,1", false},
	} {
		act, err := NewActivation(tc.act, tc.nu, 2)
		if err != nil {
			t.Fatal(err)
		}
		spec, _ := ParseLabels(tc.labels)
		x, y, err := Synthetic(6, 8, spec, act, 3)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range x { // non-unit rows
			x[i] *= 0.5 + float64(i/8)*0.3
		}
		var w []float64
		if tc.w {
			w = make([]float64, tc.m)
			for j := range w {
				w[j] = rng.NormFloat64()
			}
		}
		p, err := NewProblem(x, 6, 8, y, w, tc.m, act)
		if err != nil {
			t.Fatal(err)
		}
		s, ok := AutoInitScale(p)
		if !ok || !(s > 0) {
			t.Fatalf("%+v: scale %v ok %v", tc, s, ok)
		}
		want := 0.0
		for _, v := range y {
			want += v * v
		}
		want /= 6
		const draws = 1500
		got := 0.0
		for k := range draws {
			theta := InitTheta(p.M, p.D, s, uint64(k+10))
			for i := range p.N {
				f := 0.0
				for j := range p.M {
					z := 0.0
					for c := range p.D {
						z += theta[j*p.D+c] * x[i*p.D+c]
					}
					f += p.W[j] * act.Host(z, 0)
				}
				got += f * f
			}
		}
		got /= draws * 6
		if math.Abs(got/want-1) > 0.1 {
			t.Errorf("%+v: scale %.4g gives mean f² %.4g, labels' mean y² %.4g", tc, s, got, want)
		}
	}
}

func TestAutoInitScaleZeroLabels(t *testing.T) {
	act, _ := NewActivation("cubic", 0.1, 1)
	p, _ := NewProblem([]float64{1, 0, 0, 1}, 2, 2, []float64{0, 0}, nil, 3, act)
	if _, ok := AutoInitScale(p); ok {
		t.Error("all-zero labels have no scale to match")
	}
}
