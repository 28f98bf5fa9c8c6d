package regularizers

import (
	"math"
	"testing"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Over many seeds the estimate is unbiased, its error shrinks like 1/√K, and
// the reported standard error matches the spread actually seen.
func TestHutchinsonConvergesLikeOneOverSqrtK(t *testing.T) {
	b := testBackend(t)
	act, _ := model.NewActivation("cubic", 0.3, 1)
	p, theta := testProblem(t, b, act, 4, 6, 3, 2, false)
	exact := tensors.ToScalar[float64](MustExecOnce(b, func(th *Node) *Node {
		return TraceHessian(model.NewNet(th.Graph(), p).Forward(th))
	}, theta))
	const seeds = 40
	rms := map[int]float64{}
	for _, k := range []int{4, 16, 64, 256} {
		exec := MustNewExec(b, func(th, rng *Node) []*Node {
			net := model.NewNet(th.Graph(), p)
			loss := func(batch *Node) *Node { return net.Forward(batch).Loss() }
			_, est, se := Hutchinson(loss, th, rng, k)
			return []*Node{est, se}
		})
		sumSq, sumSE, sum := 0.0, 0.0, 0.0
		for s := range seeds {
			rng, _ := RNGStateFromSeed(int64(1000*k + s))
			out := exec.MustExec(theta, rng)
			est, se := tensors.ToScalar[float64](out[0]), tensors.ToScalar[float64](out[1])
			sumSq += (est - exact) * (est - exact)
			sumSE += se
			sum += est
		}
		rms[k] = math.Sqrt(sumSq / seeds)
		meanSE := sumSE / seeds
		if rms[k] < meanSE/2 || rms[k] > 2*meanSE {
			t.Errorf("K=%d: observed RMS error %g, mean reported stderr %g", k, rms[k], meanSE)
		}
		if bias := math.Abs(sum/seeds - exact); bias > 4*rms[k]/math.Sqrt(seeds) {
			t.Errorf("K=%d: mean estimate off by %g, more than 4 standard errors (%g)", k, bias, rms[k]/math.Sqrt(seeds))
		}
	}
	// 64× the probes: error ÷8 in expectation; allow sampling noise over 40 seeds.
	if ratio := rms[4] / rms[256]; ratio < 5 || ratio > 13 {
		t.Errorf("error ratio K=4 vs K=256 is %g, want about 8 (errors %v)", ratio, rms)
	}
}

// The Unbatched adapter, for losses that know nothing of batches, gives the
// same estimate from the same probes.
func TestHutchinsonUnbatchedAgrees(t *testing.T) {
	b := testBackend(t)
	act, _ := model.NewActivation("tanh", 0, 0)
	p, theta := testProblem(t, b, act, 3, 4, 2, 8, false)
	rng, _ := RNGStateFromSeed(3)
	out := MustExecOnceN(b, func(th, rng *Node) []*Node {
		net := model.NewNet(th.Graph(), p)
		_, batched, _ := Hutchinson(func(x *Node) *Node { return net.Forward(x).Loss() }, th, rng, 5)
		_, plain, _ := Hutchinson(Unbatched(func(x *Node) *Node { return independentLoss(p, x) }), th, rng, 5)
		return []*Node{batched, plain}
	}, theta, rng)
	a, c := tensors.ToScalar[float64](out[0]), tensors.ToScalar[float64](out[1])
	if math.Abs(a-c) > 1e-10*math.Abs(a) {
		t.Errorf("batched %g, unbatched %g", a, c)
	}
}
