package regularizers

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/flatmin/flatmin/model"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
)

// HVP is a symmetric operator given by its products: it returns H v for a
// vector v of the operator's dimension (and must not keep v).
type HVP func(v []float64) ([]float64, error)

// lanczos is the Lanczos iteration with full reorthogonalization: an
// orthonormal basis Q of the Krylov space of H and the tridiagonal
// T = QᵀHQ (diagonal alpha, off-diagonal beta). Full reorthogonalization
// (twice, classical Gram–Schmidt against every earlier vector) keeps Q
// orthonormal to rounding, so T's eigenvalues carry no spurious copies.
type lanczos struct {
	hvp HVP
	dim int
	// basis holds Q's vectors one after another (row i is q_i), so that
	// reorthogonalization is two matrix–vector products (BLAS, assembly
	// kernels) rather than j dot products and updates.
	basis []float64
	alpha []float64
	beta  []float64 // beta[j] couples q[j] and q[j+1]
	next  []float64 // the unnormalized residual after the last step
	scale float64   // largest |α|, |β| seen: the breakdown threshold's scale
	rng   *rand.Rand
	// restart: on breakdown (an invariant subspace), continue from a fresh
	// random vector orthogonal to Q (with β = 0), so that eigenvalues the start
	// vector did not reach (multiple ones) are still found; SLQ stops instead.
	restart    bool
	blockStart int  // index of the first vector since the last restart
	stopped    bool // broke down without restart, or the basis spans the space
}

func newLanczos(hvp HVP, start []float64, restart bool, rng *rand.Rand, steps int) *lanczos {
	q := slices.Clone(start)
	normalize(q)
	dim := len(start)
	return &lanczos{hvp: hvp, dim: dim, next: q, restart: restart, rng: rng,
		basis: make([]float64, 0, min(steps, dim)*dim)}
}

// steps is the number of basis vectors.
func (l *lanczos) steps() int { return len(l.basis) / l.dim }

// q returns the basis as a j×dim matrix.
func (l *lanczos) q() blas64.General {
	return blas64.General{Rows: l.steps(), Cols: l.dim, Stride: l.dim, Data: l.basis}
}

// step extends the basis by one vector and T by one row.
func (l *lanczos) step() error {
	j := l.steps()
	if l.stopped || j >= l.dim {
		l.stopped = true
		return nil
	}
	if j > 0 {
		b := math.Sqrt(model.HostDot(l.next, l.next))
		if b <= 1e-12*l.scale || b == 0 {
			if !l.restart {
				l.stopped = true
				return nil
			}
			b = 0
			l.blockStart = j
			l.next = l.randomOrthogonal()
			if l.next == nil {
				l.stopped = true
				return nil
			}
		} else {
			for i := range l.next {
				l.next[i] /= b
			}
		}
		l.beta = append(l.beta, b)
		l.scale = math.Max(l.scale, b)
	}
	q := l.next
	l.basis = append(l.basis, q...)
	w, err := l.hvp(q)
	if err != nil {
		return err
	}
	if len(w) != l.dim {
		return fmt.Errorf("Hessian-vector product has %d entries, want %d", len(w), l.dim)
	}
	w = slices.Clone(w)
	a := model.HostDot(q, w)
	if math.IsNaN(a) || math.IsInf(a, 0) {
		return fmt.Errorf("Lanczos: the Hessian-vector product is not finite (qᵀHq = %v)", a)
	}
	l.alpha = append(l.alpha, a)
	l.scale = math.Max(l.scale, math.Abs(a))
	// The three-term recurrence removes the large components; what it leaves
	// along earlier vectors is rounding, which one pass of Gram–Schmidt
	// against all of Q removes, and a second pass only when the first took
	// much of w away ("twice is enough": Parlett's 1/√2 criterion).
	for i := range w {
		w[i] -= a * q[i]
	}
	if j > 0 {
		prev, b := l.basis[(j-1)*l.dim:j*l.dim], l.beta[j-1]
		for i := range w {
			w[i] -= b * prev[i]
		}
	}
	before := model.HostDot(w, w)
	l.orthogonalizeOnce(w)
	if model.HostDot(w, w) < 0.5*before {
		l.orthogonalizeOnce(w)
	}
	l.next = w
	return nil
}

