package plotting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"gonum.org/v1/plot/plotter"
)

// header is metrics.csv's for n = 3 points, m = 4 neurons, d = 3, with the
// riemannian trainer's extras.
const header = "step,loss,trace_hessian,trace_hessian_manifold,trace_min,theory_gap,grad_norm," +
	"riemannian_grad_norm,effective_rank,sv_z_1,sv_z_2,sv_z_3,sv_theta_1,sv_theta_2,sv_theta_3," +
	"eta,halvings,retraction_iters,wall_seconds\n"

// runOptions shapes a synthetic run.
type runOptions struct {
	rows      int
	theory    bool // trace_min and theory_gap defined
	snapshots int  // z_<step>.npy files
}

// writeRun writes a synthetic run directory with NaN and zero values where a
// log axis must drop them.
func writeRun(t *testing.T, dir string, o runOptions) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(header)
	for r := range o.rows {
		step := float64(100 * r)
		decay := math.Exp(-float64(r) / 2)
		loss := 0.5 * decay
		if r == 1 {
			loss = 0 // off a log axis
		}
		fstar, gap := math.NaN(), math.NaN()
		if o.theory {
			fstar, gap = 1.5, 0.8*decay
			if r == 0 {
				gap = math.NaN()
			}
		}
		sv := []float64{2 + decay, decay, 0.1 * decay, 1.5, 0.5 * decay, 0}
		if r == 2 {
			sv[1] = math.NaN()
		}
		vals := append([]float64{step, loss, 1.5 + 3*decay, 1.5 + 3*decay, fstar, gap, decay, math.NaN(), 1 + decay}, sv...)
		vals = append(vals, 1, 0, 2, 0.01*float64(r))
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprint(&b, v)
		}
		b.WriteByte('\n')
	}
	mustWrite(t, filepath.Join(dir, "metrics.csv"), b.String())
	mustWrite(t, filepath.Join(dir, "summary.json"), `{"trainer": "riemannian"}`)
	if o.snapshots == 0 {
		return
	}
	sdir := filepath.Join(dir, "snapshots")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		t.Fatal(err)
	}
	const n, m = 3, 4
	for s := range o.snapshots {
		step := 100 * s
		z := make([]float64, n*m)
		for i := range n {
			for j := range m {
				// neurons drift towards a common vector as s grows
				z[i*m+j] = float64(i+1) + float64(j-i)/float64(s+1)
			}
		}
		if err := runio.WriteNpy(filepath.Join(sdir, fmt.Sprintf("z_%010d.npy", step)), z, n, m); err != nil {
			t.Fatal(err)
		}
		// theta files sit beside them and must be ignored (other shape)
		if err := runio.WriteNpy(filepath.Join(sdir, fmt.Sprintf("theta_%010d.npy", step)), make([]float64, m*3), m, 3); err != nil {
			t.Fatal(err)
		}
	}
}

func mustWrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkFigures asserts that exactly the named figures exist in dir, as a
// decodable non-empty PNG and an SVG, and that paths lists them all.
func checkFigures(t *testing.T, dir string, paths []string, names ...string) {
	t.Helper()
	var want []string
	for _, name := range names {
		for _, format := range Formats {
			want = append(want, filepath.Join(dir, name+"."+format))
		}
	}
	if !slices.Equal(paths, want) {
		t.Errorf("paths written:\n%v\nwant\n%v", paths, want)
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name+".png"))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Errorf("%s.png: %v", name, err)
		} else if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
			t.Errorf("%s.png is %v", name, b)
		}
		svg, err := os.ReadFile(filepath.Join(dir, name+".svg"))
		if err != nil {
			t.Error(err)
		} else if !bytes.HasPrefix(svg, []byte("<?xml")) || !bytes.Contains(svg, []byte("<svg")) {
			t.Errorf("%s.svg does not look like SVG: %.60q", name, svg)
		}
	}
	// every image in dir is one of the expected, and no temp file is left
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		name := e.Name()
		if strings.Contains(name, ".tmp-") {
			t.Errorf("temporary file left behind: %s", name)
		}
		if ext := filepath.Ext(name); (ext == ".png" || ext == ".svg") && !slices.Contains(want, filepath.Join(dir, name)) {
			t.Errorf("unexpected figure %s", name)
		}
	}
}

