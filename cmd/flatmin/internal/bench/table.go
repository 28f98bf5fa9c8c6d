package bench

import (
	"fmt"
	"io"
	"math"
)

// Table prints results as an aligned table, one row as each comes in, and
// notes on fig1a's and tts's totals at the end.
type Table struct {
	w     io.Writer
	opt   Options
	notes []string
}

const tableFormat = "%-10s %7s %4s %4s  %-7s  %-6s  %-18s %10s %10s %8s %9s %9s %8s\n"

// NewTable prints the header of a table on w.
func NewTable(w io.Writer, opt Options) *Table {
	fmt.Fprintf(w, tableFormat, "work", "m", "d", "n", "engine", "path", "backend", "time/step", "steps/s", "GFLOP/s", "peak RSS", "PyTorch", "speedup")
	return &Table{w: w, opt: opt}
}

// Row prints one result.
func (t *Table) Row(r Result) {
	perStep := r.MedianSeconds
	if r.Work == TTS && r.Steps > 0 {
		perStep = r.MedianSeconds / float64(r.Steps)
	}
	ref, speedup := "—", "—"
	if r.ReferenceSeconds > 0 {
		ref, speedup = FormatSeconds(r.ReferenceSeconds), fmt.Sprintf("%.2f×", r.Speedup)
	}
	rss := "—"
	if r.PeakRSSBytes > 0 {
		rss = fmt.Sprintf("%.0f MiB", float64(r.PeakRSSBytes)/(1<<20))
	}
	fmt.Fprintf(t.w, tableFormat, r.Work, fmt.Sprint(r.M), fmt.Sprint(r.D), fmt.Sprint(r.N), r.Engine, r.Path, r.Backend,
		FormatSeconds(perStep), formatCount(r.StepsPerSecond), fmt.Sprintf("%.3g", r.GFlops), rss, ref, speedup)
	switch r.Work {
	case Fig1a:
		note := fmt.Sprintf("fig1a: %d label-noise SGD steps in %.1f s", t.opt.Fig1aSteps, r.MedianSeconds*float64(t.opt.Fig1aSteps))
		if r.ReferenceSeconds > 0 {
			note += fmt.Sprintf(" (PyTorch: %.3g s)", r.ReferenceSeconds*float64(t.opt.Fig1aSteps))
		}
		t.notes = append(t.notes, note)
	case TTS:
		t.notes = append(t.notes, fmt.Sprintf("tts: theory gap below %g after %d Riemannian steps, %s to solution (median; Init included, checks not)",
			t.opt.TTSTol, r.Steps, FormatSeconds(r.MedianSeconds)))
	}
}

// Close prints the notes.
func (t *Table) Close() {
	for _, n := range t.notes {
		fmt.Fprintln(t.w, n)
	}
}

// FormatSeconds writes a duration in seconds to 3 digits with a unit that
// suits it: "24 µs", "720 µs", "3.6 ms", "119 s".
func FormatSeconds(s float64) string {
	switch a := math.Abs(s); {
	case math.IsNaN(s) || math.IsInf(s, 0):
		return fmt.Sprint(s)
	case a == 0:
		return "0 s"
	case a < 1e-6:
		return fmt.Sprintf("%.3g ns", s*1e9)
	case a < 1e-3:
		return fmt.Sprintf("%.3g µs", s*1e6)
	case a < 1:
		return fmt.Sprintf("%.3g ms", s*1e3)
	default:
		return fmt.Sprintf("%.3g s", s)
	}
}

func formatCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
