package sweep

import (
	"math"
	"slices"
)

// Quantile is the p-quantile of values by linear interpolation between
// order statistics (Hyndman and Fan's type 7, NumPy's default): with the
// values sorted as x_0 ≤ … ≤ x_{n−1} and h = (n−1)p,
// Q(p) = x_⌊h⌋ + (h − ⌊h⌋)(x_⌊h⌋+1 − x_⌊h⌋). NaN for no values.
func Quantile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	x := slices.Clone(values)
	slices.Sort(x)
	h := float64(len(x)-1) * p
	lo := int(math.Floor(h))
	if lo >= len(x)-1 {
		return x[len(x)-1]
	}
	return x[lo] + (h-float64(lo))*(x[lo+1]-x[lo])
}

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
	s.Median, s.Q1, s.Q3 = JSONFloat(Quantile(x, 0.5)), JSONFloat(Quantile(x, 0.25)), JSONFloat(Quantile(x, 0.75))
	s.Min, s.Max = JSONFloat(Quantile(x, 0)), JSONFloat(Quantile(x, 1))
	return s
}
