package regularizers

import (
	"fmt"

	"github.com/flatmin/flatmin/model"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// HutchinsonTraceHessian is Hutchinson's estimate of Tr D²L (the quantity
// TraceHessian computes exactly) for the network's loss at fw, built from the
// model's structure instead of autodiff: for a probe V ∈ {±1}^{m×d},
//
//	Vᵀ(D²L)V = 2‖J V‖² + 2 Σ_i r_i Σ_j w_j φ″(z_ij) (v_j·x_i)²,
//	(J V)_i = Σ_j A_ij (v_j·x_i),
//
// so all K quadratic forms come from P_kij = v_kj·x_i (one batched matrix
// product, K·m·n·d multiply-adds) and the forward's A, φ″ and r — no
// Hessian-vector products and no [K, m, d] gradients.
//
// It draws the same probes from rng as Hutchinson does for a parameter shaped
// like Θ [m, d], so for the same rng the two estimates agree up to rounding.
// It returns the new RNG state, the mean of the K quadratic forms and its
// standard error (the sample standard deviation over √K; 0 for K = 1).
//
// fw may be in Θ layout or built from the features (ForwardFeatures); Θ
// itself is never read, only Z and the data. Batched forwards are not
// supported.
func HutchinsonTraceHessian(fw *model.Forward, rng *Node, probes int) (newRNG, estimate, stderr *Node) {
	checkProbes(probes)
	if fw.Z.Rank() != 2 {
		panic(fmt.Sprintf("HutchinsonTraceHessian needs an unbatched forward, Z is %s", fw.Z.Shape()))
	}
	p := fw.Net.Problem
	m, d, n := p.M, p.D, p.N
	g := fw.Z.Graph()
	dtype := fw.Z.DType()

	// The probes' bit planes: vb[b, (k, r), c] is 2^b where entry (b·W + r, c)
	// of probe k is +1 and 0 where it is −1.
	newRNG, words := probeWords(rng, probes, m, d) // [K, W, d]
	w := words.Shape().Dimensions[1]
	rows := probes * w
	vb := Reshape(ConvertDType(probeBitPlanes(words), dtype), probeBits, rows, d)

	// P[b, i, (k, r)] = v_kj·x_i for neuron j = b·W + r: batch b against the
	// columns 2^(1−b)·x_i gives Σ_c 2β_c x_ic for the probe's bits β (the
	// powers of two are exact), and Σ_c (2β_c − 1) x_ic is that less σ_i = Σ_c x_ic.
	// Copy b as a batch of its own keeps each product small, which SimpleGo
	// runs faster than one large product.
	xb := ConvertDType(Const(g, probeColumns(p)), dtype)               // [32, n, d]
	proj := DotGeneral(xb, []int{2}, []int{0}, vb, []int{2}, []int{0}) // [32, n, K·W]
	proj = Sub(proj, ConvertDType(Const(g, rowSums(p, rows)), dtype))
	proj = Reshape(proj, probeBits, n, probes, w)

	// Per example and probe: s = (J v_k)_i and t = Σ_j w_j φ″(z_ij) P², then
	// v_kᵀ(D²L)v_k = 2 Σ_i (s² + r_i t). s is model.Forward.JvOf for all K
	// probes at once in their bit layout: JvOf would need P copied into Z's
	// layout ([K, n, m]) and a broadcast product instead of this batched one.
	a := byProbeRow(fw, fw.A(), w)                                                       // [32, n, W]
	c := byProbeRow(fw, weighted(fw, fw.Phi(2)), w)                                      // [32, n, W]
	s := ReduceSum(DotGeneral(proj, []int{3}, []int{0, 1}, a, []int{2}, []int{0, 1}), 0) // [n, K]
	t := ReduceSum(DotGeneral(Square(proj), []int{3}, []int{0, 1}, c, []int{2}, []int{0, 1}), 0)
	quad := MulScalar(ReduceSum(Add(Square(s), Mul(t, InsertAxes(fw.R, -1))), 0), 2) // [K]
	estimate, stderr = meanAndStderr(quad)
	return newRNG, estimate, stderr
}

// weighted returns v ∘ w along the neurons (v itself for unit weights).
func weighted(fw *model.Forward, v *Node) *Node {
	if fw.Net.Problem.UnitWeights() {
		return v
	}
	return Mul(v, fw.PerNeuron(fw.Net.W))
}

// byProbeRow lays out v (shaped like fw.Z) as [32, n, W], neuron j = b·W + r
// at [b, :, r], zero-padding the neurons to 32·W: the layout of the probes'
// rows in HutchinsonTraceHessian.
func byProbeRow(fw *model.Forward, v *Node, w int) *Node {
	m, n := fw.Net.Problem.M, fw.Net.Problem.N
	pad := probeBits*w - m
	if fw.NeuronMajor { // [m, n]
		if pad > 0 {
			v = Concatenate([]*Node{v, Zeros(v.Graph(), shapes.Make(v.DType(), pad, n))}, 0)
		}
		return TransposeAllAxes(Reshape(v, probeBits, w, n), 0, 2, 1)
	}
	if pad > 0 { // [n, m]
		v = Concatenate([]*Node{v, Zeros(v.Graph(), shapes.Make(v.DType(), n, pad))}, 1)
	}
	return TransposeAllAxes(Reshape(v, n, probeBits, w), 1, 0, 2)
}

// probeColumns is [32, n, d] float64: at [b, i] the row 2^(1−b)·x_i, which
// against copy b of the masked words (entries 2^b·β) gives Σ_c 2β_c x_ic.
func probeColumns(p *model.Problem) *tensors.Tensor {
	n, d := p.N, p.D
	out := make([]float64, probeBits*n*d)
	for b := range probeBits {
		scale := 2 / float64(uint64(1)<<b)
		for i, v := range p.X {
			out[b*n*d+i] = scale * v
		}
	}
	return tensors.FromFlatDataAndDimensions(out, probeBits, n, d)
}

// rowSums is [32, n, cols] float64 with σ_i = Σ_c x_ic at every [b, i, :].
func rowSums(p *model.Problem, cols int) *tensors.Tensor {
	n, d := p.N, p.D
	out := make([]float64, probeBits*n*cols)
	for i := range n {
		sigma := 0.0
		for _, v := range p.X[i*d : (i+1)*d] {
			sigma += v
		}
		for b := range probeBits {
			row := out[(b*n+i)*cols : (b*n+i+1)*cols]
			for c := range row {
				row[c] = sigma
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(out, probeBits, n, cols)
}
