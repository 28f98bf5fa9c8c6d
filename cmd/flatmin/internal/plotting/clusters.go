package plotting

import "math"

// ClusterTol is the tolerance of ClusterLabels, relative to the mean norm of
// the neurons' feature vectors (the report's cluster counts and the neurons
// figure use it).
const ClusterTol = 0.05

// ClusterLabels groups neurons whose feature vectors (the columns of Z,
// n×m row-major) lie within tol·(mean column norm) of each other, linked
// transitively (single linkage). It returns each neuron's cluster, numbered
// 0, 1, ... in the order of each cluster's first neuron.
func ClusterLabels(z []float64, n, m int, tol float64) []int {
	cols := make([][]float64, m)
	mean := 0.0
	for j := range m {
		cols[j] = make([]float64, n)
		for i := range n {
			cols[j][i] = z[i*m+j]
		}
		mean += norm(cols[j]) / float64(m)
	}
	parent := make([]int, m)
	for j := range parent {
		parent[j] = j
	}
	var find func(int) int
	find = func(j int) int {
		if parent[j] != j {
			parent[j] = find(parent[j])
		}
		return parent[j]
	}
	d := make([]float64, n)
	for a := range m {
		for b := a + 1; b < m; b++ {
			for i := range n {
				d[i] = cols[a][i] - cols[b][i]
			}
			if norm(d) <= tol*mean {
				parent[find(a)] = find(b)
			}
		}
	}
	labels := make([]int, m)
	ids := map[int]int{}
	for j := range m {
		root := find(j)
		id, ok := ids[root]
		if !ok {
			id = len(ids)
			ids[root] = id
		}
		labels[j] = id
	}
	return labels
}

// ClusterSizes returns how many neurons each cluster of labels (from
// ClusterLabels) holds, indexed by cluster.
func ClusterSizes(labels []int) []int {
	var sizes []int
	for _, l := range labels {
		for len(sizes) <= l {
			sizes = append(sizes, 0)
		}
		sizes[l]++
	}
	return sizes
}

func norm(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s)
}