func TestPlotRunWritesEveryFigure(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, runOptions{rows: 8, theory: true, snapshots: 9})
	paths, err := PlotRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, dir, paths, "singular_values", "trace", "theory_gap", "neurons")
	// the legend names steps of the chosen snapshots: first and last included
	svg, _ := os.ReadFile(filepath.Join(dir, "neurons.svg"))
	for _, want := range []string{"step 0", "step 800", "PC1"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("neurons.svg lacks %q", want)
		}
	}
	svg, _ = os.ReadFile(filepath.Join(dir, "singular_values.svg"))
	for _, want := range []string{"σ1(Z)", "σ2(Θ)", "riemannian"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("singular_values.svg lacks %q", want)
		}
	}
	if bytes.Contains(svg, []byte("σ3(Θ)")) {
		t.Error("σ3(Θ) is 0 throughout, so off the log axis, yet has a legend entry")
	}
	// rendering again replaces the files in place
	again, err := PlotRun(dir)
	if err != nil || !slices.Equal(again, paths) {
		t.Errorf("second PlotRun: %v, %v", again, err)
	}
}

func TestPlotRunSkipsWhatIsUndefined(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, runOptions{rows: 3, theory: false})
	paths, err := PlotRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	// theory_gap is all NaN and there are no snapshots
	checkFigures(t, dir, paths, "singular_values", "trace")
	svg, _ := os.ReadFile(filepath.Join(dir, "trace.svg"))
	if bytes.Contains(svg, []byte("F* =")) {
		t.Error("trace.svg draws F* although trace_min is NaN")
	}
}

func TestPlotRunOneRow(t *testing.T) {
	dir := t.TempDir()
	writeRun(t, dir, runOptions{rows: 1, theory: true, snapshots: 1})
	paths, err := PlotRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	// a single point per line on a log axis must not panic
	checkFigures(t, dir, paths, "singular_values", "trace", "neurons")
}

func TestPlotCompare(t *testing.T) {
	cdir := t.TempDir()
	writeRun(t, filepath.Join(cdir, "labelnoise"), runOptions{rows: 8, theory: true})
	writeRun(t, filepath.Join(cdir, "riemannian"), runOptions{rows: 4, theory: true})
	// the first row's dir is stale (the comparison was moved): dir/<trainer> is used
	rows := []map[string]any{
		{"trainer": "labelnoise", "dir": "/nonexistent/old/labelnoise", "steps": 700},
		{"trainer": "riemannian", "dir": filepath.Join(cdir, "riemannian"), "steps": 300},
	}
	data, _ := json.Marshal(rows)
	mustWrite(t, filepath.Join(cdir, "compare.json"), string(data))
	if !IsComparison(cdir) || IsComparison(filepath.Join(cdir, "labelnoise")) {
		t.Fatal("IsComparison")
	}
	paths, err := Plot(cdir)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, cdir, paths, "compare_trace_ratio", "compare_theory_gap", "compare_sigma_ratio", "compare_loss")
	svg, _ := os.ReadFile(filepath.Join(cdir, "compare_loss.svg"))
	for _, want := range []string{"labelnoise", "riemannian"} {
		if !bytes.Contains(svg, []byte(want)) {
			t.Errorf("compare_loss.svg lacks the trainer %q", want)
		}
	}
}

func TestPlotCompareSkipsUndefinedMetrics(t *testing.T) {
	cdir := t.TempDir()
	writeRun(t, filepath.Join(cdir, "gd"), runOptions{rows: 3, theory: false})
	mustWrite(t, filepath.Join(cdir, "compare.json"), `[{"trainer": "gd", "dir": ""}]`)
	paths, err := PlotCompare(cdir)
	if err != nil {
		t.Fatal(err)
	}
	checkFigures(t, cdir, paths, "compare_sigma_ratio", "compare_loss")
}

