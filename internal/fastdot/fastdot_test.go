package fastdot

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"weak"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func newBackend(t testing.TB) backends.Backend {
	b, err := simplego.New("ops_sequential")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func randTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	size := 1
	for _, d := range dims {
		size *= d
	}
	data := make([]float64, size)
	for i := range data {
		data[i] = rng.NormFloat64()
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// Each case is one DotGeneral layout: the fast gradient must equal GoMLX's stock
// gradient (first and second order) and central finite differences.
var cases = []struct {
	name    string
	lhsDims []int
	lc, lb  []int
	rhsDims []int
	rc, rb  []int
}{
	{"features XΘᵀ", []int{4, 3}, []int{1}, nil, []int{5, 3}, []int{1}, nil},
	{"matmul", []int{4, 3}, []int{1}, nil, []int{3, 5}, []int{0}, nil},
	{"batched", []int{2, 4, 3}, []int{2}, []int{0}, []int{2, 3, 5}, []int{1}, []int{0}},
	{"two contractions out of order", []int{2, 3, 4}, []int{1, 2}, nil, []int{4, 5, 3}, []int{2, 0}, nil},
	{"batch in the middle", []int{3, 2, 4}, []int{2}, []int{1}, []int{4, 2, 5}, []int{0}, []int{1}},
	{"outer product", []int{3}, nil, nil, []int{2, 2}, nil, nil},
	{"negative axes", []int{4, 3}, []int{-1}, nil, []int{5, 3}, []int{-1}, nil},
}

func TestGradientMatchesStock(t *testing.T) {
	b := newBackend(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lhs, rhs := randTensor(rng, c.lhsDims...), randTensor(rng, c.rhsDims...)
			build := func(fast bool, dot func(l *graph.Node, lc, lb []int, r *graph.Node, rc, rb []int) *graph.Node) func(l, r *graph.Node) []*graph.Node {
				return func(l, r *graph.Node) []*graph.Node {
					out := dot(l, c.lc, c.lb, r, c.rc, c.rb)
					mu.Lock()
					_, registered := registry[weak.Make(out)]
					mu.Unlock()
					if registered != fast {
						t.Errorf("fast=%v but node registered=%v", fast, registered)
					}
					// A non-linear scalar so that second derivatives are not trivial.
					loss := graph.ReduceAllSum(graph.Mul(graph.Square(out), out))
					g := graph.Gradient(loss, l, r)
					gg := graph.Gradient(graph.ReduceAllSum(graph.Square(g[0])), r)
					return []*graph.Node{g[0], g[1], gg[0]}
				}
			}
			fast := graph.MustExecOnceN(b, build(true, DotGeneral), lhs, rhs)
			stock := graph.MustExecOnceN(b, build(false, graph.DotGeneral), lhs, rhs)
			for k := range fast {
				f, s := tensors.MustCopyFlatData[float64](fast[k]), tensors.MustCopyFlatData[float64](stock[k])
				if !fast[k].Shape().Equal(stock[k].Shape()) {
					t.Fatalf("output %d: shape %s, stock %s", k, fast[k].Shape(), stock[k].Shape())
				}
				for i := range f {
					if math.Abs(f[i]-s[i]) > 1e-10*(1+math.Abs(s[i])) {
						t.Fatalf("output %d[%d]: fast %v, stock %v", k, i, f[i], s[i])
					}
				}
			}
		})
	}
}

func TestGradientMatchesFiniteDifferences(t *testing.T) {
	b := newBackend(t)
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lhs, rhs := randTensor(rng, c.lhsDims...), randTensor(rng, c.rhsDims...)
			lossFn := func(l, r *graph.Node) *graph.Node {
				return graph.ReduceAllSum(graph.Mul(graph.Square(DotGeneral(l, c.lc, c.lb, r, c.rc, c.rb)), graph.Const(l.Graph(), 0.5)))
			}
			lossExec := graph.MustNewExec(b, lossFn)
			gradExec := graph.MustNewExec(b, func(l, r *graph.Node) []*graph.Node { return graph.Gradient(lossFn(l, r), l, r) })
			grads := gradExec.MustExec(lhs, rhs)
			for which, x := range []*tensors.Tensor{lhs, rhs} {
				data := tensors.MustCopyFlatData[float64](x)
				want := tensors.MustCopyFlatData[float64](grads[which])
				for i := range data {
					const h = 1e-5
					eval := func(delta float64) float64 {
						d := append([]float64(nil), data...)
						d[i] += delta
						xt := tensors.FromFlatDataAndDimensions(d, x.Shape().Dimensions...)
						args := []*tensors.Tensor{lhs, rhs}
						args[which] = xt
						return tensors.ToScalar[float64](lossExec.MustExec(args[0], args[1])[0])
					}
					fd := (eval(h) - eval(-h)) / (2 * h)
					if math.Abs(fd-want[i]) > 1e-6*(1+math.Abs(fd)) {
						t.Fatalf("%s gradient of operand %d at %d: autodiff %v, finite differences %v", c.name, which, i, want[i], fd)
					}
				}
			}
		})
	}
}

// BenchmarkFeatureGradient compares the gradient of Z = X Θᵀ at a wide size.
func BenchmarkFeatureGradient(b *testing.B) {
	be := newBackend(b)
	rng := rand.New(rand.NewPCG(5, 6))
	n, m, d := 2000, 128, 32
	x, theta := randTensor(rng, n, d), randTensor(rng, m, d)
	for _, impl := range []struct {
		name string
		dot  func(l *graph.Node, lc, lb []int, r *graph.Node, rc, rb []int) *graph.Node
	}{{"fastdot", DotGeneral}, {"stock", graph.DotGeneral}} {
		b.Run(fmt.Sprintf("%s/n=%d,m=%d,d=%d", impl.name, n, m, d), func(b *testing.B) {
			e := graph.MustNewExec(be, func(x, theta *graph.Node) *graph.Node {
				z := impl.dot(x, []int{1}, nil, theta, []int{1}, nil)
				return graph.Gradient(graph.ReduceAllSum(graph.Mul(graph.Square(z), z)), theta)[0]
			})
			e.MustExec(x, theta)
			b.ResetTimer()
			for range b.N {
				e.MustExec(x, theta)
			}
		})
	}
}