// orthogonalize removes from w its components along Q, twice ("twice is
// enough": the second pass cleans what rounding left after the first).
func (l *lanczos) orthogonalize(w []float64) {
	l.orthogonalizeOnce(w)
	l.orthogonalizeOnce(w)
}

// orthogonalizeOnce is one pass of classical Gram–Schmidt against Q.
func (l *lanczos) orthogonalizeOnce(w []float64) {
	j := l.steps()
	if j == 0 {
		return
	}
	q := l.q()
	c := blas64.Vector{N: j, Inc: 1, Data: make([]float64, j)}
	wv := blas64.Vector{N: l.dim, Inc: 1, Data: w}
	blas64.Gemv(blas.NoTrans, 1, q, wv, 0, c) // c = Q w
	blas64.Gemv(blas.Trans, -1, q, c, 1, wv)  // w −= Qᵀ c
}

// randomOrthogonal returns a random unit vector orthogonal to Q, or nil when
// none is left (Q spans the space to rounding).
func (l *lanczos) randomOrthogonal() []float64 {
	for range 3 {
		v := make([]float64, l.dim)
		for i := range v {
			v[i] = l.rng.NormFloat64()
		}
		norm0 := math.Sqrt(model.HostDot(v, v))
		l.orthogonalize(v)
		if n := math.Sqrt(model.HostDot(v, v)); n > 1e-8*norm0 {
			for i := range v {
				v[i] /= n
			}
			return v
		}
	}
	return nil
}

