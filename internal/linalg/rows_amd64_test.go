//go:build amd64 && !noasm

package linalg

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The scalar loop (machines without AVX2 and FMA), the AVX2 kernels and the
// AVX-512 one give the same bits.
func TestKernelsMatchScalar(t *testing.T) {
	if !useVector {
		t.Skip("no AVX2 and FMA here: only the scalar loop runs")
	}
	defer func(v, w bool) { useVector, useWide = v, w }(useVector, useWide)
	modes := []struct {
		name         string
		vector, wide bool
	}{{"scalar", false, false}, {"avx2", true, false}, {"avx512", true, useWide}}
	r := rand.New(rand.NewPCG(7, 8))
	for _, sz := range rowSizes {
		t.Run(fmt.Sprintf("%dx%d", sz.rows, sz.n), func(t *testing.T) {
			v, b := randomSlice(r, sz.rows*sz.n), randomSlice(r, sz.n*sz.n)
			var prod, gram []float64
			for _, md := range modes {
				useVector, useWide = md.vector, md.wide
				p, g := make([]float64, sz.rows*sz.n), make([]float64, sz.n*sz.n)
				MulSquare(p, v, b, sz.rows, sz.n, 1)
				GramColumns(g, v, sz.rows, sz.n)
				if prod == nil {
					prod, gram = p, g
					continue
				}
				for k := range p {
					if p[k] != prod[k] {
						t.Fatalf("%s: V B[%d] = %v, scalar %v", md.name, k, p[k], prod[k])
					}
				}
				for k := range g {
					if g[k] != gram[k] {
						t.Fatalf("%s: AᵀA[%d] = %v, scalar %v", md.name, k, g[k], gram[k])
					}
				}
			}
		})
	}
}
