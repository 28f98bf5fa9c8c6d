package plotting

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/flatmin/flatmin/model"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// snapshotsDir holds z_<step>.npy, Z = XΘᵀ (n×m) at a step.
const snapshotsDir = "snapshots"

// maxSnapshotTimes is how many snapshots the neurons figure shows at most.
const maxSnapshotTimes = 6

var snapshotName = regexp.MustCompile(`^z_([0-9]+)\.npy$`)

// snapshot is one z_<step>.npy file.
type snapshot struct {
	step int64
	path string
}

// listSnapshots returns dir/snapshots/z_*.npy by step; none when the folder
// is absent. theta_*.npy and other files are ignored.
func listSnapshots(dir string) ([]snapshot, error) {
	sdir := filepath.Join(dir, snapshotsDir)
	entries, err := os.ReadDir(sdir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, badInput(err)
	}
	var out []snapshot
	for _, e := range entries {
		m := snapshotName.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		step, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			return nil, badInput(fmt.Errorf("%s: step out of range", filepath.Join(sdir, e.Name())))
		}
		out = append(out, snapshot{step: step, path: filepath.Join(sdir, e.Name())})
	}
	slices.SortFunc(out, func(a, b snapshot) int { return cmp.Compare(a.step, b.step) })
	return out, nil
}

// spread picks at most k items, evenly spaced, always the first and the last.
func spread[T any](items []T, k int) []T {
	if len(items) <= k {
		return items
	}
	var out []T
	last := -1
	for i := range k {
		j := (i*(len(items)-1) + (k-1)/2) / (k - 1) // rounded i·(len−1)/(k−1)
		if j != last {
			out = append(out, items[j])
			last = j
		}
	}
	return out
}

// neuronFrames holds the chosen snapshots: frames[t][j] is neuron j's
// feature vector (column j of Z, in Rⁿ) at steps[t].
type neuronFrames struct {
	steps  []int64
	frames [][][]float64
	n      int
}

// readFrames reads the snapshots; all must have the same shape.
func readFrames(snaps []snapshot) (*neuronFrames, error) {
	nf := &neuronFrames{}
	m := 0
	for k, s := range snaps {
		z, rows, cols, err := model.ReadMatrix(s.path, "snapshot")
		if err != nil {
			return nil, badInput(err)
		}
		if rows == 0 || cols == 0 {
			return nil, badInput(fmt.Errorf("%s: empty snapshot, shape [%d %d]", s.path, rows, cols))
		}
		if k == 0 {
			nf.n, m = rows, cols
		} else if rows != nf.n || cols != m {
			return nil, badInput(fmt.Errorf("%s has shape [%d %d], but %s has [%d %d]", s.path, rows, cols, snaps[0].path, nf.n, m))
		}
		frame := make([][]float64, m)
		for j := range m {
			frame[j] = make([]float64, rows)
			for i := range rows {
				frame[j][i] = z[i*cols+j]
			}
		}
		nf.steps = append(nf.steps, s.step)
		nf.frames = append(nf.frames, frame)
	}
	return nf, nil
}

// pca is a basis of the top two principal components.
type pca struct {
	mean      []float64
	pc        [2][]float64 // unit vectors in Rⁿ; the second is zero when n = 1
	explained [2]float64   // fraction of the variance, NaN when there is none
}

// fitPCA computes ONE basis for all vectors pooled, centred by their mean,
// so that positions at different times are comparable.
func fitPCA(vectors [][]float64, n int) (*pca, error) {
	p := &pca{mean: make([]float64, n)}
	for _, v := range vectors {
		for i, x := range v {
			p.mean[i] += x / float64(len(vectors))
		}
	}
	a := mat.NewDense(len(vectors), n, nil)
	for r, v := range vectors {
		for i, x := range v {
			a.Set(r, i, x-p.mean[i])
		}
	}
	var svd mat.SVD
	if !svd.Factorize(a, mat.SVDThin) {
		return nil, errors.New("PCA: SVD did not converge")
	}
	var v mat.Dense
	svd.VTo(&v)
	s := svd.Values(nil)
	total := 0.0
	for _, x := range s {
		total += x * x
	}
	_, k := v.Dims()
	for c := range 2 {
		p.pc[c] = make([]float64, n)
		p.explained[c] = 0
		if c < k {
			mat.Col(p.pc[c], c, &v)
			orient(p.pc[c])
			p.explained[c] = s[c] * s[c] / total // NaN when all points coincide
		}
	}
	return p, nil
}

