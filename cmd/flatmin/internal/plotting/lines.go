package plotting

import (
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one curve of a line figure: ys against xs.
type series struct {
	label  string
	xs, ys []float64
	colour int // index into plotutil's palette
	dashes int // index into plotutil's dash patterns, 0 is solid
}

// hline is a horizontal reference line across the data, e.g. F*.
type hline struct {
	label string
	y     float64
}

// band is a shaded region between lo and hi over xs, e.g. an interquartile
// range, in the colour of the series it belongs to.
type band struct {
	xs, lo, hi []float64
	colour     int
}

// lineFigure is a figure of curves against the step.
type lineFigure struct {
	title, ylabel string
	xlabel        string // "step" when empty
	logX, logY    bool
	lines         []series
	refs          []hline
	bands         []band
}

// points keeps the plottable (x, y) pairs: finite, and positive on a log axis.
func points(xs, ys []float64, logX, logY bool) plotter.XYs {
	var out plotter.XYs
	for i := range min(len(xs), len(ys)) {
		x, y := xs[i], ys[i]
		if !finite(x) || !finite(y) || logY && y <= 0 || logX && x <= 0 {
			continue
		}
		out = append(out, plotter.XY{X: x, Y: y})
	}
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// layerKind tells the layers of a line figure apart (for tests).
type layerKind int

const (
	layerBand layerKind = iota
	layerRef
	layerLine
)

// layer is one thing a line figure draws, in drawing order.
type layer struct {
	kind   layerKind
	label  string // legend entry, "" for none
	plot   plot.Plotter
	legend plot.Thumbnailer
}

// layers returns what the figure draws, bottom first: the bands, then the
// reference lines (dashed), then the curves on top, so that a curve lying
// on a reference line (Tr D²L reaching F*) stays visible. Nil when no curve
// has a plottable point; the second result is the data's range.
func (f *lineFigure) layers() ([]layer, span, span, error) {
	yr := span{lo: math.Inf(1), hi: math.Inf(-1)}
	xr := yr
	var lines []layer
	for _, s := range f.lines {
		xy := points(s.xs, s.ys, f.logX, f.logY)
		if len(xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, xr, yr, err
		}
		l.Color = plotutil.Color(s.colour)
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(s.dashes)
		lines = append(lines, layer{kind: layerLine, label: s.label, plot: l, legend: l})
		for _, pt := range xy {
			xr.add(pt.X)
			yr.add(pt.Y)
		}
	}
	if len(lines) == 0 {
		return nil, xr, yr, nil
	}
	var out []layer
	for _, b := range f.bands {
		lo, hi := points(b.xs, b.lo, f.logX, f.logY), points(b.xs, b.hi, f.logX, f.logY)
		if len(lo) < 2 || len(lo) != len(hi) {
			continue
		}
		ring := append(plotter.XYs(nil), lo...)
		for i := len(hi) - 1; i >= 0; i-- {
			ring = append(ring, hi[i])
		}
		poly, err := plotter.NewPolygon(ring)
		if err != nil {
			return nil, xr, yr, err
		}
		r, g, bl, _ := plotutil.Color(b.colour).RGBA()
		poly.Color = color.NRGBA{R: uint8(r >> 8), G: uint8(g >> 8), B: uint8(bl >> 8), A: 0x40}
		poly.LineStyle.Width = 0
		out = append(out, layer{kind: layerBand, plot: poly})
		for _, pt := range ring {
			yr.add(pt.Y)
		}
	}
	for _, r := range f.refs {
		if !finite(r.y) || f.logY && r.y <= 0 {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: xr.lo, Y: r.y}, {X: xr.hi, Y: r.y}})
		if err != nil {
			return nil, xr, yr, err
		}
		l.Color = color.Black
		l.Width = vg.Points(1)
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		out = append(out, layer{kind: layerRef, label: r.label, plot: l, legend: l})
		yr.add(r.y)
	}
	return append(out, lines...), xr, yr, nil
}

// build returns the figure, or nil when no curve has a plottable point.
func (f *lineFigure) build() (*plot.Plot, error) {
	ls, xr, yr, err := f.layers()
	if err != nil || ls == nil {
		return nil, err
	}
	xlabel := f.xlabel
	if xlabel == "" {
		xlabel = "step"
	}
	p := newPlot(f.title, xlabel, f.ylabel)
	for _, l := range ls {
		p.Add(l.plot)
	}
	// The legend lists the curves first, then the references.
	for _, kind := range []layerKind{layerLine, layerRef} {
		for _, l := range ls {
			if l.kind == kind && l.label != "" {
				p.Legend.Add(l.label, l.legend)
			}
		}
	}
	if f.logY {
		setLogY(p, yr)
	}
	if f.logX {
		setLogX(p, xr)
	}
	return p, nil
}

