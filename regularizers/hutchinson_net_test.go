package regularizers

import (
	"fmt"
	"math"
	"testing"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The structured estimator draws the generic one's probes: for the same rng
// both give the same estimate, standard error and new RNG state, for every
// activation, non-unit w, Θ off the manifold (r ≠ 0), neuron counts that do
// and do not fill the 32-row words, and both layouts of the forward.
func TestHutchinsonTraceHessianMatchesGeneric(t *testing.T) {
	b := testBackend(t)
	sizes := []struct{ n, m, d, probes int }{
		{1, 1, 1, 1}, {3, 5, 2, 3}, {4, 32, 3, 4}, {6, 33, 7, 5}, {2, 70, 4, 2}, {5, 9, 1, 8},
	}
	for _, act := range activations(t) {
		for si, sz := range sizes {
			for _, onM := range []bool{false, true} {
				name := fmt.Sprintf("%s/n=%d,m=%d,d=%d,K=%d,onM=%v", act.Name(), sz.n, sz.m, sz.d, sz.probes, onM)
				p, theta := testProblem(t, b, act, sz.n, sz.m, sz.d, uint64(10+si), onM)
				rng, _ := RNGStateFromSeed(int64(7 + si))
				out := MustExecOnceN(b, func(th, rng *Node) []*Node {
					net := model.NewNet(th.Graph(), p)
					fw := net.Forward(th)
					r1, e1, s1 := HutchinsonTraceHessian(fw, rng, sz.probes)
					_, e2, s2 := HutchinsonTraceHessian(net.ForwardFeatures(Transpose(fw.Z, 0, 1)), rng, sz.probes)
					r3, e3, s3 := Hutchinson(func(x *Node) *Node { return net.Forward(x).Loss() }, th, rng, sz.probes)
					return []*Node{e1, s1, e2, s2, e3, s3, r1, r3, fw.Loss()}
				}, theta, rng)
				got := make([]float64, 6)
				for i := range got {
					got[i] = tensors.ToScalar[float64](out[i])
				}
				if !onM && tensors.ToScalar[float64](out[8]) < 1e-6 {
					t.Fatalf("%s: Θ should be off the manifold", name)
				}
				scale := math.Abs(got[4]) + got[5]
				for i, what := range []string{"estimate (Θ layout)", "stderr (Θ layout)", "estimate (features)", "stderr (features)"} {
					want := got[4+i%2]
					if math.Abs(got[i]-want) > 1e-10*scale {
						t.Errorf("%s: %s %.15g, generic Hutchinson %.15g", name, what, got[i], want)
					}
				}
				if sz.probes == 1 && got[1] != 0 {
					t.Errorf("%s: stderr %g with one probe", name, got[1])
				}
				if r1, r3 := tensors.MustCopyFlatData[uint64](out[6]), tensors.MustCopyFlatData[uint64](out[7]); fmt.Sprint(r1) != fmt.Sprint(r3) {
					t.Errorf("%s: new RNG state %v, generic's %v", name, r1, r3)
				}
			}
		}
	}
}

// Over many probes the mean of the quadratic forms is the exact trace, and
// the reported standard error is the spread actually seen.
func TestHutchinsonTraceHessianUnbiased(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t) {
		p, theta := testProblem(t, b, act, 4, 37, 3, 21, false)
		const probes, seeds = 64, 60
		exec := MustNewExec(b, func(th, rng *Node) []*Node {
			fw := model.NewNet(th.Graph(), p).Forward(th)
			newRNG, est, se := HutchinsonTraceHessian(fw, rng, probes)
			return []*Node{newRNG, est, se, TraceHessian(fw)}
		})
		rng, _ := RNGStateFromSeed(99)
		var exact, sum, sumSq, sumSE float64
		for range seeds {
			out := exec.MustExec(theta, rng)
			rng = out[0]
			est, se := tensors.ToScalar[float64](out[1]), tensors.ToScalar[float64](out[2])
			exact = tensors.ToScalar[float64](out[3])
			sum += est
			sumSq += (est - exact) * (est - exact)
			sumSE += se
		}
		rms, meanSE := math.Sqrt(sumSq/seeds), sumSE/seeds
		if rms < meanSE/1.5 || rms > 1.5*meanSE {
			t.Errorf("%s: RMS error %g over %d estimates, mean reported stderr %g", act.Name(), rms, seeds, meanSE)
		}
		// The mean of seeds·probes quadratic forms: its standard error is rms/√seeds.
		if bias := math.Abs(sum/seeds - exact); bias > 4*rms/math.Sqrt(seeds) {
			t.Errorf("%s: mean estimate %g, exact trace %g: off by %g, more than 4 standard errors (%g)",
				act.Name(), sum/seeds, exact, bias, rms/math.Sqrt(seeds))
		}
	}
}

// The probes are Rademacher: entries ±1, each fair, distinct entries
// uncorrelated (E[v vᵀ] = I), including entries that share a random word.
func TestRademacherProbes(t *testing.T) {
	b := testBackend(t)
	const probes = 20000
	for _, dims := range [][]int{{}, {5}, {33, 2}, {2, 3, 4}} {
		rng, _ := RNGStateFromSeed(5)
		v := MustExecOnce(b, func(rng *Node) *Node {
			_, v := rademacherProbes(rng, probes, dims, dtypes.Float64)
			return v
		}, rng)
		flat := tensors.MustCopyFlatData[float64](v)
		size := len(flat) / probes
		mean := make([]float64, size)
		cov := make([]float64, size*size)
		for k := range probes {
			row := flat[k*size : (k+1)*size]
			for a, x := range row {
				if x != 1 && x != -1 {
					t.Fatalf("dims %v: entry %g", dims, x)
				}
				mean[a] += x / probes
				for c, y := range row {
					cov[a*size+c] += x * y / probes
				}
			}
		}
		tol := 5 / math.Sqrt(probes)
		for a := range size {
			if math.Abs(mean[a]) > tol {
				t.Errorf("dims %v: entry %d has mean %g", dims, a, mean[a])
			}
			for c := range size {
				if c != a && math.Abs(cov[a*size+c]) > tol {
					t.Errorf("dims %v: entries %d and %d correlate, E[v_a v_c] = %g", dims, a, c, cov[a*size+c])
				}
			}
		}
	}
}
