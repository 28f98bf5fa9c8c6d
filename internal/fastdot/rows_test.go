package fastdot

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// hostProduct is a·b (bAxis 0) or a·bᵀ (bAxis 1) by loops.
func hostProduct(a []float64, m, k int, b []float64, bDims []int, bAxis int) []float64 {
	cols := bDims[1-bAxis]
	out := make([]float64, m*cols)
	for i := range m {
		for c := range cols {
			s := 0.0
			for l := range k {
				if bAxis == 0 {
					s += a[i*k+l] * b[l*bDims[1]+c]
				} else {
					s += a[i*k+l] * b[c*bDims[1]+l]
				}
			}
			out[i*cols+c] = s
		}
	}
	return out
}

// Each shape takes one branch of RowsContract (tiny, skinny, one product,
// row blocks) or InputRowsContract (blocks sliced out); all must be the
// plain product, and SkinnyOrDot too.
func TestRowProductsMatchLoops(t *testing.T) {
	b := newBackend(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, c := range []struct{ m, k, cols int }{
		{4, 3, 5},     // tiny
		{600, 3, 4},   // skinny
		{40, 30, 30},  // one product
		{1024, 9, 64}, // row blocks
		{2000, 16, 16},
		{997, 20, 12}, // prime m: no split
	} {
		for _, bAxis := range []int{0, 1} {
			t.Run(fmt.Sprintf("%dx%dx%d/axis%d", c.m, c.k, c.cols, bAxis), func(t *testing.T) {
				bDims := []int{c.k, c.cols}
				if bAxis == 1 {
					bDims = []int{c.cols, c.k}
				}
				at, bt := randTensor(rng, c.m, c.k), randTensor(rng, bDims...)
				want := hostProduct(tensors.MustCopyFlatData[float64](at), c.m, c.k, tensors.MustCopyFlatData[float64](bt), bDims, bAxis)
				outs := graph.MustExecOnceN(b, func(a, bn *graph.Node) []*graph.Node {
					out := []*graph.Node{RowsContract(a, bn, bAxis), InputRowsContract(a, bn, bAxis)}
					if bAxis == 0 {
						out = append(out, RowsTimes(a, bn), SkinnyOrDot(a, bn))
					}
					return out
				}, at, bt)
				for o, out := range outs {
					got := tensors.MustCopyFlatData[float64](out)
					for k := range want {
						if math.Abs(got[k]-want[k]) > 1e-12*(1+math.Abs(want[k])) {
							t.Fatalf("output %d [%d]: %.15g, loops %.15g", o, k, got[k], want[k])
						}
					}
				}
			})
		}
	}
}
