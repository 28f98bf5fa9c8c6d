package bench

import (
	"testing"
)

// The go-test benchmarks time the rows of `flatmin bench` through the same
// jobs (compiling, Init and warm-up outside the timing). ns/op is the time of
// one step (BenchmarkFig1a, BenchmarkTimeToSolution: of one whole run); the
// metrics add steps/s, GFLOP/s and peak-RSS-MiB, the peak resident set of
// the test process so far (not of the row alone, as `flatmin bench` reports).
//
//	go test -run xxx -bench . -benchtime 1x ./internal/bench          # everything once
//	go test -run xxx -bench 'LabelNoise/m=1000,' ./internal/bench

func BenchmarkLabelNoise(b *testing.B) {
	for _, s := range DefaultSizes[LabelNoise] {
		b.Run(s.String(), func(b *testing.B) { benchRow(b, Row{LabelNoise, s}) })
	}
}

func BenchmarkRiemannian(b *testing.B) { benchRow(b, Row{Riemannian, DefaultSizes[Riemannian][0]}) }

func BenchmarkHutchinson(b *testing.B) { benchRow(b, Row{Hutchinson, DefaultSizes[Hutchinson][0]}) }

// BenchmarkLanczos runs one Lanczos run (k = 3, 50 steps) per iteration.
func BenchmarkLanczos(b *testing.B) { benchRow(b, Row{Lanczos, DefaultSizes[Lanczos][0]}) }

// BenchmarkFig1a runs b.N whole 4.8M-step runs (about 20 s each): use -benchtime=1x.
func BenchmarkFig1a(b *testing.B) { benchRow(b, Row{Fig1a, fig1aSize}) }

// BenchmarkTimeToSolution runs the Riemannian flow on Figure 1a b.N times
// until the theory gap is below 1e-6.
func BenchmarkTimeToSolution(b *testing.B) { benchRow(b, Row{TTS, fig1aSize}) }

// jobs keeps each row's job across the calls testing makes with growing b.N,
// so that it is compiled (and the Riemannian Θ retracted) once.
var jobs = map[Row]*job{}

func benchRow(b *testing.B, row Row) {
	j := jobs[row]
	if j == nil {
		opt := DefaultOptions()
		var err error
		if j, err = newJob(testBackend(b), row, opt); err != nil {
			b.Fatal(err)
		}
		if !j.whole {
			if _, _, err := j.run(warmupSteps); err != nil {
				b.Fatal(err)
			}
		}
		jobs[row] = j
	}
	b.ResetTimer()
	steps, elapsed, err := j.run(b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if elapsed <= 0 || steps <= 0 {
		return
	}
	perStep := elapsed.Seconds() / float64(steps)
	b.ReportMetric(1/perStep, "steps/s")
	b.ReportMetric(j.flops/perStep/1e9, "GFLOP/s")
	if j.whole {
		b.ReportMetric(float64(steps)/float64(b.N), "steps/run")
	}
	b.ReportMetric(float64(selfPeakRSS())/(1<<20), "peak-RSS-MiB")
}
