package stats

import (
	"math"
	"testing"
)

// Quantile is NumPy's default (linear, type 7): the values below are
// numpy.percentile's, worked by hand from its definition.
func TestQuantileMatchesNumPy(t *testing.T) {
	cases := []struct {
		x    []float64
		p    float64
		want float64
	}{
		{[]float64{3, 1, 4, 1, 5, 9, 2, 6}, 0.25, 1.75}, // sorted 1 1 2 3 4 5 6 9, h = 1.75
		{[]float64{3, 1, 4, 1, 5, 9, 2, 6}, 0.5, 3.5},
		{[]float64{3, 1, 4, 1, 5, 9, 2, 6}, 0.75, 5.25},
		{[]float64{3, 1, 4, 1, 5, 9, 2, 6}, 0, 1},
		{[]float64{3, 1, 4, 1, 5, 9, 2, 6}, 1, 9},
		{[]float64{10, 20, 30, 40, 50}, 0.25, 20},
		{[]float64{10, 20, 30, 40, 50}, 0.75, 40},
		{[]float64{1, 2}, 0.25, 1.25},
		{[]float64{7}, 0.25, 7},
		{[]float64{2, 4, 4, 8}, 0.5, 4},
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.37, 3.7},
	}
	for _, c := range cases {
		if got := Quantile(c.x, c.p); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Quantile(%v, %v) = %v, want %v", c.x, c.p, got, c.want)
		}
	}
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("quantile of no values is not NaN")
	}
	// Brute force: the quantile at p is the p-th fraction of the way along
	// the sorted values' piecewise-linear interpolant, which a fine walk
	// over its segments finds.
	x := []float64{0.3, -2, 7.5, 7.5, 1e-3, 4, 11, -0.5, 2}
	sorted := []float64{-2, -0.5, 1e-3, 0.3, 2, 4, 7.5, 7.5, 11}
	for _, p := range []float64{0.1, 0.25, 0.5, 0.6, 0.75, 0.99} {
		pos := p * float64(len(sorted)-1)
		var want float64
		for k := 0; k+1 < len(sorted); k++ {
			if float64(k) <= pos && pos <= float64(k+1) {
				want = sorted[k]*(float64(k+1)-pos) + sorted[k+1]*(pos-float64(k))
				break
			}
		}
		if got := Quantile(x, p); math.Abs(got-want) > 1e-12 {
			t.Errorf("Quantile(%v) = %v, interpolant %v", p, got, want)
		}
	}
}
