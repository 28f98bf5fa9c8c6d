package fastdot

import "github.com/gomlx/gomlx/pkg/core/graph"

// The products below are plain matrix products shaped for SimpleGo's large-m
// behaviour: each comment says which buffer the shape avoids.

// RowsTimes returns a [m, n] · b [n, n]. For large m it is one batched
// product over row blocks: SimpleGo then multiplies block by block (and in
// parallel) instead of copying a and the output into blocked layouts, which
// would hold three extra m×n buffers at once.
func RowsTimes(a, b *graph.Node) *graph.Node { return RowsContract(a, b, 0) }

// RowsContract is RowsTimes contracting a's columns with b's axis bAxis (0:
// a·b, 1: a·bᵀ).
func RowsContract(a, b *graph.Node, bAxis int) *graph.Node {
	m, k := a.Shape().Dimensions[0], a.Shape().Dimensions[1]
	cols := b.Shape().Dimensions[1-bAxis]
	if m*k*cols <= 1<<10 {
		// Tiny (Figure 1a): SimpleGo hands even a one-batch product to a
		// worker goroutine (~1 µs); a broadcast multiply and a sum is cheaper.
		if bAxis == 1 {
			b = graph.Transpose(b, 0, 1)
		}
		return graph.ReduceSum(graph.Mul(graph.InsertAxes(a, -1), graph.InsertAxes(b, 0)), 1)
	}
	if k <= Skinny && cols <= Skinny {
		return skinnyContract(a, b, bAxis)
	}
	batches := rowBatches(m, max(k, cols))
	if batches == 1 {
		return graph.DotGeneral(a, []int{1}, nil, b, []int{bAxis}, nil)
	}
	ab := graph.Reshape(a, batches, m/batches, k)
	bb := graph.BroadcastToDims(graph.InsertAxes(b, 0), append([]int{batches}, b.Shape().Dimensions...)...)
	return graph.Reshape(graph.DotGeneral(ab, []int{2}, []int{0}, bb, []int{bAxis + 1}, []int{0}), m, cols)
}

// Skinny is the largest inner and output width for which RowsContract sums
// outer products instead of calling DotGeneral: SimpleGo pads a large
// product's operands and output to blocks of 32 columns, so [m, 3]·[3, 3]
// held two m×32 buffers, 10× the m×3 ones (48× Θ at m = 2·10⁶, d = n = 3).
const Skinny = 8

// skinnyContract is a [m, k]·b for small k and output width, as
// Σ_l a[:, l] b[l, :]: no temporary beyond two [m, cols] and one column.
func skinnyContract(a, b *graph.Node, bAxis int) *graph.Node {
	if bAxis == 1 {
		b = graph.Transpose(b, 0, 1)
	}
	k := a.Shape().Dimensions[1]
	var sum *graph.Node
	for l := range k {
		term := graph.Mul(graph.Slice(a, graph.AxisRange(), graph.AxisRange(l, l+1)), graph.Slice(b, graph.AxisRange(l, l+1), graph.AxisRange()))
		if sum == nil {
			sum = term
		} else {
			sum = graph.Add(sum, term)
		}
	}
	return sum
}

// SkinnyOrDot is a·b, by skinnyContract when the inner width is small
// (SimpleGo would pad it to 32 in copies of both operands, X [n, d] included).
func SkinnyOrDot(a, b *graph.Node) *graph.Node {
	if a.Shape().Dimensions[1] <= Skinny {
		return skinnyContract(a, b, 0)
	}
	return graph.Dot(a, b)
}

// InputRowsContract is RowsContract for a graph input a: SimpleGo copies an
// input it reshapes (it does not own it), so the row blocks are sliced out
// one at a time instead, and only the [m, cols] result is whole.
func InputRowsContract(a, b *graph.Node, bAxis int) *graph.Node {
	m, k := a.Shape().Dimensions[0], a.Shape().Dimensions[1]
	cols := b.Shape().Dimensions[1-bAxis]
	batches := rowBatches(m, max(k, cols))
	if batches == 1 || (k <= Skinny && cols <= Skinny) {
		return RowsContract(a, b, bAxis)
	}
	rows := m / batches
	parts := make([]*graph.Node, batches)
	for i := range parts {
		block := graph.Slice(a, graph.AxisRange(i*rows, (i+1)*rows))
		parts[i] = graph.DotGeneral(block, []int{1}, nil, b, []int{bAxis}, nil)
	}
	return graph.Concatenate(parts, 0)
}

// rowBatches picks how many row blocks RowsTimes uses: the fewest (at least
// two) that divide m into blocks of at most 2^16 entries, or 1 (no split)
// for small or awkward m.
func rowBatches(m, n int) int {
	if m*n < 1<<14 {
		return 1
	}
	// At least two blocks: SimpleGo spreads a batched product's blocks over
	// its workers (both cores here), a plain one runs on one core.
	for batches := 2; batches <= m; batches++ {
		if m%batches == 0 && (m/batches)*n <= 1<<16 {
			if batches > 4096 {
				return 1
			}
			return batches
		}
	}
	return 1
}