func TestPlotErrors(t *testing.T) {
	garbage := func(text string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) { mustWrite(t, filepath.Join(dir, "metrics.csv"), text) }
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"empty directory", func(*testing.T, string) {}, "metrics.csv"},
		{"not a number", garbage(header + "0,abc\n"), "metrics.csv"},
		{"unbalanced quote", garbage("step,loss\n\"0,1\n2,3\n"), "metrics.csv"},
		{"wrong field count", garbage("step,loss\n0,1,2\n"), "metrics.csv"},
		{"no step column", garbage("loss,trace\n1,2\n"), `no "step" column`},
		{"header only", garbage(header), "no rows"},
		{"empty file", garbage(""), "metrics.csv"},
		{"bad compare.json", func(t *testing.T, dir string) { mustWrite(t, filepath.Join(dir, "compare.json"), "{not json") }, "compare.json"},
		{"compare without runs", func(t *testing.T, dir string) {
			mustWrite(t, filepath.Join(dir, "compare.json"), `[{"trainer": "sam1", "dir": "sam1"}]`)
		}, filepath.Join("sam1", "metrics.csv")},
		{"snapshots of different shapes", func(t *testing.T, dir string) {
			writeRun(t, dir, runOptions{rows: 2, snapshots: 2})
			if err := runio.WriteNpy(filepath.Join(dir, "snapshots", "z_0000000100.npy"), make([]float64, 6), 3, 2); err != nil {
				t.Fatal(err)
			}
		}, "z_0000000100.npy"},
		{"non-finite snapshot", func(t *testing.T, dir string) {
			writeRun(t, dir, runOptions{rows: 2, snapshots: 1})
			if err := runio.WriteNpy(filepath.Join(dir, "snapshots", "z_0000000000.npy"), []float64{math.NaN(), 1}, 1, 2); err != nil {
				t.Fatal(err)
			}
		}, "z_0000000000.npy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.setup(t, dir)
			_, err := Plot(dir)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("error %q is not ErrBadInput", err)
			}
		})
	}
	if _, err := Plot(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing directory: %v", err)
	}
}

func TestPointsDropsWhatALogAxisCannotShow(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4, math.NaN()}
	ys := []float64{1, 0, -1, math.NaN(), math.Inf(1), 5}
	if got := points(xs, ys, false, true); !slices.Equal(got, plotter.XYs{{X: 0, Y: 1}}) {
		t.Errorf("log: %v", got)
	}
	// a log step axis has no place for step 0
	if got := points(xs, ys, true, false); !slices.Equal(got, plotter.XYs{{X: 1, Y: 0}, {X: 2, Y: -1}}) {
		t.Errorf("log x: %v", got)
	}
	if got := points(xs, ys, false, false); !slices.Equal(got, plotter.XYs{{X: 0, Y: 1}, {X: 1, Y: 0}, {X: 2, Y: -1}}) {
		t.Errorf("linear: %v", got)
	}
}

func TestLogTicks(t *testing.T) {
	for _, r := range [][2]float64{{0.5, 0.9}, {1.01, 1.3}, {1e-6, 1}, {3, 3000}, {1e-31, 0.5}} {
		labelled := 0
		for _, tk := range (logTicks{}).Ticks(r[0], r[1]) {
			if tk.Value <= 0 {
				t.Errorf("%v: tick at %v", r, tk.Value)
			}
			if tk.Label == "" {
				continue
			}
			if strings.Contains(tk.Label, "00000000") || strings.Contains(tk.Label, "99999") {
				t.Errorf("%v: inexact label %q", r, tk.Label)
			}
			if tk.Value >= r[0] && tk.Value <= r[1] {
				labelled++
			}
		}
		if labelled < 2 || labelled > maxLogLabels+1 {
			t.Errorf("%v: %d labelled ticks in range", r, labelled)
		}
	}
}

func TestSpreadKeepsFirstAndLast(t *testing.T) {
	items := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	got := spread(items, 6)
	if !slices.Equal(got, []int{0, 2, 4, 6, 8, 10}) {
		t.Errorf("spread(11, 6) = %v", got)
	}
	if got := spread(items[:3], 6); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("spread(3, 6) = %v", got)
	}
	if got := spread(items[:8], 6); len(got) != 6 || got[0] != 0 || got[5] != 7 {
		t.Errorf("spread(8, 6) = %v", got)
	}
}

func TestFitPCAFindsTheMainDirection(t *testing.T) {
	// points on the line (1, 2, 2)/3 · s plus a small offset along (0, 1, −1)
	var vs [][]float64
	for s := range 5 {
		a, e := float64(s), 0.01*float64(s%2)
		vs = append(vs, []float64{a / 3, 2*a/3 + e, 2*a/3 - e})
	}
	p, err := fitPCA(vs, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{1.0 / 3, 2.0 / 3, 2.0 / 3}
	for i := range want {
		if math.Abs(p.pc[0][i]-want[i]) > 1e-4 {
			t.Errorf("PC1 = %v, want %v", p.pc[0], want)
			break
		}
	}
	if p.explained[0] < 0.999 || p.explained[0]+p.explained[1] > 1+1e-12 {
		t.Errorf("explained %v", p.explained)
	}
	// positions along PC1 are spaced by the step along the line, 1
	if d := p.project(vs[3]).X - p.project(vs[2]).X; math.Abs(d-1) > 1e-3 {
		t.Errorf("PC1 spacing %v", d)
	}
}
