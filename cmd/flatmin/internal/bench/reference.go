package bench

// Reference figures: PyTorch 1.13 on CPU, float64, 2 threads, the best
// median time per step of the same work (issue 6). fig1a's is its 119 s
// for 4.8M steps, per step.
var references = []struct {
	work    string
	size    Size
	seconds float64
}{
	{LabelNoise, Size{10, 3, 3}, 24e-6},
	{LabelNoise, Size{1000, 64, 32}, 0.72e-3},
	{LabelNoise, Size{10000, 256, 64}, 30e-3},
	{LabelNoise, Size{100000, 256, 64}, 413e-3},
	{Riemannian, Size{1000, 64, 32}, 3.6e-3},
	{Hutchinson, Size{1000, 64, 32}, 13e-3}, // 10 probes
	{Fig1a, Size{10, 3, 3}, 119.0 / 4.8e6},
}

// referenceProbes is the number of probes of the Hutchinson reference.
const referenceProbes = 10

// Reference returns PyTorch's time per step for a row, if there is one.
func Reference(row Row, opt Options) (seconds float64, ok bool) {
	if row.Work == Hutchinson && opt.Probes != referenceProbes {
		return 0, false
	}
	for _, r := range references {
		if r.work == row.Work && r.size == row.Size {
			return r.seconds, true
		}
	}
	return 0, false
}
