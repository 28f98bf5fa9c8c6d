package trainers

import (
	"context"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Evaluator computes Metrics for a problem. Its graph is compiled once.
type Evaluator struct {
	b        backends.Backend
	p        *model.Problem
	opt      regularizers.Optimum
	exec     *Exec
	features *Exec // Θ → Z
	tan      *tangentSpace
	feat     *featureEval // for feature-engine states, compiled on first use
	notes    []string
	sharp    *Hessian // when tracking sharpness (TrackSharpness)
}

// featureEval measures a feature-engine state from Zᵀ, without forming Θ.
type featureEval struct {
	eng  *engine
	exec *Exec // Zᵀ → loss, Tr D²L, its manifold form, ‖∇L‖
	tan  *tangentSpace
	// The Gram matrix of Θ₀'s smaller side (Θ₀ᵀΘ₀ or Θ₀Θ₀ᵀ: the costly part
	// of Θ's) and, when m < d, Θ₀Xᵀ, for the Θ₀ they were computed at.
	baseGram *mat.SymDense
	baseX    *mat.Dense
	gramOf   *tensors.Tensor
}

// smallTheta is the size (m·d) up to which Θ's singular values come from an
// SVD of Θ itself; above it, from the eigenvalues of ΘᵀΘ, which needs no
// m×d buffer but resolves singular values only down to ~1e-8·σ₁.
var smallTheta = 1 << 20

// MaxMetricsN is the largest n for which the metrics compute
// riemannian_grad_norm: it solves with J Jᵀ, an n×n matrix that no trainer
// but riemannian forms. Above it the column is NaN.
const MaxMetricsN = 2048

// MaxGramSide is the largest min(rows, cols) for which the singular values of
// Z and Θ are computed, from the Gram matrix of the matrix's smaller side: its
// eigendecomposition (O(k³), not interruptible) takes about a second at this
// size. Above it, or when forming that Gram matrix would take more than
// maxGramFlops, the columns are NaN.
const MaxGramSide = 1024

// maxGramFlops bounds rows·cols·k, the work of one Gram matrix of the smaller side.
const maxGramFlops = 4e10

// singularValuesOK reports whether the singular values of a rows×cols matrix are computed.
func singularValuesOK(rows, cols int) bool {
	k := min(rows, cols)
	return rows*cols <= smallTheta || (k <= MaxGramSide && float64(rows)*float64(cols)*float64(k) <= maxGramFlops)
}

// Notes lists, once, the metrics this evaluator leaves NaN because of the
// problem's size (the caller prints them).
func (e *Evaluator) Notes() []string { return e.notes }

func sizeNotes(p *model.Problem) []string {
	var notes []string
	if p.N > MaxMetricsN {
		notes = append(notes, fmt.Sprintf("riemannian_grad_norm is not computed for n = %d > %d (it needs the n×n J Jᵀ): NaN", p.N, MaxMetricsN))
	}
	for _, c := range []struct {
		name       string
		rows, cols int
	}{{"sv_z_* and effective_rank", p.N, p.M}, {"sv_theta_*", p.M, p.D}} {
		if !singularValuesOK(c.rows, c.cols) {
			notes = append(notes, fmt.Sprintf("%s are not computed for a %d×%d matrix (smaller side above %d or too much work): NaN",
				c.name, c.rows, c.cols, MaxGramSide))
		}
	}
	return notes
}

// NewEvaluator compiles the metrics graph for p.
func NewEvaluator(b backends.Backend, p *model.Problem) (*Evaluator, error) {
	exec, err := compile(b, func(theta *Node) []*Node {
		net := model.NewNet(theta.Graph(), p)
		fw := net.Forward(theta)
		return []*Node{
			fw.Loss(),
			regularizers.TraceHessian(fw),
			regularizers.TraceHessianManifold(fw),
			Sqrt(thetaSpace{}.normSq(net, fw.LossGrad())),
			fw.Z,
		}
	})
	if err != nil {
		return nil, err
	}
	tan, err := newTangentSpace(b, p, &engine{name: EngineTheta, p: p, sp: thetaSpace{}})
	if err != nil {
		return nil, err
	}
	features, err := compile(b, func(theta *Node) *Node { return model.NewNet(theta.Graph(), p).Features(theta) })
	if err != nil {
		return nil, err
	}
	return &Evaluator{b: b, p: p, opt: regularizers.PredictOptimum(p), exec: exec, features: features, tan: tan, notes: sizeNotes(p)}, nil
}

func (e *Evaluator) compileFeatures() error {
	p := e.p
	eng, err := newEngine(e.b, p, EngineFeature)
	if err != nil {
		return err
	}
	exec, err := compile(e.b, func(zt *Node) []*Node {
		net := model.NewNet(zt.Graph(), p)
		fw := net.ForwardFeatures(zt)
		grad := fw.LossGrad() // ∇L = 2Jᵀr as V X
		return []*Node{fw.Loss(), regularizers.TraceHessian(fw), regularizers.TraceHessianManifold(fw),
			Sqrt(featureSpace{}.normSq(net, grad))}
	})
	if err != nil {
		return err
	}
	tan, err := newTangentSpace(e.b, p, eng)
	if err != nil {
		return err
	}
	e.feat = &featureEval{eng: eng, exec: exec, tan: tan}
	return nil
}

// MeasureState computes the metrics at s: Measure(s.Theta) for a Θ-engine
// state; from the features for a feature-engine state, forming Θ only when
// small (for its singular values). When tracking sharpness, Extra holds
// SharpnessColumns.
func (e *Evaluator) MeasureState(s *State) (Metrics, error) {
	return e.MeasureStateContext(context.Background(), s)
}

// MeasureStateContext is MeasureState that gives up, returning ctx's error,
// when ctx is cancelled: it checks between its parts and between the blocks
// of its long host computations.
func (e *Evaluator) MeasureStateContext(ctx context.Context, s *State) (Metrics, error) {
	m, err := e.measureState(ctx, s)
	if err != nil || e.sharp == nil {
		return m, err
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	if s.Theta == nil {
		if err := e.feat.eng.sync(s); err != nil {
			return m, err
		}
	}
	lmax, lmin, err := e.Sharpness(s.Theta)
	if err != nil {
		return m, err
	}
	m.Extra = map[string]float64{ColumnLambdaMax: lmax, ColumnLambdaMin: lmin}
	return m, nil
}

func (e *Evaluator) measureState(ctx context.Context, s *State) (Metrics, error) {
	if err := ctx.Err(); err != nil {
		return Metrics{}, err
	}
	if s.Features == nil {
		return e.measure(ctx, s.Theta)
	}
	if e.feat == nil {
		if err := e.compileFeatures(); err != nil {
			return Metrics{}, err
		}
	}
	f := e.feat
	if e.blockwise() {
		return e.measureFeatureBlocks(ctx, s)
	}
	out, err := run(f.exec, s.Features)
	if err != nil {
		return Metrics{}, err
	}
	m := Metrics{Loss: scalar(out[0]), TraceHessian: scalar(out[1]), TraceHessianManifold: scalar(out[2]), GradNorm: scalar(out[3])}
	if err := viewOf(e.b, s.Features, func(zt []float64) {
		err = e.fromFeatures(ctx, &m, zt, e.p.M, e.p.N, e.opt.TheoryGapNeuronMajor)
	}); err != nil {
		return m, err
	}
	if err != nil {
		return m, err
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	if e.p.N <= MaxMetricsN {
		if tp, err := f.tan.atLean(s.Features, e.b); err == nil {
			if norm, err := tp.gradNorm(); err == nil {
				m.RiemannianGradNorm = norm
			}
			tp.release()
		}
		if err := ctx.Err(); err != nil {
			return m, err
		}
	}
	switch {
	case e.p.M*e.p.D <= smallTheta:
		if s.Theta == nil {
			if err := f.eng.sync(s); err != nil {
				return m, err
			}
		}
		m.SingularValuesTheta = thetaSingularValues(tensors.MustCopyFlatData[float64](s.Theta), e.p.M, e.p.D)
	case singularValuesOK(e.p.M, e.p.D):
		gram, err := f.thetaGram(ctx, s)
		if err != nil {
			return m, err
		}
		m.SingularValuesTheta = singularValuesFromGram(gram, min(e.p.M, e.p.D))
	default:
		m.SingularValuesTheta = nanSlice(min(e.p.M, e.p.D))
	}
	return m, nil
}

// thetaGram returns the Gram matrix of Θ's smaller side at a feature state
// without forming Θ. With Θ = Θ₀ − S X: when d ≤ m, ΘᵀΘ = Θ₀ᵀΘ₀ − (Θ₀ᵀS)X −
// Xᵀ(SᵀΘ₀) + Xᵀ(SᵀS)X (d×d); when m < d, ΘΘᵀ = Θ₀Θ₀ᵀ − P Sᵀ − S Pᵀ + S G Sᵀ
// with P = Θ₀Xᵀ (m×m). The products over Θ₀ run on the host (gonum) on Θ₀'s
// own memory (a graph would transpose-copy it), once per Θ₀ for the costly
// ones.
func (f *featureEval) thetaGram(ctx context.Context, s *State) (*mat.SymDense, error) {
	p := f.eng.p
	shiftT, err := f.eng.shift(s)
	if err != nil {
		return nil, err
	}
	defer shiftT.FinalizeAll()
	x := mat.NewDense(p.N, p.D, p.X)
	if f.gramOf != s.Base {
		f.baseGram, f.baseX = nil, nil
		var gerr error
		err = viewOf(f.eng.b, s.Base, func(flat []float64) {
			var g *mat.SymDense
			if g, gerr = gramOfSmallerSide(ctx, flat, p.M, p.D); gerr != nil {
				return
			}
			f.baseGram = g
			if p.M < p.D {
				f.baseX = &mat.Dense{}
				f.baseX.Mul(mat.NewDense(p.M, p.D, flat), x.T())
			}
		})
		if err == nil {
			err = gerr
		}
		if err != nil {
			return nil, err
		}
		f.gramOf = s.Base
	}
	k := min(p.M, p.D)
	g := mat.NewSymDense(k, nil)
	var inner error
	err = viewOf(f.eng.b, shiftT, func(sflat []float64) {
		shift := mat.NewDense(p.M, p.N, sflat)
		if p.M < p.D {
			var ps, sg, sgs mat.Dense
			ps.Mul(f.baseX, shift.T())
			sg.Mul(shift, mat.NewDense(p.N, p.N, p.Gram()))
			sgs.Mul(&sg, shift.T())
			for i := range k {
				for j := i; j < k; j++ {
					g.SetSym(i, j, f.baseGram.At(i, j)-ps.At(i, j)-ps.At(j, i)+sgs.At(i, j))
				}
			}
			return
		}
		var ss mat.Dense // SᵀS (n×n)
		ss.Mul(shift.T(), shift)
		var bs mat.Dense // Θ₀ᵀS (d×n)
		if berr := viewOf(f.eng.b, s.Base, func(flat []float64) {
			bs.Mul(mat.NewDense(p.M, p.D, flat).T(), shift)
		}); berr != nil {
			inner = berr
			return
		}
		var bsx, ssx, xssx mat.Dense
		bsx.Mul(&bs, x)
		ssx.Mul(&ss, x)
		xssx.Mul(x.T(), &ssx)
		for i := range k {
			for j := i; j < k; j++ {
				g.SetSym(i, j, f.baseGram.At(i, j)-bsx.At(i, j)-bsx.At(j, i)+xssx.At(i, j))
			}
		}
	})
	if err == nil {
		err = inner
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// gramOfSmallerSide returns a aᵀ (rows ≤ cols) or aᵀa for the rows×cols
// row-major a, summed over blocks of a's longer side with ctx checked
// between blocks.
func gramOfSmallerSide(ctx context.Context, a []float64, rows, cols int) (*mat.SymDense, error) {
	full := mat.NewDense(rows, cols, a)
	k, long := min(rows, cols), max(rows, cols)
	g := mat.NewSymDense(k, nil)
	// Blocks of about 2^26 multiply-adds: tens of milliseconds each.
	block := max(1, min(long, (1<<26)/max(1, k*k)))
	for lo := 0; lo < long; lo += block {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+block, long)
		if rows <= cols {
			g.SymRankK(g, 1, full.Slice(0, rows, lo, hi)) // a[:, lo:hi] a[:, lo:hi]ᵀ
		} else {
			g.SymRankK(g, 1, full.Slice(lo, hi, 0, cols).T()) // a[lo:hi]ᵀ a[lo:hi]
		}
	}
	return g, nil
}

// viewOf passes t's float64 data to fn without copying it where backend b
// shares memory with the host (SimpleGo); elsewhere through a local copy
// that is dropped afterwards.
func viewOf(b backends.Backend, t *tensors.Tensor, fn func(flat []float64)) error {
	if v, ok := sharedData(b, t); ok {
		fn(v)
		return nil
	}
	hadLocal := t.IsLocal()
	err := tensors.ConstFlatData(t, fn)
	if !hadLocal && !t.IsShared() && t.IsOnAnyDevice() {
		t.FinalizeLocal()
	}
	return err
}

// sharedData is t's float64 data in the backend's own buffer, where t lives
// only there and b shares memory with the host (SimpleGo); ok is false
// elsewhere.
func sharedData(b backends.Backend, t *tensors.Tensor) (v []float64, ok bool) {
	if t.IsLocal() || !b.HasSharedBuffers() {
		return nil, false
	}
	buf, err := t.Buffer(b, 0)
	if err != nil {
		return nil, false
	}
	flat, err := b.BufferData(buf)
	if err != nil {
		return nil, false
	}
	v, ok = flat.([]float64)
	return v, ok
}

// fromFeatures fills the metrics that come from Z given as rows×cols
// (n×m, or Zᵀ m×n): theory gap, singular values, effective rank.
func (e *Evaluator) fromFeatures(ctx context.Context, m *Metrics, z []float64, rows, cols int, gap func(z []float64, n, m int) float64) error {
	m.TraceMin, m.EffectiveRank, m.RiemannianGradNorm = math.NaN(), math.NaN(), math.NaN()
	if e.opt.OK {
		m.TraceMin = e.opt.TraceMin
	}
	m.TheoryGap = gap(z, e.p.N, e.p.M)
	k := min(e.p.N, e.p.M)
	switch {
	case rows*cols <= smallTheta:
		if sv, err := linalg.SingularValues(z, rows, cols); err == nil {
			m.SingularValuesZ = sv
		} else {
			m.SingularValuesZ = nanSlice(k)
			return nil
		}
	case singularValuesOK(rows, cols):
		// Large Z: singular values from its k×k Gram matrix, built on Z's own
		// memory (an SVD would copy it).
		g, err := gramOfSmallerSide(ctx, z, rows, cols)
		if err != nil {
			return err
		}
		m.SingularValuesZ = singularValuesFromGram(g, k)
	default:
		m.SingularValuesZ = nanSlice(k)
		return nil
	}
	m.EffectiveRank = linalg.EffectiveRank(m.SingularValuesZ)
	return nil
}

func thetaSingularValues(theta []float64, m, d int) []float64 {
	if sv, err := linalg.SingularValues(theta, m, d); err == nil {
		return sv
	}
	return nanSlice(min(m, d))
}

// singularValuesFromGram returns the k largest √λ of a Gram matrix, descending.
func singularValuesFromGram(g *mat.SymDense, k int) []float64 {
	var eig mat.EigenSym
	if !eig.Factorize(g, false) {
		return nanSlice(k)
	}
	vals := eig.Values(nil)
	d := len(vals)
	out := make([]float64, k)
	for i := range k {
		if v := vals[d-1-i]; math.IsNaN(v) {
			out[i] = v
		} else {
			out[i] = math.Sqrt(math.Max(v, 0))
		}
	}
	return out
}

// Features returns Z = XΘᵀ (n×m, row-major) at Θ.
func (e *Evaluator) Features(theta *tensors.Tensor) ([]float64, error) {
	out, err := run(e.features, theta)
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float64](out[0]), nil
}

// Optimum returns the theory's prediction the metrics compare against.
func (e *Evaluator) Optimum() regularizers.Optimum { return e.opt }

// Measure computes the metrics at Θ (Step, WallSeconds and Extra are left to the caller).
func (e *Evaluator) Measure(theta *tensors.Tensor) (Metrics, error) {
	return e.measure(context.Background(), theta)
}

func (e *Evaluator) measure(ctx context.Context, theta *tensors.Tensor) (Metrics, error) {
	p := e.p
	var m Metrics
	if e.blockwise() {
		var err error
		if verr := viewOf(e.b, theta, func(flat []float64) { err = e.measureBlocks(ctx, &m, thetaZtRows(p, flat)) }); verr != nil {
			return m, verr
		}
		if err != nil {
			return m, err
		}
	} else {
		out, err := run(e.exec, theta)
		if err != nil {
			return Metrics{}, err
		}
		m = Metrics{
			Loss:                 scalar(out[0]),
			TraceHessian:         scalar(out[1]),
			TraceHessianManifold: scalar(out[2]),
			GradNorm:             scalar(out[3]),
		}
		if err := e.fromFeatures(ctx, &m, tensors.MustCopyFlatData[float64](out[4]), e.p.N, e.p.M, e.opt.TheoryGap); err != nil {
			return m, err
		}
	}
	var err error
	switch {
	case p.M*p.D <= smallTheta:
		m.SingularValuesTheta = thetaSingularValues(tensors.MustCopyFlatData[float64](theta), p.M, p.D)
	case singularValuesOK(p.M, p.D):
		// On Θ's own memory: an SVD would copy it.
		var g *mat.SymDense
		if verr := viewOf(e.b, theta, func(flat []float64) { g, err = gramOfSmallerSide(ctx, flat, p.M, p.D) }); verr != nil {
			return m, verr
		}
		if err != nil {
			return m, err
		}
		m.SingularValuesTheta = singularValuesFromGram(g, min(p.M, p.D))
	default:
		m.SingularValuesTheta = nanSlice(min(p.M, p.D))
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	if p.N <= MaxMetricsN && !e.blockwise() {
		if tp, err := e.tan.at(theta); err == nil {
			if norm, err := tp.gradNorm(); err == nil {
				m.RiemannianGradNorm = norm
			}
		}
	}
	return m, nil
}

func nanSlice(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}
