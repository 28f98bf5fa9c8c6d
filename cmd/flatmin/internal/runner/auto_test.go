package runner

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/model"
)

// AutoRho's blocks (4096 neurons, the last a part) sum the trace of J Jᵀ
// that the whole forward's JJT gives, with random weights.
func TestGradNormSqBlocksMatchesJJT(t *testing.T) {
	act, err := model.NewActivation("cubic", 0.1, 1)
	if err != nil {
		t.Fatal(err)
	}
	n, d, m := 5, 7, 9000
	spec, _ := model.ParseLabels("uniform:0.5,1")
	x, y, err := model.Synthetic(n, d, spec, act, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float64, m)
	for j := range w {
		w[j] = 0.5 + rng.Float64()
	}
	p, err := model.NewProblem(x, n, d, y, w, m, act)
	if err != nil {
		t.Fatal(err)
	}
	theta := model.InitTheta(m, d, 0.3, 5)
	jjt := model.NewHostNet(p).Forward(featuresOf(p, theta)).JJT()
	want := 0.0
	for i := range n {
		want += jjt[i*n+i]
	}
	if got := gradNormSqBlocks(p, theta); !(math.Abs(got-want) <= 1e-12*want) {
		t.Errorf("blocks give %.17g, JJT's trace %.17g", got, want)
	}
}
