// Package repro reruns the paper's three experiments (Appendix A): each
// figure's setting with label-noise SGD, and beside it the Riemannian flow and
// 1-SAM on the same data from the same Θ₀, then renders the figures and
// writes report.md with the settings, the choices the paper leaves open, a
// table of outcomes and the images.
package repro

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/plotting"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
)

// Trainers run for every figure, label-noise SGD first (the paper's).
var Trainers = []string{"labelnoise", "sam1", "riemannian"}

// Figure is one experiment: the paper's settings and the ones it leaves open.
type Figure struct {
	Name  string // fig1a, fig2, fig1b
	Title string
	Paper string // what the paper reports
	// The paper's settings.
	M, N, D    int
	Eta, Sigma float64
	// Ours: the paper states neither labels, activation parameter, initial scale nor step counts.
	Labels    string
	Nu        float64
	InitScale float64
	Rho       float64
	Why       string           // why these choices
	Steps     map[string]int64 // per trainer, default run
	Quick     map[string]int64 // per trainer, --quick
	Snapshots int
}

// ClusterTol is the tolerance of Clusters, relative to the mean norm of the
// neurons' feature vectors.
const ClusterTol = plotting.ClusterTol

const whyNu = "ν = 0.1 rather than the pure cube: with φ'(0) = 0 the cube's manifold has stationary points with some θ_j·x_i = 0, where the flow stalls (Assumptions 1 and 3 fail)."

// Figures are the paper's three experiments.
var Figures = []Figure{
	{
		Name: "fig1a", Title: "Figure 1a: rank one (m=10, d=3, n=3)",
		Paper: "the 2nd and 3rd singular values of the feature matrix go to zero under label-noise SGD",
		M:     10, N: 3, D: 3, Eta: 0.05, Sigma: 0.03,
		Labels: "uniform:0.5,1", Nu: 0.1, InitScale: 0.5, Rho: 0.05,
		Why:       "Labels in [0.5, 1] keep η = 0.05 stable at the optimum (λ_max(D²L)·η ≈ 1); labels twice as large put it near 2, the edge of stability, where the cube diverges from many initializations. " + whyNu,
		Steps:     map[string]int64{"labelnoise": 4_000_000, "sam1": 2_000_000, "riemannian": 20_000},
		Quick:     map[string]int64{"labelnoise": 200_000, "sam1": 200_000, "riemannian": 3_000},
		Snapshots: 7,
	},
	{
		Name: "fig2", Title: "Figure 2: n > d, rank two (m=10, d=5, n=6)",
		Paper: "with n > d the feature matrix cannot become rank one; all singular values but the first two go to zero",
		M:     10, N: 6, D: 5, Eta: 0.05, Sigma: 0.2,
		Labels: "uniform:0.5,1", Nu: 0.1, InitScale: 0.3, Rho: 0.05,
		Why:       "Θ₀ at scale 0.3: at 0.5 the first label-noise steps diverge (the initial outputs are large for six points). " + whyNu,
		Steps:     map[string]int64{"labelnoise": 4_000_000, "sam1": 2_000_000, "riemannian": 20_000},
		Quick:     map[string]int64{"labelnoise": 200_000, "sam1": 200_000, "riemannian": 3_000},
		Snapshots: 7,
	},
	{
		Name: "fig1b", Title: "Figure 1b: neuron clusters (m=30, d=10, n=15)",
		Paper: "with n > d the neurons' feature vectors still attract each other and collapse into clusters (first two principal components)",
		M:     30, N: 15, D: 10, Eta: 0.1, Sigma: 0.2,
		Labels: "uniform:0.1,0.3", Nu: 0.1, InitScale: 0.05, Rho: 0.05,
		Why:       "η = 0.1 with 30 neurons and 15 positively correlated points (λ_max(XXᵀ) ≈ 11) is stable only when φ' stays below about 0.17: hence small labels, in [0.1, 0.3], and Θ₀ at scale 0.05. " + whyNu,
		Steps:     map[string]int64{"labelnoise": 4_000_000, "sam1": 1_000_000, "riemannian": 10_000},
		Quick:     map[string]int64{"labelnoise": 100_000, "sam1": 100_000, "riemannian": 2_000},
		Snapshots: 7,
	},
}

// Lookup returns the figures called name ("all" for every one).
func Lookup(name string) ([]Figure, error) {
	if name == "all" {
		return Figures, nil
	}
	for _, f := range Figures {
		if f.Name == name {
			return []Figure{f}, nil
		}
	}
	return nil, fmt.Errorf("unknown figure %q: use fig1a, fig2, fig1b or all", name)
}

// config is the figure's base configuration.
func (f Figure) config(backendSpec string) runner.Config {
	c := runner.DefaultConfig()
	c.M, c.N, c.D = f.M, f.N, f.D
	c.Labels, c.Nu, c.InitScale, c.Sigma, c.Rho = f.Labels, f.Nu, f.InitScale, f.Sigma, f.Rho
	c.InitScaleRule, c.RhoRule = "", "" // the paper's values, not the automatic ones
	c.Snapshots = f.Snapshots
	c.Backend = backendSpec
	c.CheckpointEvery = 0
	return c
}

