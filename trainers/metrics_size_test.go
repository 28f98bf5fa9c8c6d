package trainers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

// The Gram matrix of the smaller side, summed over blocks, equals the
// product written out as loops, for both orientations and a ragged last block.
func TestGramOfSmallerSide(t *testing.T) {
	for _, c := range []struct{ rows, cols int }{{3, 7}, {7, 3}, {5, 5}, {2, 70000}, {70000, 2}} {
		a := model.InitTheta(c.rows, c.cols, 1, 5)
		g, err := gramOfSmallerSide(context.Background(), a, c.rows, c.cols)
		if err != nil {
			t.Fatal(err)
		}
		k, long := min(c.rows, c.cols), max(c.rows, c.cols)
		at := func(i, l int) float64 { // entry (i, l) with i on the smaller side
			if c.rows <= c.cols {
				return a[i*c.cols+l]
			}
			return a[l*c.cols+i]
		}
		for i := range k {
			for j := range k {
				want := 0.0
				for l := range long {
					want += at(i, l) * at(j, l)
				}
				if got := g.At(i, j); math.Abs(got-want) > 1e-10*(1+math.Abs(want)) {
					t.Errorf("%d×%d: G[%d,%d] = %g, want %g", c.rows, c.cols, i, j, got, want)
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := gramOfSmallerSide(ctx, make([]float64, 6), 2, 3); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v, want context.Canceled", err)
	}
}

// Θ's singular values measured without an SVD of Θ (from the Gram matrix of
// its smaller side, and for a feature state without forming Θ) equal those of
// an SVD of the Θ the trainer syncs, for m < d and m > d and both engines.
func TestThetaSingularValuesLargePath(t *testing.T) {
	for _, c := range []struct {
		n, d, m int
		engine  string
	}{
		{3, 40, 7, EngineFeature}, {3, 6, 40, EngineFeature}, {3, 40, 7, EngineTheta}, {8, 5, 40, EngineTheta},
	} {
		t.Run(fmt.Sprintf("n%d_d%d_m%d_%s", c.n, c.d, c.m, c.engine), func(t *testing.T) {
			p := syntheticProblem(t, c.n, c.d, c.m, 0.1, "uniform:0.5,1", 2)
			ev, err := NewEvaluator(testBackend(t), p)
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Engine, cfg.Eta = c.engine, 0.01
			tr := newTrainer(t, "labelnoise", p, cfg)
			s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.4, 3), 3)
			if _, err := tr.Advance(s, 50); err != nil {
				t.Fatal(err)
			}
			smallTheta = 0
			got, err := ev.MeasureState(s)
			smallTheta = 1 << 20
			if err != nil {
				t.Fatal(err)
			}
			theta := tensors.MustCopyFlatData[float64](synced(t, tr, s))
			var svd mat.SVD
			if !svd.Factorize(mat.NewDense(p.M, p.D, theta), mat.SVDNone) {
				t.Fatal("SVD failed")
			}
			want := svd.Values(nil)
			if len(got.SingularValuesTheta) != len(want) {
				t.Fatalf("%d singular values, want %d", len(got.SingularValuesTheta), len(want))
			}
			for k := range want {
				// Through a Gram matrix σ is resolved to about ε·σ₁²/σ.
				if tol := 1e-9 * want[0] * (1 + want[0]/want[k]); math.Abs(got.SingularValuesTheta[k]-want[k]) > tol {
					t.Errorf("σ%d(Θ) = %.15g, SVD %.15g", k+1, got.SingularValuesTheta[k], want[k])
				}
			}
			z, err := ev.Features(synced(t, tr, s))
			if err != nil {
				t.Fatal(err)
			}
			wantZ, _ := linalg.SingularValues(z, p.N, p.M)
			for k := range wantZ {
				if math.Abs(got.SingularValuesZ[k]-wantZ[k]) > 1e-9*wantZ[0]*(1+wantZ[0]/wantZ[k]) {
					t.Errorf("σ%d(Z) = %.15g, SVD %.15g", k+1, got.SingularValuesZ[k], wantZ[k])
				}
			}
		})
	}
}

// allocated returns the bytes fn allocates on the Go heap (SimpleGo's
// buffers included).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Metrics of a problem with many points or many dimensions form no n×n or
// d×d matrix: at n = 100000 the n×n J Jᵀ (80 GB) is skipped
// (riemannian_grad_norm NaN, with a note), and at d = 6000 Θ's singular
// values come from the m×m Gram matrix, not the d×d one (288 MB).
func TestMetricsLargeSizesBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds problems of 10^5 points and 6000 dimensions")
	}
	for _, c := range []struct {
		n, d, m  int
		engine   string
		maxBytes uint64
		gradNaN  bool
	}{
		{100000, 3, 10, EngineTheta, 400 << 20, true},
		{3, 6000, 300, EngineFeature, 150 << 20, false},
		{3, 6000, 300, EngineTheta, 150 << 20, false},
	} {
		t.Run(fmt.Sprintf("n%d_d%d_%s", c.n, c.d, c.engine), func(t *testing.T) {
			p := syntheticProblem(t, c.n, c.d, c.m, 0.1, "uniform:0.5,1", 1)
			ev, err := NewEvaluator(testBackend(t), p)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(ev.Notes()) > 0; got != c.gradNaN {
				t.Errorf("notes %q", ev.Notes())
			}
			cfg := DefaultConfig()
			cfg.Engine, cfg.Eta = c.engine, 1e-6
			tr := newTrainer(t, "labelnoise", p, cfg)
			s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.1, 1), 1)
			if err := tr.Init(s); err != nil {
				t.Fatal(err)
			}
			var m Metrics
			alloc := allocated(func() { m, err = ev.MeasureState(s) })
			if err != nil {
				t.Fatal(err)
			}
			if alloc > c.maxBytes {
				t.Errorf("metrics allocated %d MB, want at most %d MB", alloc>>20, c.maxBytes>>20)
			}
			if math.IsNaN(m.Loss) || math.IsNaN(m.SingularValuesTheta[0]) || math.IsNaN(m.SingularValuesZ[0]) {
				t.Errorf("loss %g, σ1(Θ) %g, σ1(Z) %g: want numbers", m.Loss, m.SingularValuesTheta[0], m.SingularValuesZ[0])
			}
			if math.IsNaN(m.RiemannianGradNorm) != c.gradNaN {
				t.Errorf("riemannian_grad_norm %g, want NaN: %v", m.RiemannianGradNorm, c.gradNaN)
			}
		})
	}
}

// "auto" takes the feature engine only while its n×n matrices stay small.
func TestAutoEngineBySize(t *testing.T) {
	for _, c := range []struct {
		n, d int
		want string
	}{{3, 3, EngineFeature}, {3, 6000, EngineFeature}, {MaxFeatureN, 4096, EngineFeature}, {MaxFeatureN + 1, 4096, EngineTheta}, {10, 3, EngineTheta}} {
		if got, err := ChooseEngineSizes("auto", c.n, c.d); err != nil || got != c.want {
			t.Errorf("n=%d d=%d: %q, %v; want %q", c.n, c.d, got, err, c.want)
		}
	}
}