// ritz returns T's eigenvalues (ascending) and eigenvectors (columns).
func (l *lanczos) ritz() ([]float64, *mat.Dense, error) {
	k := len(l.alpha)
	t := mat.NewSymDense(k, nil)
	for i := range k {
		t.SetSym(i, i, l.alpha[i])
		if i+1 < k {
			t.SetSym(i, i+1, l.beta[i])
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(t, true) {
		return nil, nil, errors.New("Lanczos: eigen-decomposition of the tridiagonal matrix failed")
	}
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	return eig.Values(nil), &vecs, nil
}

// LanczosOptions control LanczosEigen.
type LanczosOptions struct {
	// MaxSteps bounds the Krylov dimension; each step is one Hessian-vector
	// product and keeps one vector of the operator's size. The default is
	// DefaultLanczosSteps(dim, k).
	MaxSteps int
	// Tol: a Ritz pair (θ, y) counts as converged when ‖Hy − θy‖ ≤ Tol·‖T‖
	// (default 1e-10); the residual is |β_last · last component of T's eigenvector|.
	Tol     float64
	Seed    uint64 // of the start vector
	Vectors bool   // also return the eigenvectors
}

// lanczosBasisBudget bounds the memory of the default Lanczos basis (values).
const lanczosBasisBudget = 1 << 27 // 1 GiB of float64

// DefaultLanczosSteps is LanczosEigen's default step bound: 300, or fewer
// where 300 vectors of dim would exceed 1 GiB (but at least 2k + 10), and
// never more than dim.
func DefaultLanczosSteps(dim, k int) int {
	return min(dim, max(min(300, lanczosBasisBudget/max(dim, 1)), 2*k+10))
}

// Eigen is what LanczosEigen finds.
type Eigen struct {
	Top        []float64   // the k largest eigenvalues, descending
	Min        float64     // the smallest eigenvalue
	TopVectors [][]float64 // unit eigenvectors of Top, when asked
	MinVector  []float64   // unit eigenvector of Min, when asked
	Steps      int         // Hessian-vector products used
	Converged  bool        // every returned pair met Tol (or the basis spans the space)
}

// ErrLanczosNoConvergence is returned (with the best estimates) when MaxSteps
// steps did not bring every wanted Ritz pair within Tol.
var ErrLanczosNoConvergence = errors.New("Lanczos did not converge")

// LanczosEigen returns the k largest eigenvalues and the smallest eigenvalue of
// the symmetric operator hvp of dimension dim by the Lanczos iteration with full
// reorthogonalization, from a Gaussian start vector, stopping once every one of
// those k+1 Ritz pairs has converged (checked every few steps) or the basis
// spans the space (then T is H in another basis and its eigenvalues are H's
// to rounding). A breakdown (an invariant Krylov space) restarts from a
// random vector orthogonal to the basis, until a restarted block changes
// neither the k largest nor the smallest: repeated eigenvalues are then
// found with their multiplicity. (Without a breakdown, a single start
// vector cannot see a second copy of an eigenvalue.)
func LanczosEigen(hvp HVP, dim, k int, opt LanczosOptions) (Eigen, error) {
	if k < 1 || k > dim {
		return Eigen{}, fmt.Errorf("Lanczos: want 1 ≤ k ≤ %d eigenvalues, got %d", dim, k)
	}
	if opt.MaxSteps <= 0 {
		opt.MaxSteps = DefaultLanczosSteps(dim, k)
	}
	opt.MaxSteps = min(max(opt.MaxSteps, k), dim)
	if opt.Tol <= 0 {
		opt.Tol = 1e-10
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x1a2c05))
	start := make([]float64, dim)
	for i := range start {
		start[i] = rng.NormFloat64()
	}
	l := newLanczos(hvp, start, true, rng, opt.MaxSteps)
	var atBreakdown []float64 // the wanted values when the last block became invariant
	for {
		if err := l.step(); err != nil {
			return Eigen{}, err
		}
		j := len(l.alpha)
		// The block since the last restart spans an invariant subspace: its
		// Ritz values are eigenvalues, and the next step restarts.
		invariant := math.Sqrt(model.HostDot(l.next, l.next)) <= 1e-12*l.scale
		done := l.stopped || j >= opt.MaxSteps
		if !done && !invariant && (j < k+1 || j%5 != 0) {
			continue
		}
		vals, vecs, err := l.ritz()
		if err != nil {
			return Eigen{}, err
		}
		norm := math.Max(math.Abs(vals[0]), math.Abs(vals[j-1]))
		wanted := append([]float64{vals[0]}, vals[max(j-k, 0):]...)
		converged := false
		switch {
		case l.stopped || j == dim:
			converged = true
		case invariant:
			// A restart explores the rest of the space, where repeated
			// eigenvalues' other copies lie; stop once a restarted block has
			// left the wanted values as they were.
			converged = j >= k+1 && atBreakdown != nil && slices.EqualFunc(atBreakdown, wanted,
				func(a, b float64) bool { return math.Abs(a-b) <= opt.Tol*norm })
			atBreakdown = wanted
		case j >= k+1 && (l.blockStart == 0 || j-l.blockStart >= 10):
			// Residuals ‖Hy − θy‖ = |β_j s_j| of the wanted Ritz pairs; a block
			// after a restart gets 10 steps to find what it can.
			bnext := math.Sqrt(model.HostDot(l.next, l.next))
			converged = true
			for _, c := range append([]int{0}, seq(j-k, j)...) {
				if math.Abs(bnext*vecs.At(j-1, c)) > opt.Tol*norm {
					converged = false
				}
			}
		}
		if converged || done {
			kk := min(k, j)
			res := Eigen{Min: vals[0], Steps: j, Converged: converged}
			for c := j - 1; c >= j-kk; c-- {
				res.Top = append(res.Top, vals[c])
				if opt.Vectors {
					res.TopVectors = append(res.TopVectors, l.ritzVector(vecs, c))
				}
			}
			if opt.Vectors {
				res.MinVector = l.ritzVector(vecs, 0)
			}
			if !converged {
				return res, fmt.Errorf("%w in %d steps", ErrLanczosNoConvergence, j)
			}
			return res, nil
		}
	}
}

func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// ritzVector is Q s for column c of T's eigenvectors.
func (l *lanczos) ritzVector(vecs *mat.Dense, c int) []float64 {
	j := l.steps()
	s := make([]float64, j)
	for i := range s {
		s[i] = vecs.At(i, c)
	}
	y := make([]float64, l.dim)
	blas64.Gemv(blas.Trans, 1, l.q(), blas64.Vector{N: j, Inc: 1, Data: s}, 0, blas64.Vector{N: l.dim, Inc: 1, Data: y})
	normalize(y)
	return y
}