// params sets each trainer's steps and log cadence (about 200 rows) and the
// paper's η for the stochastic trainers (riemannian keeps its own).
func (f Figure) params(quick bool) []runner.Param {
	steps := f.Steps
	if quick {
		steps = f.Quick
	}
	var ps []runner.Param
	for _, t := range Trainers {
		s := steps[t]
		ps = append(ps, runner.Param{Trainer: t, Key: "steps", Value: strconv.FormatInt(s, 10)},
			runner.Param{Trainer: t, Key: "log_every", Value: strconv.FormatInt(max(1, s/200), 10)})
		if t != "riemannian" {
			ps = append(ps, runner.Param{Trainer: t, Key: "eta", Value: strconv.FormatFloat(f.Eta, 'g', -1, 64)})
		}
	}
	return ps
}

// TrainerResult is one trainer's outcome on one figure.
type TrainerResult struct {
	Row runner.CompareRow
	// σ2/σ1 and σ3/σ1 of Z at Θ₀, once the data is fitted (the first log step
	// with the loss below 1% of its initial value), and at the end.
	Sigma21, Sigma31        [3]float64
	FittedStep              int64
	ClustersStart, Clusters int // neuron clusters in the first and last snapshot
}

// Result is one figure's outcome.
type Result struct {
	Figure   Figure
	Dir      string
	Trainers map[string]*TrainerResult
	Images   []string // relative to the report's directory
}

// Run reproduces figs into dir (one comparison directory per figure).
func Run(ctx context.Context, b backends.Backend, backendSpec string, figs []Figure, quick bool, dir string, opt runner.Options) ([]Result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, runner.Input(fmt.Errorf("--out: %w", err))
	}
	if _, err := os.Stat(filepath.Join(dir, ReportFile)); err == nil {
		return nil, runner.Input(fmt.Errorf("--out %s already holds a reproduction (%s): choose another directory", dir, ReportFile))
	}
	var results []Result
	for _, f := range figs {
		fdir := filepath.Join(dir, f.Name)
		rows, err := runner.Compare(ctx, f.config(backendSpec), Trainers, f.params(quick), b, fdir, opt)
		if err != nil {
			return results, fmt.Errorf("%s: %w", f.Name, err)
		}
		res := Result{Figure: f, Dir: fdir, Trainers: map[string]*TrainerResult{}}
		for _, row := range rows {
			tr, err := summarize(row)
			if err != nil {
				return results, fmt.Errorf("%s: %w", f.Name, err)
			}
			res.Trainers[row.Trainer] = tr
			if _, err := plotting.PlotRun(row.Dir); err != nil {
				return results, fmt.Errorf("%s/%s: plots: %w", f.Name, row.Trainer, err)
			}
		}
		if _, err := plotting.PlotCompare(fdir); err != nil {
			return results, fmt.Errorf("%s: plots: %w", f.Name, err)
		}
		res.Images = images(dir, fdir)
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	return results, nil
}

// summarize reads a trainer's run: singular-value ratios at the start and the
// end, and neuron clusters in the first and last snapshot.
func summarize(row runner.CompareRow) (*TrainerResult, error) {
	tr := &TrainerResult{Row: row}
	header, rows, err := runio.ReadCSVLog(filepath.Join(row.Dir, runner.MetricsFile))
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("%s: no metrics (%v)", row.Dir, err)
	}
	col := func(name string) int { return slices.Index(header, name) }
	fitted := rows[len(rows)-1]
	loss0 := runio.CellFloat(rows[0], col("loss"))
	for _, r := range rows {
		if runio.CellFloat(r, col("loss")) <= 0.01*loss0 {
			fitted = r
			break
		}
	}
	tr.FittedStep, _ = strconv.ParseInt(fitted[0], 10, 64)
	for k, r := range [][]string{rows[0], fitted, rows[len(rows)-1]} {
		s1, s2, s3 := runio.CellFloat(r, col("sv_z_1")), runio.CellFloat(r, col("sv_z_2")), runio.CellFloat(r, col("sv_z_3"))
		tr.Sigma21[k], tr.Sigma31[k] = s2/s1, s3/s1
	}
	snaps, _ := filepath.Glob(filepath.Join(row.Dir, runner.SnapshotDir, "z_*.npy"))
	slices.Sort(snaps)
	tr.ClustersStart, tr.Clusters = -1, -1
	if len(snaps) > 0 {
		if tr.ClustersStart, err = clustersOf(snaps[0]); err != nil {
			return nil, err
		}
		if tr.Clusters, err = clustersOf(snaps[len(snaps)-1]); err != nil {
			return nil, err
		}
	}
	return tr, nil
}

func clustersOf(path string) (int, error) {
	z, n, m, err := model.ReadMatrix(path, "snapshot")
	if err != nil {
		return 0, err
	}
	return Clusters(z, n, m, ClusterTol), nil
}

// Clusters counts groups of neurons whose feature vectors (the columns of Z,
// n×m row-major) lie within tol·(mean column norm) of each other, linked
// transitively (single linkage): plotting.ClusterLabels, which the neurons
// figure shares.
func Clusters(z []float64, n, m int, tol float64) int {
	return len(plotting.ClusterSizes(plotting.ClusterLabels(z, n, m, tol)))
}

// images lists the figure's PNGs for the report, relative to its directory.
func images(reportDir, fdir string) []string {
	var out []string
	for _, name := range []string{
		"labelnoise/singular_values.png", "riemannian/singular_values.png", "sam1/singular_values.png",
		"compare_sigma_ratio.png", "compare_trace_ratio.png", "labelnoise/neurons.png", "riemannian/neurons.png",
	} {
		p := filepath.Join(fdir, name)
		if _, err := os.Stat(p); err == nil {
			rel, _ := filepath.Rel(reportDir, p)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	return out
}

// formatSteps writes 4000000 as 4,000,000.
func formatSteps(v int64) string {
	s := strconv.FormatInt(v, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
