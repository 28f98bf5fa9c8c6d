package bench

import (
	"fmt"
	"math"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/gomlx/gomlx/backends"
)

// warmupSteps are taken after compiling and before calibrating; the first
// runs the compiled graphs' first (slow) calls.
const warmupSteps = 2

// Measure times one row in this process on backend b. Sized works: after
// warmupSteps, the batch length k doubles (or grows toward opt.MinTime)
// until a batch of k steps lasts opt.MinTime, then opt.Repeats batches of k
// steps are timed and the median of their time per step is reported. fig1a:
// one whole run, time per step = total/steps. tts: the median of up to 3
// runs to solution. PeakRSSBytes is this process's peak so far.
func Measure(b backends.Backend, row Row, opt Options) (Result, error) {
	j, err := newJob(b, row, opt)
	if err != nil {
		return Result{}, err
	}
	var samples []float64
	var steps int64
	switch {
	case row.Work == Fig1a:
		n, el, err := j.run(1)
		if err != nil {
			return Result{}, err
		}
		samples = []float64{el.Seconds() / float64(n)}
	case row.Work == TTS:
		for range min(opt.Repeats, maxTTSRuns) {
			n, el, err := j.run(1)
			if err != nil {
				return Result{}, err
			}
			samples, steps = append(samples, el.Seconds()), n
		}
	default:
		if samples, err = timeSteps(j, opt); err != nil {
			return Result{}, err
		}
	}
	res := j.result(opt, Median(samples), steps)
	res.PeakRSSBytes = selfPeakRSS()
	return res, nil
}

// timeSteps returns the time per step of opt.Repeats batches of equal length.
func timeSteps(j *job, opt Options) ([]float64, error) {
	if _, _, err := j.run(warmupSteps); err != nil {
		return nil, err
	}
	k := 1
	for {
		_, el, err := j.run(k)
		if err != nil {
			return nil, err
		}
		if el >= opt.MinTime {
			break
		}
		grow := 10.0
		if el > 0 {
			grow = math.Min(grow, 1.2*opt.MinTime.Seconds()/el.Seconds())
		}
		k = max(k+1, int(math.Ceil(float64(k)*grow)))
	}
	samples := make([]float64, 0, opt.Repeats)
	for range opt.Repeats {
		n, el, err := j.run(k)
		if err != nil {
			return nil, err
		}
		samples = append(samples, el.Seconds()/float64(n))
	}
	return samples, nil
}

// result fills a Result from the median: per step for every work but tts,
// whose median is the time to solution of steps steps.
func (j *job) result(opt Options, median float64, steps int64) Result {
	res := Result{Work: j.row.Work, M: j.row.Size.M, D: j.row.Size.D, N: j.row.Size.N,
		Engine: j.engine, Backend: backendName(opt), Path: j.path, MedianSeconds: median}
	if res.Path == "" {
		res.Path = "graphs"
	}
	perStep := median
	if j.row.Work == TTS {
		res.Steps = steps
		perStep = median / float64(max(steps, 1))
	}
	if perStep > 0 {
		res.StepsPerSecond = 1 / perStep
		res.GFlops = j.flops / perStep / 1e9
	}
	if ref, ok := Reference(j.row, opt); ok && median > 0 {
		res.ReferenceSeconds, res.Speedup = ref, ref/median
	}
	return res
}

func backendName(opt Options) string { return backend.Resolve(opt.Backend) }

// Label names a row in messages: "labelnoise m=10,d=3,n=3".
func (r Row) Label() string { return fmt.Sprintf("%s %s", r.Work, r.Size) }
