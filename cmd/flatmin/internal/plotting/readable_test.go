package plotting

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Inside a decade or two, the log axis gets at least two labelled ticks, each
// labelled with its exact value, and on 1-2-5 ranges exactly the values d·10^e
// (d ∈ {1, 2, 5}) in range, enumerated here independently.
func TestLogTicksInsideADecade(t *testing.T) {
	for _, r := range [][2]float64{{0.3, 0.9}, {1e-3, 5e-3}, {2, 2000}, {3, 300}, {0.011, 0.097}} {
		var labelled []float64
		for _, tk := range (logTicks{}).Ticks(r[0], r[1]) {
			if tk.Label == "" {
				continue
			}
			v, err := strconv.ParseFloat(tk.Label, 64)
			if err != nil || v != tk.Value {
				t.Errorf("%v: tick %v labelled %q", r, tk.Value, tk.Label)
			}
			if v >= r[0] && v <= r[1] {
				labelled = append(labelled, v)
			}
		}
		slices.Sort(labelled)
		if len(labelled) < 2 || len(labelled) > 10 {
			t.Errorf("%v: labelled %v", r, labelled)
		}
		var want []float64
		for e := -10; e <= 10; e++ {
			for _, d := range []float64{1, 2, 5} {
				v := d * math.Pow(10, float64(e))
				if v >= r[0]*(1-1e-12) && v <= r[1]*(1+1e-12) {
					want = append(want, v)
				}
			}
		}
		if len(want) < 2 || len(want) > 3 && math.Log10(r[1]/r[0]) > 2.5 {
			continue // 1-2-5 labels too few, or powers of ten suffice
		}
		if len(labelled) != len(want) {
			t.Errorf("%v: labelled %v, want 1-2-5 values %v", r, labelled, want)
			continue
		}
		for i := range want {
			if math.Abs(labelled[i]-want[i]) > 1e-12*want[i] {
				t.Errorf("%v: labelled %v, want 1-2-5 values %v", r, labelled, want)
				break
			}
		}
	}
}

// singularTable returns the columns sv_z_1..k and sv_theta_1..k of a table.
func singularTable(k, rows int) *table {
	t := &table{cols: map[string][]float64{}}
	for r := range rows {
		t.cols["step"] = append(t.cols["step"], float64(100*r))
		for j := 1; j <= k; j++ {
			for _, p := range []string{"sv_z_", "sv_theta_"} {
				name := fmt.Sprintf("%s%d", p, j)
				t.cols[name] = append(t.cols[name], math.Exp(-float64(j*r)/10))
			}
		}
	}
	return t
}

// With 30 singular values the figure draws the top few of each, in colours
// that do not repeat among Z's lines (nor among Θ's), and says so in its title.
func TestSingularValuesFigureDrawsTheTopFew(t *testing.T) {
	for _, k := range []int{3, 30} {
		f := singularValuesFigure(singularTable(k, 5), "")
		ls, _, _, err := f.layers()
		if err != nil {
			t.Fatal(err)
		}
		lines := 0
		seen := map[string]bool{}
		for _, l := range ls {
			if l.kind == layerLine {
				lines++
			}
		}
		for _, s := range f.lines {
			key := fmt.Sprint(s.colour, s.dashes)
			if seen[key] || s.colour >= 7 {
				t.Errorf("k=%d: colour %d, dashes %d repeat (or leave the palette)", k, s.colour, s.dashes)
			}
			seen[key] = true
		}
		if want := 2 * min(k, maxSingularLines); lines != want {
			t.Errorf("k=%d: %d lines drawn, want %d", k, lines, want)
		}
		if top := strings.Contains(f.title, "top"); top != (k > maxSingularLines) {
			t.Errorf("k=%d: title %q", k, f.title)
		}
	}
}

// F* is drawn under the curve, dashed: a Tr D²L curve that reaches it is on top.
func TestReferenceLinesUnderTheData(t *testing.T) {
	tb := &table{cols: map[string][]float64{
		"step":                   {0, 100, 200},
		"trace_hessian_manifold": {3, 2, 2},
		"trace_min":              {2, 2, 2},
	}}
	ls, _, _, err := traceFigure(tb, "").layers()
	if err != nil {
		t.Fatal(err)
	}
	firstLine, lastRef := len(ls), -1
	for i, l := range ls {
		switch l.kind {
		case layerLine:
			firstLine = min(firstLine, i)
		case layerRef:
			lastRef = i
		}
	}
	if lastRef < 0 || firstLine == len(ls) || lastRef > firstLine {
		t.Errorf("layers %v: the reference must come before every curve", ls)
	}
}

// bruteClusterSizes counts the connected components of the graph linking
// neurons within tol·(mean norm), by depth-first search, sorted by size.
func bruteClusterSizes(cols [][]float64, tol float64) []int {
	mean := 0.0
	for _, c := range cols {
		s := 0.0
		for _, x := range c {
			s += x * x
		}
		mean += math.Sqrt(s) / float64(len(cols))
	}
	near := func(a, b []float64) bool {
		s := 0.0
		for i := range a {
			s += (a[i] - b[i]) * (a[i] - b[i])
		}
		return math.Sqrt(s) <= tol*mean
	}
	seen := make([]bool, len(cols))
	var sizes []int
	for start := range cols {
		if seen[start] {
			continue
		}
		stack, size := []int{start}, 0
		seen[start] = true
		for len(stack) > 0 {
			j := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			size++
			for k := range cols {
				if !seen[k] && near(cols[j], cols[k]) {
					seen[k] = true
					stack = append(stack, k)
				}
			}
		}
		sizes = append(sizes, size)
	}
	slices.Sort(sizes)
	return sizes
}

// The neurons figure's cluster marks count the neurons of each final cluster
// as a brute-force search of the linkage graph does.
func TestClusterMarksCountNeurons(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := range 20 {
		n, m := 2+rng.IntN(4), 1+rng.IntN(25)
		groups := 1 + rng.IntN(m)
		centres := make([][]float64, groups)
		for g := range centres {
			centres[g] = make([]float64, n)
			for i := range centres[g] {
				centres[g][i] = rng.NormFloat64()
			}
		}
		frame := make([][]float64, m)
		for j := range frame {
			c := centres[rng.IntN(groups)]
			frame[j] = make([]float64, n)
			for i := range n {
				// some spread near the tolerance, so chains and splits happen
				frame[j][i] = c[i] + 0.03*rng.NormFloat64()
			}
		}
		basis, err := fitPCA(frame, n)
		if err != nil {
			t.Fatal(err)
		}
		marks, sizes := clusterMarks(frame, n, basis)
		want := bruteClusterSizes(frame, ClusterTol)
		got := append([]int(nil), sizes...)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("trial %d: cluster sizes %v, brute force %v", trial, got, want)
		}
		if marks == nil || len(marks.Labels) != len(sizes) {
			t.Fatalf("trial %d: %v marks for %d clusters", trial, marks, len(sizes))
		}
		for c, text := range marks.Labels {
			if text != fmt.Sprintf("×%d", sizes[c]) {
				t.Errorf("trial %d: cluster %d of %d neurons marked %q", trial, c, sizes[c], text)
			}
		}
	}
}
