// Package stats holds the order statistics the app reports over runs
// (sweep.json's quartiles, the sweep figures' bands): one definition for both.
package stats

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
	return QuantileSorted(x, p)
}

// QuantileSorted is Quantile of values already sorted ascending (no copy).
func QuantileSorted(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	h := float64(len(sorted)-1) * p
	lo := int(math.Floor(h))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}
