package linalg

import (
	"math"
	"runtime"
	"sync"
)

// combo adds to dst[c] Σ_{t<k} s[t·ss] · b[t·bs + c] for c < len(dst): a
// combination of k rows of b, with coefficients s at stride ss. Each entry is
// accumulated over t in order with fused multiply-adds (one rounding each),
// so the result is the same bits with or without the vector kernels
// (combo32, …), on every machine, whatever the split of the work.
func combo(dst, s []float64, ss int, b []float64, bs, k int) {
	if k == 0 || len(dst) == 0 {
		return
	}
	_ = s[(k-1)*ss]
	_ = b[(k-1)*bs+len(dst)-1]
	c := 0
	if useVector {
		for ; c+32 <= len(dst); c += 32 {
			combo32(&dst[c], &s[0], ss, &b[c], bs, k)
		}
		for ; c+16 <= len(dst); c += 16 {
			combo16(&dst[c], &s[0], ss, &b[c], bs, k)
		}
		for ; c+4 <= len(dst); c += 4 {
			combo4(&dst[c], &s[0], ss, &b[c], bs, k)
		}
	}
	for ; c < len(dst); c++ {
		acc := dst[c]
		for t := range k {
			acc = math.FMA(s[t*ss], b[t*bs+c], acc)
		}
		dst[c] = acc
	}
}

// combo2 is combo for two rows, d0 from s0 and d1 from s1, with the same b:
// the wide kernel shares each load of b between them.
func combo2(d0, d1, s0, s1 []float64, ss int, b []float64, bs, k int) {
	c := 0
	if useWide && k > 0 {
		_ = s0[(k-1)*ss]
		_ = s1[(k-1)*ss]
		_ = d1[len(d0)-1]
		_ = b[(k-1)*bs+len(d0)-1]
		for ; c+32 <= len(d0); c += 32 {
			combo2x32(&d0[c], &d1[c], &s0[0], &s1[0], ss, &b[c], bs, k)
		}
	}
	if c < len(d0) {
		combo(d0[c:], s0, ss, b[c:], bs, k)
		combo(d1[c:], s1, ss, b[c:], bs, k)
	}
}

// parallelWork is the least number of multiply-adds worth splitting over
// goroutines (a start costs microseconds).
const parallelWork = 1 << 17

// parallelRows runs do(lo, hi) over [0, rows) split in contiguous parts of
// about equal cost (cost(lo, hi), in multiply-adds), one per core, when the
// work is large enough. Every row is computed whole by one call, so the split
// changes no bits.
func parallelRows(rows int, cost func(lo, hi int) int, do func(lo, hi int)) {
	parts := runtime.GOMAXPROCS(0)
	total := cost(0, rows)
	if parts < 2 || rows < 2 || total < parallelWork {
		do(0, rows)
		return
	}
	parts = min(parts, rows, total/(parallelWork/2))
	var wg sync.WaitGroup
	lo := 0
	for p := 1; p <= parts && lo < rows; p++ {
		hi := rows
		if p < parts { // the first row where the cost so far reaches p/parts of the total
			hi = lo + 1
			for hi < rows && cost(0, hi)*parts < total*p {
				hi++
			}
		}
		if hi == rows {
			do(lo, hi)
			break
		}
		wg.Add(1)
		go func(lo, hi int) { defer wg.Done(); do(lo, hi) }(lo, hi)
		lo = hi
	}
	wg.Wait()
}

// MulSquare sets out = scale · V B for V [rows, n] and B [n, n], all
// row-major; out must not alias V or B. Each entry is summed over k in order
// with fused multiply-adds (then scaled), so the result does not depend on
// the machine or the number of cores.
func MulSquare(out, v, b []float64, rows, n int, scale float64) {
	if len(v) != rows*n || len(out) != rows*n || len(b) != n*n {
		panic("linalg: MulSquare sizes")
	}
	parallelRows(rows, func(lo, hi int) int { return (hi - lo) * n * n }, func(lo, hi int) {
		clear(out[lo*n : hi*n])
		j := lo
		for ; j+2 <= hi; j += 2 {
			combo2(out[j*n:(j+1)*n], out[(j+1)*n:(j+2)*n], v[j*n:(j+1)*n], v[(j+1)*n:(j+2)*n], 1, b, n, n)
		}
		if j < hi {
			combo(out[j*n:(j+1)*n], v[j*n:(j+1)*n], 1, b, n, n)
		}
		if scale != 1 {
			for k := lo * n; k < hi*n; k++ {
				out[k] *= scale
			}
		}
	})
}

// gramBlock is how many rows of A GramColumns passes over at once: 64 rows
// of 32 columns (16 KB) stay in the level-1 cache while every output row
// takes their contribution.
const gramBlock = 64

// GramColumns sets out [n, n] = Aᵀ A for A [m, n] row-major: entry (i, k)
// is Σ_j A_ji A_jk accumulated over j in order with fused multiply-adds (in
// blocks of rows of A, which does not change the order), the same on every
// machine, whatever the number of cores. Whole rows are computed (twice the
// arithmetic of one triangle, but in the widest kernels); (i, k) and (k, i)
// sum the same products in the same order, so out is exactly symmetric.
func GramColumns(out, a []float64, m, n int) {
	if len(a) != m*n || len(out) != n*n {
		panic("linalg: GramColumns sizes")
	}
	clear(out)
	parallelRows(n, func(lo, hi int) int { return (hi - lo) * n * m }, func(lo, hi int) {
		for j0 := 0; j0 < m; j0 += gramBlock {
			rows := min(gramBlock, m-j0)
			blk := a[j0*n : (j0+rows)*n]
			i := lo
			for ; i+2 <= hi; i += 2 {
				combo2(out[i*n:(i+1)*n], out[(i+1)*n:(i+2)*n], blk[i:], blk[i+1:], n, blk, n, rows)
			}
			if i < hi {
				combo(out[i*n:(i+1)*n], blk[i:], n, blk, n, rows)
			}
		}
	})
}

// Mul sets out = A B for A [rows, inner] and B [inner, cols], all row-major;
// out must not alias A or B. Each entry is summed over the inner index in
// order with fused multiply-adds, so the result does not depend on the
// machine or the number of cores.
func Mul(out, a, b []float64, rows, inner, cols int) {
	if len(a) != rows*inner || len(b) != inner*cols || len(out) != rows*cols {
		panic("linalg: Mul sizes")
	}
	parallelRows(rows, func(lo, hi int) int { return (hi - lo) * inner * cols }, func(lo, hi int) {
		clear(out[lo*cols : hi*cols])
		j := lo
		for ; j+2 <= hi; j += 2 {
			combo2(out[j*cols:(j+1)*cols], out[(j+1)*cols:(j+2)*cols], a[j*inner:(j+1)*inner], a[(j+1)*inner:(j+2)*inner], 1, b, cols, inner)
		}
		if j < hi {
			combo(out[j*cols:(j+1)*cols], a[j*inner:(j+1)*inner], 1, b, cols, inner)
		}
	})
}
