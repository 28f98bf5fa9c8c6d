package regularizers

import (
	"fmt"
	"math"
	"testing"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The host estimator, given the words ProbeWords draws, gives the graph
// estimator's estimate and standard error for the same rng (to rounding),
// and ProbeWords advances the RNG as the graph does: every activation,
// non-unit rows and w, on and off the manifold, neuron counts that do and
// do not fill the 32-row words, one probe and several.
func TestHostHutchinsonMatchesGraph(t *testing.T) {
	b := testBackend(t)
	sizes := []struct{ n, m, d, probes int }{
		{1, 1, 1, 1}, {3, 5, 2, 3}, {4, 32, 3, 4}, {6, 33, 7, 5}, {5, 9, 1, 8}, {32, 200, 64, 10}, {17, 70, 40, 3},
	}
	for _, act := range activations(t) {
		for si, sz := range sizes {
			for _, onM := range []bool{false, true} {
				name := fmt.Sprintf("%s/n=%d,m=%d,d=%d,K=%d,onM=%v", act.Name(), sz.n, sz.m, sz.d, sz.probes, onM)
				p, theta := testProblem(t, b, act, sz.n, sz.m, sz.d, uint64(30+si), onM)
				rng, _ := RNGStateFromSeed(int64(3 + si))
				out := MustExecOnceN(b, func(th, rng *Node) []*Node {
					fw := model.NewNet(th.Graph(), p).Forward(th)
					r1, est, se := HutchinsonTraceHessian(fw, rng, sz.probes)
					r2, words := ProbeWords(rng, p, sz.probes)
					return []*Node{est, se, r1, r2, words, fw.Loss()}
				}, theta, rng)
				if !onM && tensors.ToScalar[float64](out[5]) < 1e-6 {
					t.Fatalf("%s: Θ should be off the manifold", name)
				}
				if r1, r2 := tensors.MustCopyFlatData[uint64](out[2]), tensors.MustCopyFlatData[uint64](out[3]); fmt.Sprint(r1) != fmt.Sprint(r2) {
					t.Errorf("%s: ProbeWords' new RNG state %v, the graph estimator's %v", name, r2, r1)
				}
				wantEst, wantSE := tensors.ToScalar[float64](out[0]), tensors.ToScalar[float64](out[1])
				net := model.NewHostNet(p)
				words := tensors.MustCopyFlatData[uint32](out[4])
				th := tensors.MustCopyFlatData[float64](theta)
				for rep := range 2 { // the second reuses net's buffers
					est, se := HostHutchinson(net, th, words, sz.probes)
					if math.Abs(est-wantEst) > 1e-12*math.Abs(wantEst) {
						t.Errorf("%s (call %d): host estimate %.17g, graph %.17g", name, rep, est, wantEst)
					}
					if math.Abs(se-wantSE) > 1e-12*math.Abs(wantEst) {
						t.Errorf("%s (call %d): host stderr %.17g, graph %.17g", name, rep, se, wantSE)
					}
					if sz.probes == 1 && se != 0 {
						t.Errorf("%s: stderr %g with one probe", name, se)
					}
				}
			}
		}
	}
}
