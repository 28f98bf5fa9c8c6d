package linalg

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func randomSlice(r *rand.Rand, k int) []float64 {
	v := make([]float64, k)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

// fmaDot is Σ_t x_t y_t summed in order by math.FMA: the bits MulSquare and
// GramColumns promise on every machine.
func fmaDot(k int, x, y func(t int) float64) float64 {
	acc := 0.0
	for t := range k {
		acc = math.FMA(x(t), y(t), acc)
	}
	return acc
}

// plainDot is the same sum with separate roundings, to bound the error.
func plainDot(k int, x, y func(t int) float64) (sum, abs float64) {
	for t := range k {
		sum += x(t) * y(t)
		abs += math.Abs(x(t) * y(t))
	}
	return sum, abs
}

// The sizes cover the vector widths (32, 16, 4), scalar tails, one row, and
// enough work to be split over goroutines.
var rowSizes = []struct{ rows, n int }{{1, 1}, {3, 3}, {5, 7}, {10, 4}, {64, 17}, {1000, 32}, {300, 53}, {2000, 64}}

func TestMulSquare(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, procs := range []int{1, 2} {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		for _, sz := range rowSizes {
			t.Run(fmt.Sprintf("procs=%d/%dx%d", procs, sz.rows, sz.n), func(t *testing.T) {
				v, b := randomSlice(r, sz.rows*sz.n), randomSlice(r, sz.n*sz.n)
				out := make([]float64, sz.rows*sz.n)
				for _, scale := range []float64{1, -0.5} {
					MulSquare(out, v, b, sz.rows, sz.n, scale)
					for j := range sz.rows {
						for i := range sz.n {
							x := func(k int) float64 { return v[j*sz.n+k] }
							y := func(k int) float64 { return b[k*sz.n+i] }
							want := scale * fmaDot(sz.n, x, y)
							if got := out[j*sz.n+i]; got != want {
								t.Fatalf("scale %v: (%d, %d) = %v, want %v (in-order FMA sum)", scale, j, i, got, want)
							}
							plain, abs := plainDot(sz.n, x, y)
							if d := math.Abs(want - scale*plain); d > 1e-14*math.Abs(scale)*abs*float64(sz.n) {
								t.Fatalf("(%d, %d): %v, plain sum %v", j, i, want, scale*plain)
							}
						}
					}
				}
			})
		}
	}
}

// Mul with inner ≠ cols: the shapes of V Xᵀ (m×d times d×n) among them.
func TestMul(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	sizes := []struct{ rows, inner, cols int }{{1, 1, 1}, {3, 5, 2}, {7, 1, 33}, {64, 3, 17}, {1000, 64, 32}, {301, 20, 53}}
	for _, procs := range []int{1, 2} {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("procs=%d/%dx%dx%d", procs, sz.rows, sz.inner, sz.cols), func(t *testing.T) {
				a, b := randomSlice(r, sz.rows*sz.inner), randomSlice(r, sz.inner*sz.cols)
				out := make([]float64, sz.rows*sz.cols)
				for i := range out {
					out[i] = math.NaN() // every entry must be written
				}
				Mul(out, a, b, sz.rows, sz.inner, sz.cols)
				for j := range sz.rows {
					for i := range sz.cols {
						x := func(k int) float64 { return a[j*sz.inner+k] }
						y := func(k int) float64 { return b[k*sz.cols+i] }
						want := fmaDot(sz.inner, x, y)
						if got := out[j*sz.cols+i]; got != want {
							t.Fatalf("(%d, %d) = %v, want %v (in-order FMA sum)", j, i, got, want)
						}
						plain, abs := plainDot(sz.inner, x, y)
						if d := math.Abs(want - plain); d > 1e-14*abs*float64(sz.inner) {
							t.Fatalf("(%d, %d): %v, plain sum %v", j, i, want, plain)
						}
					}
				}
			})
		}
	}
}

func TestGramColumns(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, procs := range []int{1, 2} {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		for _, sz := range rowSizes {
			t.Run(fmt.Sprintf("procs=%d/%dx%d", procs, sz.rows, sz.n), func(t *testing.T) {
				m, n := sz.rows, sz.n
				a := randomSlice(r, m*n)
				out := make([]float64, n*n)
				for i := range out {
					out[i] = math.NaN() // every entry must be written
				}
				GramColumns(out, a, m, n)
				for i := range n {
					for k := range n {
						x := func(j int) float64 { return a[j*n+min(i, k)] }
						y := func(j int) float64 { return a[j*n+max(i, k)] }
						want := fmaDot(m, x, y)
						if got := out[i*n+k]; got != want {
							t.Fatalf("(%d, %d) = %v, want %v (in-order FMA sum)", i, k, got, want)
						}
						plain, abs := plainDot(m, x, y)
						if d := math.Abs(want - plain); d > 1e-14*abs*float64(m) {
							t.Fatalf("(%d, %d): %v, plain sum %v", i, k, want, plain)
						}
					}
				}
			})
		}
	}
}

// BenchmarkMulSquare and BenchmarkGramColumns time the products of a
// Riemannian step at (m, n) = (1000, 32).
func BenchmarkMulSquare(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	v, g, out := randomSlice(r, 1000*32), randomSlice(r, 32*32), make([]float64, 1000*32)
	for b.Loop() {
		MulSquare(out, v, g, 1000, 32, 1)
	}
}

func BenchmarkGramColumns(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	a, out := randomSlice(r, 1000*32), make([]float64, 32*32)
	for b.Loop() {
		GramColumns(out, a, 1000, 32)
	}
}