// span is a range of values.
type span struct{ lo, hi float64 }

func (s *span) add(v float64) { s.lo, s.hi = math.Min(s.lo, v), math.Max(s.hi, v) }

// newPlot returns an empty plot with a title, axis labels and a grid.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 225}
	g.Horizontal.Color = color.Gray{Y: 225}
	p.Add(g)
	return p
}

// setLogX makes the x axis logarithmic over xr (positive values), as setLogY.
func setLogX(p *plot.Plot, xr span) {
	if xr.lo == xr.hi {
		xr.lo, xr.hi = xr.lo/2, xr.hi*2
	}
	p.X.Min, p.X.Max = xr.lo, xr.hi
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{}
}

// setLogY makes the y axis logarithmic over yr (positive values). A single
// value gets a factor 2 either side: gonum/plot would widen it by ±1, which
// can cross zero and panic on a log axis.
func setLogY(p *plot.Plot, yr span) {
	if yr.lo == yr.hi {
		yr.lo, yr.hi = yr.lo/2, yr.hi*2
	}
	p.Y.Min, p.Y.Max = yr.lo, yr.hi
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{}
}

// logTicks places ticks with plot.LogTicks, but labels the powers of ten
// exactly ("1e-12", not LogTicks' accumulated "1.0000000000000002e-12"), and
// over many decades keeps about eight labels and drops the minor ticks,
// which would merge into a bar. A range holding fewer than three powers of
// ten gets 1-2-5 ticks (niceLogTicks): LogTicks would label one value or
// none inside a decade, two over two decades.
type logTicks struct{}

// maxLogLabels is about how many powers of ten get a label.
const maxLogLabels = 8

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var majors []plot.Tick
	var minors []plot.Tick
	for _, t := range (plot.LogTicks{}).Ticks(lo, hi) {
		if t.Label == "" {
			minors = append(minors, t)
			continue
		}
		majors = append(majors, powerOfTen(int(math.Round(math.Log10(t.Value)))))
	}
	inRange := 0
	for _, t := range majors {
		if t.Value >= lo && t.Value <= hi {
			inRange++
		}
	}
	if inRange < 3 {
		return niceLogTicks(lo, hi)
	}
	if len(majors) <= maxLogLabels+2 {
		return append(majors, minors...)
	}
	every := (len(majors) + maxLogLabels - 1) / maxLogLabels
	for i := range majors {
		if i%every != 0 {
			majors[i].Label = ""
		}
	}
	return majors
}

// niceLogTicks labels the values 1, 2 and 5 × 10^e in [lo, hi] (0 < lo <
// hi), with unlabelled ticks at the other digits; where that labels fewer
// than two values (e.g. [0.3, 0.9]) every digit 1–9 × 10^e is labelled, and
// where even that fails (a range narrower than one digit step)
// plot.DefaultTicks' linear ticks are used.
func niceLogTicks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) || !finite(lo) || !finite(hi) {
		return linearTicks(lo, hi)
	}
	for _, labelled := range [][]int{{1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		var ticks []plot.Tick
		count := 0
		for e := int(math.Floor(math.Log10(lo))) - 1; e <= int(math.Ceil(math.Log10(hi))); e++ {
			for digit := 1; digit <= 9; digit++ {
				v := digitTimesPowerOfTen(digit, e)
				if v < lo || v > hi {
					continue
				}
				t := plot.Tick{Value: v}
				if slices.Contains(labelled, digit) {
					t.Label = strconv.FormatFloat(v, 'g', -1, 64)
					count++
				}
				ticks = append(ticks, t)
			}
		}
		if count >= 2 {
			return ticks
		}
	}
	return linearTicks(lo, hi)
}

// digitTimesPowerOfTen is digit·10^e, parsed from text so that it prints
// exactly (see powerOfTen).
func digitTimesPowerOfTen(digit, e int) float64 {
	v, _ := strconv.ParseFloat(strconv.Itoa(digit)+"e"+strconv.Itoa(e), 64)
	return v
}

// powerOfTen is the tick at 10^e, parsed from text: math.Pow10(-26) is
// 1/1e26, which prints as 9.999999999999999e-27.
func powerOfTen(e int) plot.Tick {
	v, _ := strconv.ParseFloat("1e"+strconv.Itoa(e), 64)
	return plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)}
}

// linearTicks are plot.DefaultTicks without 0, which has no place on a log axis.
func linearTicks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for _, t := range (plot.DefaultTicks{}).Ticks(lo, hi) {
		if t.Value > 0 {
			out = append(out, t)
		}
	}
	return out
}
