// Package plotting owns flatmin's figures: it reads a run directory
// (metrics.csv, snapshots/z_*.npy) or a comparison directory (compare.json and
// one run directory per trainer) and renders each figure with gonum/plot into
// that directory as <name>.png and <name>.svg, each written atomically.
// Nothing here trains or computes metrics; it only draws what runs logged.
package plotting

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Figure size: about 960×576 pixels in the PNG (96 dpi).
const (
	figWidth  = 10 * vg.Inch
	figHeight = 6 * vg.Inch
)

// Formats are the file formats every figure is written in.
var Formats = []string{"png", "svg"}

// ErrBadInput is matched (errors.Is) by errors about the directory's own
// files: missing, unreadable or malformed. Other errors (writing a figure,
// rendering) are failures of plotting itself.
var ErrBadInput = errors.New("bad input")

// inputError marks err as bad input while keeping its message.
type inputError struct{ err error }

func (e *inputError) Error() string   { return e.err.Error() }
func (e *inputError) Unwrap() []error { return []error{e.err, ErrBadInput} }

func badInput(err error) error {
	if err == nil || errors.Is(err, ErrBadInput) {
		return err
	}
	return &inputError{err}
}

// Plot renders a comparison directory's figures (PlotCompare) when dir holds
// compare.json, a run directory's (PlotRun) otherwise, and the spectral
// density (PlotSpectrum) when dir is a JSON file.
func Plot(dir string) ([]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, badInput(err)
	}
	if !info.IsDir() && strings.HasSuffix(dir, ".json") {
		return PlotSpectrum(dir)
	}
	if !info.IsDir() {
		return nil, badInput(fmt.Errorf("%s is neither a directory nor a .json file from flatmin inspect --density", dir))
	}
	if IsComparison(dir) {
		return PlotCompare(dir)
	}
	if _, err := os.Stat(filepath.Join(dir, metricsFile)); errors.Is(err, os.ErrNotExist) {
		return nil, badInput(fmt.Errorf("%s holds neither %s (a run) nor %s (a comparison)", dir, metricsFile, compareFile))
	}
	return PlotRun(dir)
}

// IsComparison reports whether dir holds a comparison (compare.json).
func IsComparison(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, compareFile))
	return err == nil && info.Mode().IsRegular()
}

// save writes p as dir/name.png and dir/name.svg and returns their paths.
func save(p *plot.Plot, dir, name string) ([]string, error) {
	var paths []string
	for _, format := range Formats {
		data, err := render(p, format)
		if err != nil {
			return paths, fmt.Errorf("figure %s: %w", name, err)
		}
		path := filepath.Join(dir, name+"."+format)
		if err := runio.WriteFileAtomic(path, data); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// render draws p in memory; gonum/plot panics on some degenerate inputs, so
// a panic comes back as an error.
func render(p *plot.Plot, format string) (data []byte, err error) {
	err = safely(func() error {
		c, err := draw.NewFormattedCanvas(figWidth, figHeight, format)
		if err != nil {
			return err
		}
		drawWithLegendBeside(p, draw.Crop(draw.New(c), 0, -margin, 0, -margin))
		var buf bytes.Buffer
		if _, err := c.WriteTo(&buf); err != nil {
			return err
		}
		data = buf.Bytes()
		return nil
	})
	return data, err
}

// margin keeps the title and the legend off the image's edges.
const margin = 3 * vg.Millimeter

// drawWithLegendBeside draws p with its legend in a column to the right of
// the axes: inside them (gonum/plot's place) it hides curves and points.
func drawWithLegendBeside(p *plot.Plot, c draw.Canvas) {
	legend := p.Legend
	width := legend.Rectangle(c).Size().X
	if width == 0 {
		p.Draw(c)
		return
	}
	width += margin
	p.Legend = plot.NewLegend()
	defer func() { p.Legend = legend }()
	p.Draw(draw.Crop(c, 0, -width, 0, 0))
	// start level with the top of the axes, below the title
	top := p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
	legend.Top, legend.Left = true, true
	legend.Padding = vg.Points(3)
	legend.Draw(draw.Crop(c, c.Size().X-width+margin, 0, 0, -top))
}

// safely runs f and turns a panic into an error.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gonum/plot: %v", r)
		}
	}()
	return f()
}

// emit builds a figure and saves it; a nil plot (nothing to draw) is skipped.
func emit(dir, name string, build func() (*plot.Plot, error)) ([]string, error) {
	var p *plot.Plot
	if err := safely(func() (err error) { p, err = build(); return err }); err != nil {
		return nil, fmt.Errorf("figure %s: %w", name, err)
	}
	if p == nil {
		return nil, nil
	}
	return save(p, dir, name)
}
