package regularizers

import (
	"fmt"
	"math"
	"sync"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
)

// ProbeWords draws the random words of HutchinsonTraceHessian's probes for
// problem p ([K, W, d] uint32, W = ⌈m/32⌉; see probeWords): what
// HostHutchinson needs to give the graph's estimate for the same rng.
// Drawing only the words keeps the graph tiny (K·W·d words, 80 KB at
// K = 10, (m, d) = (1000, 64)), and GoMLX's generator stays the one source.
func ProbeWords(rng *Node, p *model.Problem, probes int) (newRNG, words *Node) {
	checkProbes(probes)
	return probeWords(rng, probes, p.M, p.D)
}

// HostHutchinson is HutchinsonTraceHessian on the host, for the SimpleGo
// backend, where per-op overhead and generic products dominate the graph:
// at Θ [m, d] (row-major) with the probes' words from ProbeWords, it returns
// the mean of the K quadratic forms
//
//	v_kᵀ(D²L)v_k = 2 Σ_i ((J v_k)_i² + r_i Σ_j w_j φ″(z_ij) P_kji²),  P_k = V_k Xᵀ,
//
// and its standard error, equal to the graph's to rounding. The products
// (Zᵀ = Θ Xᵀ and each P_k, K·m·d·n multiply-adds) are linalg.Mul's
// in-order fused sums, so the result is the same bits on every machine and
// number of cores. net serves one goroutine at a time.
func HostHutchinson(net *model.HostNet, theta []float64, words []uint32, probes int) (estimate, stderr float64) {
	checkProbes(probes)
	p := net.Problem
	m, d, n := p.M, p.D, p.N
	w := (m + probeBits - 1) / probeBits
	if len(theta) != m*d || len(words) != probes*w*d {
		panic(fmt.Sprintf("HostHutchinson: Θ has %d values and the words %d, want %d and %d", len(theta), len(words), m*d, probes*w*d))
	}
	xt := make([]float64, d*n) // Xᵀ [d, n]
	for i := range n {
		for c := range d {
			xt[c*n+i] = p.X[i*d+c]
		}
	}
	zt := net.Take()
	linalg.Mul(zt, theta, xt, m, d, n)
	h := net.Forward(zt)
	a := h.A()
	curv := h.Phi(2) // then w_j φ″, in place
	if !p.UnitWeights() {
		for j := range m {
			for i := range n {
				curv[j*n+i] *= p.W[j]
			}
		}
	}

	// One goroutine per group of probes, the groups sized by the work (not
	// the cores): a probe's form is computed whole by one goroutine, in the
	// same order whatever the grouping, so the result is the same bits.
	quad := make([]float64, probes)
	groups := min(probes, maxProbeGroups, max(1, probes*m*d*n/hostProbeWork))
	var wg sync.WaitGroup
	for g := range groups {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			hostQuadForms(quad[lo:hi], words[lo*w*d:hi*w*d], xt, a, curv, h.R, m, d, n)
		}(g*probes/groups, (g+1)*probes/groups)
	}
	wg.Wait()
	h.Release()
	net.Put(zt)
	return hostMeanAndStderr(quad)
}

// hostProbeWork is the least number of multiply-adds (in P_k = V_k Xᵀ) given
// a goroutine of its own in HostHutchinson: about 0.3 ms, against a start's
// few microseconds.
const hostProbeWork = 1 << 21

// maxProbeGroups bounds HostHutchinson's goroutines (and their buffers).
const maxProbeGroups = 64

// hostQuadForms sets quad[k] = v_kᵀ(D²L)v_k for the probes whose words
// (W = ⌈m/32⌉ rows of d per probe) are given, from Xᵀ [d, n], A, w∘φ″ [m, n]
// and r [n]. Rows are taken W at a time, those of one bit of the words, so
// the buffers stay small (W·(d+n) values) and in cache.
func hostQuadForms(quad []float64, words []uint32, xt, a, curv, r []float64, m, d, n int) {
	w := (m + probeBits - 1) / probeBits
	v := make([]float64, w*d)
	proj := make([]float64, w*n)
	s, t := make([]float64, n), make([]float64, n)
	for k := range quad {
		kw := words[k*w*d : (k+1)*w*d]
		clear(s)
		clear(t)
		// Row j = b·W + r of probe k is bit b of the words [k, r, :]; rows
		// are summed in increasing j, as in one pass over all m.
		for b := range probeBits {
			j0 := b * w
			rows := min(w, m-j0)
			if rows <= 0 {
				break
			}
			for r := range rows {
				vr, wr := v[r*d:(r+1)*d], kw[r*d:(r+1)*d]
				vr = vr[:len(wr)]
				for c, word := range wr { // ±1: 1.0's bits with the sign of a clear bit
					vr[c] = float64(int(word>>uint(b)&1)*2 - 1)
				}
			}
			linalg.Mul(proj[:rows*n], v[:rows*d], xt, rows, d, n)
			for j := 0; j < rows*n; j += n {
				pr, ar, cr := proj[j:j+n], a[j0*n+j:j0*n+j+n], curv[j0*n+j:j0*n+j+n]
				s, t := s[:len(pr)], t[:len(pr)]
				for i, x := range pr {
					s[i] += ar[i] * x
					t[i] += cr[i] * x * x
				}
			}
		}
		q := 0.0
		for i := range s {
			q += s[i]*s[i] + r[i]*t[i]
		}
		quad[k] = 2 * q
	}
}

// hostMeanAndStderr is meanAndStderr on the host: the mean of q and its
// standard error (the sample standard deviation over √K; 0 for K = 1), for
// Hutchinson's and Hutch++'s samples.
func hostMeanAndStderr(q []float64) (mean, stderr float64) {
	for _, v := range q {
		mean += v
	}
	k := float64(len(q))
	mean /= k
	if len(q) < 2 {
		return mean, 0
	}
	variance := 0.0
	for _, v := range q {
		variance += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(variance / (k - 1) / k)
}
