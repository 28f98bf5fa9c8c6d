// Package linalg is flatmin's host linear algebra on gonum: what GoMLX graphs
// cannot do (SVD, Cholesky solves), on the small matrices that need it.
package linalg

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// SingularValues returns the singular values of the rows×cols row-major matrix a, largest first.
func SingularValues(a []float64, rows, cols int) ([]float64, error) {
	if len(a) != rows*cols || rows == 0 || cols == 0 {
		return nil, fmt.Errorf("linalg: %d values for a %d×%d matrix", len(a), rows, cols)
	}
	for _, v := range a {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("linalg: matrix has NaN or Inf entries")
		}
	}
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, append([]float64(nil), a...)), mat.SVDNone) {
		return nil, errors.New("linalg: SVD did not converge")
	}
	return svd.Values(nil), nil
}

// EffectiveRank is exp of the entropy of the normalised singular values
// (Roy & Vetterli, 2007): 1 for a rank-one matrix, k for k equal values.
func EffectiveRank(sv []float64) float64 {
	total := 0.0
	for _, s := range sv {
		total += s
	}
	if total == 0 {
		return 0
	}
	h := 0.0
	for _, s := range sv {
		if p := s / total; p > 0 {
			h -= p * math.Log(p)
		}
	}
	return math.Exp(h)
}

// ErrSingular reports a symmetric matrix that is not (numerically) positive definite.
var ErrSingular = errors.New("matrix is singular or not positive definite")

// SolveSPD solves A x = b for a symmetric positive definite n×n A (row-major)
// by Cholesky. It returns ErrSingular (wrapped with the reciprocal condition
// estimate) when A is not safely invertible.
func SolveSPD(a []float64, n int, b []float64) ([]float64, error) {
	if len(a) != n*n || len(b) != n {
		return nil, fmt.Errorf("linalg: SolveSPD sizes %d, %d for n = %d", len(a), len(b), n)
	}
	sym := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			sym.SetSym(i, j, 0.5*(a[i*n+j]+a[j*n+i]))
		}
	}
	var chol mat.Cholesky
	if !chol.Factorize(sym) {
		return nil, fmt.Errorf("%w (Cholesky failed)", ErrSingular)
	}
	if c := chol.Cond(); c > 1e15 || math.IsNaN(c) {
		return nil, fmt.Errorf("%w (condition number %.3g)", ErrSingular, c)
	}
	x := mat.NewVecDense(n, nil)
	if err := chol.SolveVecTo(x, mat.NewVecDense(n, append([]float64(nil), b...))); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrSingular, err)
	}
	return x.RawVector().Data, nil
}

// MinEigenSym returns the smallest eigenvalue of a symmetric n×n matrix (row-major).
func MinEigenSym(a []float64, n int) (float64, error) {
	vals, err := EigenvaluesSym(a, n)
	if err != nil {
		return 0, err
	}
	return vals[0], nil
}

// PseudoInverseSym returns the Moore–Penrose pseudo-inverse of a symmetric
// positive semi-definite n×n matrix (row-major), dropping eigenvalues below
// n·ε·λ_max (the null space of a Gram matrix X Xᵀ with n > d).
func PseudoInverseSym(a []float64, n int) ([]float64, error) {
	if len(a) != n*n {
		return nil, fmt.Errorf("linalg: PseudoInverseSym has %d values for n = %d", len(a), n)
	}
	sym := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			sym.SetSym(i, j, 0.5*(a[i*n+j]+a[j*n+i]))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, true) {
		return nil, errors.New("linalg: eigen-decomposition did not converge")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	cut := float64(n) * 0x1p-52 * math.Abs(vals[n-1])
	out := make([]float64, n*n)
	for k, l := range vals {
		if l <= cut {
			continue
		}
		for i := range n {
			vi := vecs.At(i, k) / l
			for j := range n {
				out[i*n+j] += vi * vecs.At(j, k)
			}
		}
	}
	return out, nil
}

// EigenvaluesSym returns the eigenvalues of a symmetric n×n matrix (row-major), ascending.
func EigenvaluesSym(a []float64, n int) ([]float64, error) {
	if len(a) != n*n {
		return nil, fmt.Errorf("linalg: EigenvaluesSym has %d values for n = %d", len(a), n)
	}
	sym := mat.NewSymDense(n, nil)
	for i := range n {
		for j := i; j < n; j++ {
			sym.SetSym(i, j, 0.5*(a[i*n+j]+a[j*n+i]))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, false) {
		return nil, errors.New("linalg: eigen-decomposition did not converge")
	}
	return eig.Values(nil), nil
}
