package regularizers

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"gonum.org/v1/gonum/mat"
)

// netHVP compiles the structured product (or, with autodiff, the second
// reverse pass through the independently written loss) at Θ.
func netHVP(b backends.Backend, p *model.Problem, theta *tensors.Tensor, autodiff bool) HVP {
	exec := MustNewExec(b, func(th, v *Node) *Node {
		if autodiff {
			return HessianVectorProduct(func(x *Node) *Node { return independentLoss(p, x) }, th, v)
		}
		return NetHessianVectorProduct(model.NewNet(th.Graph(), p).Forward(th), v)
	})
	return func(v []float64) ([]float64, error) {
		out := exec.MustExec(theta, tensors.FromFlatDataAndDimensions(v, p.M, p.D))
		return tensors.MustCopyFlatData[float64](out[0]), nil
	}
}

// The structured product equals autodiff's, for one vector and for a batch.
func TestNetHessianVectorProductMatchesAutodiff(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t) {
		for _, onM := range []bool{false, true} {
			p, theta := testProblem(t, b, act, 4, 5, 3, 7, onM)
			rng := rand.New(rand.NewPCG(3, 4))
			v := tensors.FromFlatDataAndDimensions(gauss(rng, 2*p.M*p.D, 1), 2, p.M, p.D)
			out := MustExecOnceN(b, func(th, v *Node) []*Node {
				fw := model.NewNet(th.Graph(), p).Forward(th)
				loss := func(x *Node) *Node { return independentLoss(p, x) }
				v0 := Reshape(Slice(v, AxisRange(0, 1)), p.M, p.D)
				v1 := Reshape(Slice(v, AxisRange(1, 2)), p.M, p.D)
				return []*Node{NetHessianVectorProduct(fw, v),
					Concatenate([]*Node{HessianVectorProduct(loss, th, v0), HessianVectorProduct(loss, th, v1)}, 0),
					NetHessianVectorProduct(fw, v0)}
			}, theta, v)
			got := tensors.MustCopyFlatData[float64](out[0])
			want := tensors.MustCopyFlatData[float64](out[1])
			single := tensors.MustCopyFlatData[float64](out[2])
			scale := 0.0
			for _, w := range want {
				scale = math.Max(scale, math.Abs(w))
			}
			for i := range want {
				if math.Abs(got[i]-want[i]) > 1e-12*scale || (i < len(single) && math.Abs(single[i]-want[i]) > 1e-12*scale) {
					t.Fatalf("%s onManifold=%v: entry %d structured %g (single %g), autodiff %g", act.Name(), onM, i, got[i], single[i], want[i])
				}
			}
		}
	}
}

// Lanczos' top-k and smallest eigenvalues against a dense eigen-decomposition
// of the autodiff Hessian, on and off the manifold, with the basis spanning
// the whole space (dim 12) and stopping early (dim 60).
func TestLanczosMatchesDenseHessian(t *testing.T) {
	b := testBackend(t)
	for _, size := range []struct{ n, m, d int }{{3, 4, 3}, {5, 12, 5}} {
		for _, act := range activations(t) {
			for _, onM := range []bool{false, true} {
				for seed := uint64(1); seed <= 2; seed++ {
					p, theta := testProblem(t, b, act, size.n, size.m, size.d, seed, onM)
					vals := denseHessianEigen(t, p, theta)
					dim := len(vals)
					norm := math.Max(math.Abs(vals[0]), math.Abs(vals[dim-1]))
					const k = 3
					hvp := netHVP(b, p, theta, seed == 2)
					got, err := LanczosEigen(hvp, dim, k, LanczosOptions{Seed: seed, Vectors: true})
					if err != nil {
						t.Fatalf("%s seed %d: %v", act.Name(), seed, err)
					}
					if len(got.Top) != k {
						t.Fatalf("got %d top eigenvalues, want %d", len(got.Top), k)
					}
					for i := range k {
						if want := vals[dim-1-i]; math.Abs(got.Top[i]-want) > 1e-8*norm {
							t.Errorf("%v %s seed %d onManifold=%v: λ_%d Lanczos %.12g, dense %.12g", size, act.Name(), seed, onM, i+1, got.Top[i], want)
						}
					}
					if math.Abs(got.Min-vals[0]) > 1e-8*norm {
						t.Errorf("%v %s seed %d onManifold=%v: λ_min Lanczos %.12g, dense %.12g", size, act.Name(), seed, onM, got.Min, vals[0])
					}
					// The vectors are eigenvectors: ‖Hy − λy‖ small against ‖H‖.
					for i, y := range append(got.TopVectors, got.MinVector) {
						lambda := got.Min
						if i < k {
							lambda = got.Top[i]
						}
						hy, _ := hvp(y)
						res := 0.0
						for j := range y {
							res += (hy[j] - lambda*y[j]) * (hy[j] - lambda*y[j])
						}
						if math.Sqrt(res) > 1e-6*norm || math.Abs(model.HostDot(y, y)-1) > 1e-12 {
							t.Errorf("%v %s seed %d: eigenvector %d has residual %g (‖H‖ %g), norm² %g", size, act.Name(), seed, i, math.Sqrt(res), norm, model.HostDot(y, y))
						}
					}
				}
			}
		}
	}
}

