package trainers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/model"
)

// The blockwise metrics (host, blocks of neurons) equal the whole-array
// graphs' on random problems: both engines, unit and random w, the cubic
// with ν > 0 and tanh, blocks of a few neurons with a partial last one.
func TestBlockMetricsMatchWholeArray(t *testing.T) {
	defer func(above, values, small int) {
		blockMetricsAbove, metricsBlockValues, smallTheta = above, values, small
	}(blockMetricsAbove, metricsBlockValues, smallTheta)
	for _, sz := range [][3]int{{4, 6, 37}, {3, 12, 8}} { // d ≤ m and m < d (Θ's Gram from its m×m side)
		n, d, m := sz[0], sz[1], sz[2]
		for _, act := range []string{"cubic", "tanh"} {
			for _, unit := range []bool{true, false} {
				for _, eng := range []string{EngineTheta, EngineFeature} {
					for _, small := range []int{1 << 20, 0} { // Z's and Θ's singular values by SVD, or from Gram matrices
						name := fmt.Sprintf("%dx%dx%d_%s_unit%v_%s_svd%v", n, d, m, act, unit, eng, small > 0)
						t.Run(name, func(t *testing.T) {
							p := blockTestProblem(t, act, unit, n, d, m)
							ev, err := NewEvaluator(testBackend(t), p)
							if err != nil {
								t.Fatal(err)
							}
							cfg := DefaultConfig()
							cfg.Engine, cfg.Eta = eng, 1e-5
							tr := newTrainer(t, "gd", p, cfg)
							s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.3, 5), 5)
							steps(t, tr, s, 3)
							smallTheta = small
							blockMetricsAbove = 1 << 40
							want, err := ev.MeasureState(s)
							if err != nil {
								t.Fatal(err)
							}
							blockMetricsAbove, metricsBlockValues = 0, 5*d // blocks of 5 neurons
							if eng == EngineFeature {
								s.Theta = nil // as between steps: Θ is formed from the features, not read
							}
							if !ev.blockwise() {
								t.Fatal("the blockwise path is not taken")
							}
							got, err := ev.MeasureState(s)
							blockMetricsAbove, metricsBlockValues, smallTheta = 1<<20, 1<<16, 1<<20
							if err != nil {
								t.Fatal(err)
							}
							close := func(what string, x, y float64) {
								if math.IsNaN(y) || math.Abs(x-y) > 1e-12*math.Abs(y) {
									t.Errorf("%s blockwise %.17g, whole %.17g", what, x, y)
								}
							}
							if want.Loss > 1e4 {
								t.Fatalf("loss %g: the run diverged", want.Loss)
							}
							close("loss", got.Loss, want.Loss)
							close("Tr D²L", got.TraceHessian, want.TraceHessian)
							close("manifold trace", got.TraceHessianManifold, want.TraceHessianManifold)
							close("‖∇L‖", got.GradNorm, want.GradNorm)
							close("‖grad_M F‖", got.RiemannianGradNorm, want.RiemannianGradNorm)
							if math.IsNaN(want.TheoryGap) != math.IsNaN(got.TheoryGap) || !math.IsNaN(want.TheoryGap) {
								close("theory gap", got.TheoryGap, want.TheoryGap)
								close("F*", got.TraceMin, want.TraceMin)
							}
							close("effective rank", got.EffectiveRank, want.EffectiveRank)
							for k := range want.SingularValuesZ {
								close(fmt.Sprintf("σ%d(Z)", k+1), got.SingularValuesZ[k], want.SingularValuesZ[k])
							}
							for k := range want.SingularValuesTheta {
								close(fmt.Sprintf("σ%d(Θ)", k+1), got.SingularValuesTheta[k], want.SingularValuesTheta[k])
							}
						})
					}
				}
			}
		}
	}
}

func blockTestProblem(t *testing.T, act string, unit bool, n, d, m int) *model.Problem {
	a, err := model.NewActivation(act, 0.3, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, uint64(n*d*m)))
	x, y := make([]float64, n*d), make([]float64, n)
	for k := range x {
		x[k] = rng.NormFloat64()
	}
	for i := range y {
		y[i] = 0.5 + rng.Float64()
	}
	var w []float64
	if !unit {
		w = make([]float64, m)
		for j := range w {
			w[j] = 0.5 + rng.Float64()
		}
	}
	p, err := model.NewProblem(x, n, d, y, w, m, a)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
