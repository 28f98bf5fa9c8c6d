package sweep

import (
	"math"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/stats"
)

// Stat is one metric over a setting's finished runs. Null counts the
// finished runs without a value (NaN, or a threshold never reached); the
// order statistics are over the N others and null when N = 0.
type Stat struct {
	Median JSONFloat `json:"median"`
	Q1     JSONFloat `json:"q1"`
	Q3     JSONFloat `json:"q3"`
	Min    JSONFloat `json:"min"`
	Max    JSONFloat `json:"max"`
	N      int       `json:"n"`
	Null   int       `json:"null"`
}

// Describe summarizes values, NaN counting as null.
func Describe(values []float64) Stat {
	var x []float64
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			x = append(x, v)
		}
	}
	s := Stat{N: len(x), Null: len(values) - len(x)}
	s.Median, s.Q1, s.Q3 = JSONFloat(stats.Quantile(x, 0.5)), JSONFloat(stats.Quantile(x, 0.25)), JSONFloat(stats.Quantile(x, 0.75))
	s.Min, s.Max = JSONFloat(stats.Quantile(x, 0)), JSONFloat(stats.Quantile(x, 1))
	return s
}
