package plotting

import (
	"image/color"
	"math"
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

// lineFigure is a figure of curves against the step.
type lineFigure struct {
	title, ylabel string
	logY          bool
	lines         []series
	refs          []hline
}

// points keeps the plottable (x, y) pairs: finite, and positive on a log axis.
func points(xs, ys []float64, logY bool) plotter.XYs {
	var out plotter.XYs
	for i := range min(len(xs), len(ys)) {
		x, y := xs[i], ys[i]
		if !finite(x) || !finite(y) || logY && y <= 0 {
			continue
		}
		out = append(out, plotter.XY{X: x, Y: y})
	}
	return out
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// build returns the figure, or nil when no curve has a plottable point.
func (f *lineFigure) build() (*plot.Plot, error) {
	p := newPlot(f.title, "step", f.ylabel)
	yr := span{lo: math.Inf(1), hi: math.Inf(-1)}
	xr := yr
	drawn := 0
	for _, s := range f.lines {
		xy := points(s.xs, s.ys, f.logY)
		if len(xy) == 0 {
			continue
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(s.colour)
		l.Width = vg.Points(1.5)
		l.Dashes = plotutil.Dashes(s.dashes)
		p.Add(l)
		p.Legend.Add(s.label, l)
		for _, pt := range xy {
			xr.add(pt.X)
			yr.add(pt.Y)
		}
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	for _, r := range f.refs {
		if !finite(r.y) || f.logY && r.y <= 0 {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: xr.lo, Y: r.y}, {X: xr.hi, Y: r.y}})
		if err != nil {
			return nil, err
		}
		l.Color = color.Black
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		p.Legend.Add(r.label, l)
		yr.add(r.y)
	}
	if f.logY {
		setLogY(p, yr)
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
// which would merge into a bar. A range holding fewer than two powers of
// ten gets plot.DefaultTicks' linear labels instead: LogTicks would label
// one value or none.
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
	if inRange < 2 {
		return linearTicks(lo, hi)
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
