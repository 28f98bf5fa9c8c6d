package plotting

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runio"
)

// metricsFile is a run directory's log, one row per log step.
const metricsFile = "metrics.csv"

// table is metrics.csv by column: every column has one value per row.
type table struct {
	path string
	cols map[string][]float64
}

// readMetrics reads dir/metrics.csv; every field must parse as a float
// ("NaN" included) and the header must name a "step" column.
func readMetrics(dir string) (*table, error) {
	path := filepath.Join(dir, metricsFile)
	header, rows, err := runio.ReadCSVLog(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, badInput(fmt.Errorf("%s is not a run directory: %w", dir, err))
		}
		return nil, badInput(err)
	}
	t := &table{path: path, cols: make(map[string][]float64, len(header))}
	for _, name := range header {
		if _, dup := t.cols[name]; dup {
			return nil, badInput(fmt.Errorf("%s: column %q appears twice", path, name))
		}
		t.cols[name] = make([]float64, 0, len(rows))
	}
	if _, ok := t.cols["step"]; !ok {
		return nil, badInput(fmt.Errorf("%s: no \"step\" column in the header", path))
	}
	if len(rows) == 0 {
		return nil, badInput(fmt.Errorf("%s: no rows logged yet", path))
	}
	for r, row := range rows {
		for c, field := range row {
			v, err := strconv.ParseFloat(field, 64)
			if err != nil {
				return nil, badInput(fmt.Errorf("%s: line %d, column %s: %q is not a number", path, r+2, header[c], field))
			}
			t.cols[header[c]] = append(t.cols[header[c]], v)
		}
	}
	return t, nil
}

// col returns a column's values, nil when the column is absent.
func (t *table) col(name string) []float64 { return t.cols[name] }

// steps is the x axis of every figure.
func (t *table) steps() []float64 { return t.cols["step"] }

// numbered returns the columns prefix1, prefix2, ... that exist, in order.
func (t *table) numbered(prefix string) [][]float64 {
	var out [][]float64
	for k := 1; ; k++ {
		c := t.col(fmt.Sprintf("%s%d", prefix, k))
		if c == nil {
			return out
		}
		out = append(out, c)
	}
}

// trainerName reads summary.json's "trainer"; "" when it cannot be read,
// since the name only decorates titles.
func trainerName(dir string) string {
	data, err := runio.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return ""
	}
	var s struct {
		Trainer string `json:"trainer"`
	}
	if json.Unmarshal(data, &s) != nil {
		return ""
	}
	return s.Trainer
}
