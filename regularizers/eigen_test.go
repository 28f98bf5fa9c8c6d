package regularizers

import (
	"math"
	"testing"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

// denseHessianEigen builds the full Hessian of the independently written loss
// with autodiff and returns its eigenvalues (ascending) from gonum.
func denseHessianEigen(t *testing.T, p *model.Problem, theta *tensors.Tensor) []float64 {
	b := testBackend(t)
	k := p.M * p.D
	outs := MustExecOnceN(b, func(th *Node) []*Node {
		grad := Gradient(independentLoss(p, th), th)[0]
		var rows []*Node
		for c := range k {
			e := Reshape(OneHot(Const(th.Graph(), int32(c)), k, th.DType()), p.M, p.D)
			rows = append(rows, Gradient(ReduceAllSum(Mul(grad, e)), th)[0])
		}
		return rows
	}, theta)
	h := mat.NewSymDense(k, nil)
	for c, o := range outs {
		row := tensors.MustCopyFlatData[float64](o)
		for j := c; j < k; j++ {
			h.SetSym(c, j, 0.5*(row[j]+tensors.MustCopyFlatData[float64](outs[j])[c]))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(h, false) {
		t.Fatal("eigen-decomposition failed")
	}
	return eig.Values(nil)
}

func TestTopEigenvalueMatchesDenseHessian(t *testing.T) {
	b := testBackend(t)
	sawNegativeDominant := false
	for _, act := range activations(t) {
		for _, onM := range []bool{false, true} {
			for seed := uint64(1); seed <= 3; seed++ {
				p, theta := testProblem(t, b, act, 3, 4, 2, seed, onM)
				vals := denseHessianEigen(t, p, theta)
				want := vals[len(vals)-1]
				if -vals[0] > want {
					sawNegativeDominant = true
				}
				hvp := MustNewExec(b, func(th, v *Node) *Node {
					net := model.NewNet(th.Graph(), p)
					return HessianVectorProduct(func(x *Node) *Node { return net.Forward(x).Loss() }, th, v)
				})
				got, err := TopEigenvalue(func(v []float64) ([]float64, error) {
					out := hvp.MustExec(theta, tensors.FromFlatDataAndDimensions(v, p.M, p.D))
					return tensors.MustCopyFlatData[float64](out[0]), nil
				}, p.M*p.D, PowerOptions{Seed: seed})
				if err != nil {
					t.Fatalf("%s seed %d: %v", act.Name(), seed, err)
				}
				if math.Abs(got-want) > 1e-8*math.Max(math.Abs(want), math.Abs(vals[0])) {
					t.Errorf("%s seed %d onManifold=%v: power iteration %.12g, dense λ_max %.12g (λ_min %.4g)", act.Name(), seed, onM, got, want, vals[0])
				}
			}
		}
	}
	if !sawNegativeDominant {
		t.Log("no case had a dominant negative eigenvalue; the shifted second run was not exercised")
	}
}

// A matrix whose most negative eigenvalue dominates exercises the shift.
func TestTopEigenvalueWithDominantNegative(t *testing.T) {
	diag := []float64{-5, 1, 2, 0.5}
	got, err := TopEigenvalue(func(v []float64) ([]float64, error) {
		out := make([]float64, len(v))
		for i := range v {
			out[i] = diag[i] * v[i]
		}
		return out, nil
	}, len(diag), PowerOptions{Seed: 1})
	if err != nil || math.Abs(got-2) > 1e-9 {
		t.Errorf("got %g, %v; want 2", got, err)
	}
}