// orient flips v so its largest entry is positive: SVD signs are arbitrary,
// and this keeps the picture the same from one rendering to the next.
func orient(v []float64) {
	big := 0.0
	for _, x := range v {
		if math.Abs(x) > math.Abs(big) {
			big = x
		}
	}
	if big < 0 {
		for i := range v {
			v[i] = -v[i]
		}
	}
}

// project returns v's coordinates on the two components.
func (p *pca) project(v []float64) plotter.XY {
	var xy [2]float64
	for c := range 2 {
		for i, x := range v {
			xy[c] += (x - p.mean[i]) * p.pc[c][i]
		}
	}
	return plotter.XY{X: xy[0], Y: xy[1]}
}

// neuronsFigure is the paper's Figure 1b: every neuron's feature vector on
// the top two principal components, at up to six steps across the run, with
// each neuron's path between them in grey, and each cluster of the last
// step marked with how many neurons it holds. Nil when there are no snapshots.
func neuronsFigure(dir, prefix string) (*plot.Plot, error) {
	snaps, err := listSnapshots(dir)
	if err != nil || len(snaps) == 0 {
		return nil, err
	}
	nf, err := readFrames(spread(snaps, maxSnapshotTimes))
	if err != nil {
		return nil, err
	}
	var pooled [][]float64
	for _, frame := range nf.frames {
		pooled = append(pooled, frame...)
	}
	basis, err := fitPCA(pooled, nf.n)
	if err != nil {
		return nil, err
	}
	p := newPlot(prefix+"neurons (columns of Z) on PC1–PC2 of all shown steps pooled (one basis)",
		pcLabel(1, basis.explained[0]), pcLabel(2, basis.explained[1]))
	if err := addPaths(p, nf, basis); err != nil {
		return nil, err
	}
	for t, frame := range nf.frames {
		xy := make(plotter.XYs, len(frame))
		for j, v := range frame {
			xy[j] = basis.project(v)
		}
		sc, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Color = plotutil.Color(t)
		sc.GlyphStyle.Shape = plotutil.Shape(t)
		sc.GlyphStyle.Radius = vg.Points(4)
		p.Add(sc)
		label := fmt.Sprintf("step %d", nf.steps[t])
		if t == len(nf.frames)-1 {
			marks, sizes := clusterMarks(frame, nf.n, basis)
			label += fmt.Sprintf(": %d clusters", len(sizes))
			if marks != nil {
				p.Add(marks)
			}
		}
		p.Legend.Add(label, sc)
	}
	return p, nil
}

// clusterMarks labels each cluster of the final neurons (ClusterLabels at
// ClusterTol, on their full feature vectors, not the projection) with how
// many neurons it holds, "×k", beside its mean's projection; it returns the
// labels and the sizes by cluster.
func clusterMarks(frame [][]float64, n int, basis *pca) (*plotter.Labels, []int) {
	m := len(frame)
	z := make([]float64, n*m)
	for j, v := range frame {
		for i, x := range v {
			z[i*m+j] = x
		}
	}
	labels := ClusterLabels(z, n, m, ClusterTol)
	sizes := ClusterSizes(labels)
	centres := make([][]float64, len(sizes))
	for c := range centres {
		centres[c] = make([]float64, n)
	}
	for j, v := range frame {
		for i, x := range v {
			centres[labels[j]][i] += x / float64(sizes[labels[j]])
		}
	}
	var xyl plotter.XYLabels
	for c, centre := range centres {
		xyl.XYs = append(xyl.XYs, basis.project(centre))
		xyl.Labels = append(xyl.Labels, fmt.Sprintf("×%d", sizes[c]))
	}
	marks, err := plotter.NewLabels(xyl)
	if err != nil {
		return nil, sizes
	}
	marks.Offset = vg.Point{X: vg.Points(7), Y: vg.Points(5)}
	return marks, sizes
}

// addPaths draws each neuron's path through the chosen steps.
func addPaths(p *plot.Plot, nf *neuronFrames, basis *pca) error {
	if len(nf.frames) < 2 {
		return nil
	}
	for j := range nf.frames[0] {
		xy := make(plotter.XYs, len(nf.frames))
		for t, frame := range nf.frames {
			xy[t] = basis.project(frame[j])
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 190}
		l.Width = vg.Points(0.75)
		p.Add(l)
	}
	return nil
}

// pcLabel names an axis with the share of variance it explains.
func pcLabel(k int, explained float64) string {
	if !finite(explained) {
		return fmt.Sprintf("PC%d", k)
	}
	return fmt.Sprintf("PC%d (%.1f%% of variance)", k, 100*explained)
}