// A repeated eigenvalue is found with its multiplicity (a restart after
// the Krylov space of the start vector is exhausted), and k = dim works.
func TestLanczosRepeatedEigenvalues(t *testing.T) {
	diag := []float64{3, 3, 3, 1, -2, 0.5, 0.5}
	hvp := func(v []float64) ([]float64, error) {
		out := make([]float64, len(v))
		for i := range v {
			out[i] = diag[i] * v[i]
		}
		return out, nil
	}
	got, err := LanczosEigen(hvp, len(diag), 4, LanczosOptions{Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{3, 3, 3, 1} {
		if math.Abs(got.Top[i]-want) > 1e-12 {
			t.Errorf("top %v, want 3, 3, 3, 1", got.Top)
		}
	}
	if math.Abs(got.Min+2) > 1e-12 {
		t.Errorf("min %g, want -2", got.Min)
	}
	// The start vector's Krylov space holds 5 distinct eigenvalues and becomes
	// invariant at step 5; the restarts find the other two copies of 3.
	diag5 := []float64{3, 3, 3, 1, -2, 0.5, 0.25, 0.25, 0.25, 1}
	for seed := uint64(1); seed <= 5; seed++ {
		got, err := LanczosEigen(func(v []float64) ([]float64, error) {
			out := make([]float64, len(v))
			for i := range v {
				out[i] = diag5[i] * v[i]
			}
			return out, nil
		}, len(diag5), 3, LanczosOptions{Seed: seed})
		if err != nil || len(got.Top) != 3 || math.Abs(got.Top[2]-3) > 1e-12 || math.Abs(got.Min+2) > 1e-12 {
			t.Errorf("seed %d: top %v, min %g, %v; want 3, 3, 3 and -2", seed, got.Top, got.Min, err)
		}
	}
	all, err := LanczosEigen(hvp, len(diag), len(diag), LanczosOptions{Seed: 1})
	if err != nil || math.Abs(all.Top[len(diag)-1]+2) > 1e-12 || math.Abs(all.Top[4]-0.5) > 1e-12 {
		t.Errorf("k = dim: %v, %v", all.Top, err)
	}
	if _, err := LanczosEigen(hvp, len(diag), 0, LanczosOptions{}); err == nil {
		t.Error("k = 0 accepted")
	}
	if _, err := LanczosEigen(hvp, len(diag), 8, LanczosOptions{}); err == nil {
		t.Error("k > dim accepted")
	}
}

// denseHessian is the autodiff Hessian of the independently written loss as a
// symmetric matrix (denseHessianEigen's, kept whole).
func denseHessian(t *testing.T, p *model.Problem, theta *tensors.Tensor) *mat.SymDense {
	b := testBackend(t)
	hvp := netHVP(b, p, theta, true)
	k := p.M * p.D
	h := mat.NewSymDense(k, nil)
	rows := make([][]float64, k)
	for c := range k {
		e := make([]float64, k)
		e[c] = 1
		rows[c], _ = hvp(e)
	}
	for c := range k {
		for j := c; j < k; j++ {
			h.SetSym(c, j, 0.5*(rows[c][j]+rows[j][c]))
		}
	}
	return h
}

// SLQ's weights are the squared first components: with the unit vectors as
// probes, the quadrature's first two moments are Tr H/N and Tr H²/N exactly;
// with Rademacher probes the density's moments match them within the
// probes' sampling error, and it integrates to 1.
func TestSpectralDensityMoments(t *testing.T) {
	b := testBackend(t)
	for _, act := range activations(t)[1:3] {
		for _, onM := range []bool{false, true} {
			p, theta := testProblem(t, b, act, 3, 5, 3, 4, onM)
			h := denseHessian(t, p, theta)
			vals := denseHessianEigen(t, p, theta)
			n := len(vals)
			tr, tr2 := 0.0, 0.0
			for _, v := range vals {
				tr += v
				tr2 += v * v
			}
			hvp := netHVP(b, p, theta, false)
			m1, m2 := 0.0, 0.0
			for i := range n {
				e := make([]float64, n)
				e[i] = 1
				nodes, weights, err := quadrature(hvp, e, 4, nil)
				if err != nil {
					t.Fatal(err)
				}
				sw := 0.0
				for j, x := range nodes {
					m1 += weights[j] * x / float64(n)
					m2 += weights[j] * x * x / float64(n)
					sw += weights[j]
				}
				if math.Abs(sw-1) > 1e-12 {
					t.Errorf("weights sum to %g", sw)
				}
			}
			if math.Abs(m1-tr/float64(n)) > 1e-10*math.Sqrt(tr2) || math.Abs(m2-tr2/float64(n)) > 1e-10*tr2 {
				t.Errorf("%s onManifold=%v: unit-probe moments %g, %g; Tr H/N %g, Tr H²/N %g", act.Name(), onM, m1, m2, tr/float64(n), tr2/float64(n))
			}

			// Rademacher probes: Var(vᵀHᵖv) = 2 Σ_{i≠j} (Hᵖ)_ij².
			var h2 mat.Dense
			h2.Mul(h, h)
			off1, off2 := 0.0, 0.0
			for i := range n {
				for j := range n {
					if i != j {
						off1 += h.At(i, j) * h.At(i, j)
						off2 += h2.At(i, j) * h2.At(i, j)
					}
				}
			}
			const probes = 300
			d, err := SpectralDensity(hvp, n, DensityOptions{Probes: probes, Steps: 6, Seed: 9})
			if err != nil {
				t.Fatal(err)
			}
			integral, g1, g2 := 0.0, 0.0, 0.0
			for i := 1; i < len(d.Grid); i++ {
				dt := d.Grid[i] - d.Grid[i-1]
				a, c := d.Density[i-1], d.Density[i]
				integral += 0.5 * dt * (a + c)
				g1 += 0.5 * dt * (a*d.Grid[i-1] + c*d.Grid[i])
				g2 += 0.5 * dt * (a*d.Grid[i-1]*d.Grid[i-1] + c*d.Grid[i]*d.Grid[i])
			}
			tol1 := 5 * math.Sqrt(2*off1/probes) / float64(n)
			tol2 := 5 * math.Sqrt(2*off2/probes) / float64(n)
			if math.Abs(integral-1) > 1e-9 {
				t.Errorf("density integrates to %g", integral)
			}
			if math.Abs(g1-tr/float64(n)) > tol1+1e-6*math.Sqrt(tr2) {
				t.Errorf("%s onManifold=%v: density mean %g, Tr H/N %g (tolerance %g)", act.Name(), onM, g1, tr/float64(n), tol1)
			}
			// The Gaussian adds σ² to the second moment.
			if math.Abs(g2-d.Sigma*d.Sigma-tr2/float64(n)) > tol2+1e-6*tr2 {
				t.Errorf("%s onManifold=%v: density second moment less σ² %g, Tr H²/N %g (tolerance %g)", act.Name(), onM, g2-d.Sigma*d.Sigma, tr2/float64(n), tol2)
			}
		}
	}
}

// On a matrix with eigenvalues 1/i (a Hessian with a decaying spectrum),
// 16× the products cut Hutch++'s RMS error about 16× (1/K) and
// Hutchinson's about 4× (1/√K), and the reported standard errors match
// the errors seen.
func TestHutchPlusPlusErrorFallsLikeOneOverK(t *testing.T) {
	if testing.Short() {
		t.Skip("about 2 s")
	}
	const dim = 300
	rng := rand.New(rand.NewPCG(1, 2))
	g := mat.NewDense(dim, dim, gauss(rng, dim*dim, 1))
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	diag := mat.NewDiagDense(dim, nil)
	exact := 0.0
	for i := range dim {
		diag.SetDiag(i, 1/float64(i+1))
		exact += 1 / float64(i+1)
	}
	var a, tmp mat.Dense
	tmp.Mul(&q, diag)
	a.Mul(&tmp, q.T())
	block := func(vs [][]float64) ([][]float64, error) {
		out := make([][]float64, len(vs))
		for i, v := range vs {
			var r mat.VecDense
			r.MulVec(&a, mat.NewVecDense(dim, v))
			out[i] = r.RawVector().Data
		}
		return out, nil
	}
	const trials = 40
	rms := map[string]map[int]float64{"hutchinson": {}, "hutchpp": {}}
	for _, k := range []int{12, 192} {
		for name, est := range map[string]func(BlockHVP, int, int, uint64) (TraceEstimate, error){
			"hutchinson": HutchinsonHost, "hutchpp": HutchPlusPlus} {
			ss, se := 0.0, 0.0
			for s := range trials {
				e, err := est(block, dim, k, uint64(100*k+s))
				if err != nil {
					t.Fatal(err)
				}
				if e.HVPs > k {
					t.Errorf("%s used %d products, budget %d", name, e.HVPs, k)
				}
				ss += (e.Estimate - exact) * (e.Estimate - exact)
				se += e.Stderr
			}
			rms[name][k] = math.Sqrt(ss / trials)
			// Both standard errors are honest: Hutch++'s, of the residual part
			// given the sketch, still accounts for most of its error.
			if meanSE := se / trials; rms[name][k] < meanSE/2 || rms[name][k] > 2*meanSE {
				t.Errorf("%s K=%d: RMS error %g, mean stderr %g", name, k, rms[name][k], meanSE)
			}
		}
	}
	hr := rms["hutchinson"][12] / rms["hutchinson"][192]
	pr := rms["hutchpp"][12] / rms["hutchpp"][192]
	t.Logf("RMS errors %v; ratios K=12→192: Hutchinson %.2f, Hutch++ %.2f", rms, hr, pr)
	if hr < 2.5 || hr > 6.5 {
		t.Errorf("Hutchinson's error ratio %g, want about 4", hr)
	}
	if pr < 10 {
		t.Errorf("Hutch++'s error ratio %g, want about 16", pr)
	}
	if rms["hutchpp"][192] > rms["hutchinson"][192]/3 {
		t.Errorf("at K=192 Hutch++ (%g) not well below Hutchinson (%g)", rms["hutchpp"][192], rms["hutchinson"][192])
	}
}

// Hutch++ on the network's Hessian: unbiased for the exact Tr D²L, and exact
// when the sketch spans the Hessian's range (on the manifold, rank ≤ n).
func TestHutchPlusPlusOnNetwork(t *testing.T) {
	b := testBackend(t)
	act, _ := model.NewActivation("cubic", 0.3, 1)
	for _, onM := range []bool{false, true} {
		p, theta := testProblem(t, b, act, 2, 5, 3, 3, onM)
		exact := tensors.ToScalar[float64](MustExecOnce(b, func(th *Node) *Node {
			return TraceHessian(model.NewNet(th.Graph(), p).Forward(th))
		}, theta))
		hvp := netHVP(b, p, theta, false)
		block := func(vs [][]float64) ([][]float64, error) {
			out := make([][]float64, len(vs))
			for i, v := range vs {
				out[i], _ = hvp(v)
			}
			return out, nil
		}
		dim := p.M * p.D
		if onM {
			// 2H = 4JᵀJ has rank ≤ n = 2: a sketch of 3 columns captures it all.
			e, err := HutchPlusPlus(block, dim, 9, 1)
			if err != nil || math.Abs(e.Estimate-exact) > 1e-10*math.Abs(exact) {
				t.Errorf("on the manifold: Hutch++ %g (%v), exact %g", e.Estimate, err, exact)
			}
			continue
		}
		sum, sumSq := 0.0, 0.0
		const trials = 200
		for s := range trials {
			e, err := HutchPlusPlus(block, dim, 6, uint64(s))
			if err != nil {
				t.Fatal(err)
			}
			sum += e.Estimate
			sumSq += e.Estimate * e.Estimate
		}
		sd := math.Sqrt(sumSq/trials - (sum/trials)*(sum/trials))
		if bias := math.Abs(sum/trials - exact); bias > 5*sd/math.Sqrt(trials) {
			t.Errorf("off the manifold: mean of Hutch++ %g, exact %g", sum/trials, exact)
		}
	}
}
