package trainers

import (
	"math"

	"github.com/flatmin/flatmin/internal/backend"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// HutchinsonReport is a stochastic estimate of Tr D²L (Hutchinson's or Hutch++).
type HutchinsonReport struct {
	Estimate     float64 `json:"estimate"`
	Stderr       float64 `json:"stderr"`
	Probes       int     `json:"probes"`
	Method       string  `json:"method"`        // "hutchinson" or "hutchpp"
	StderrMethod string  `json:"stderr_method"` // how Stderr was computed
}

// Hutchinson estimates Tr D²L at Θ with `probes` Rademacher probes seeded by
// seed, by the model's structured estimator (see HutchinsonEstimator);
// graphs keeps it in compiled graphs on SimpleGo too.
func Hutchinson(b backends.Backend, p *model.Problem, theta *tensors.Tensor, probes int, seed uint64, graphs bool) (*HutchinsonReport, error) {
	rng, err := RNGStateFromSeed(int64(seed))
	if err != nil {
		return nil, err
	}
	h, err := NewHutchinsonEstimator(b, p, probes, graphs)
	if err != nil {
		return nil, err
	}
	_, est, se, err := h.Estimate(theta, rng)
	if err != nil {
		return nil, err
	}
	return &HutchinsonReport{Estimate: est, Stderr: se, Probes: probes, Method: EstimatorHutchinson,
		StderrMethod: "sample standard deviation of the probes' quadratic forms over √(probes)"}, nil
}

// HutchinsonEstimator is Hutchinson's estimate of Tr D²L by the model's
// structured estimator (regularizers.HutchinsonTraceHessian: the generic
// autodiff estimator's probes and estimate, several times faster). On
// SimpleGo, unless told to stay in graphs, only the probes are drawn in a
// graph and the rest runs on the host (regularizers.HostHutchinson: the same
// probes and, to rounding, the same estimate). It serves one goroutine.
type HutchinsonEstimator struct {
	b      backends.Backend
	probes int
	exec   *Exec          // graphs: (Θ, rng) → (new rng, estimate, stderr); host: rng → (new rng, words)
	host   *model.HostNet // nil on the graph path
}

// NewHutchinsonEstimator compiles the estimator of `probes` probes for p.
func NewHutchinsonEstimator(b backends.Backend, p *model.Problem, probes int, graphs bool) (*HutchinsonEstimator, error) {
	h := &HutchinsonEstimator{b: b, probes: probes}
	var err error
	if backend.IsSimpleGo(b) && !graphs && !GraphsForced() {
		h.host = model.NewHostNet(p)
		h.exec, err = compile(b, func(rng *Node) []*Node {
			newRNG, words := regularizers.ProbeWords(rng, p, probes)
			return []*Node{newRNG, words}
		})
	} else {
		h.exec, err = compile(b, func(th, rng *Node) []*Node {
			newRNG, est, se := regularizers.HutchinsonTraceHessian(model.NewNet(th.Graph(), p).Forward(th), rng, probes)
			return []*Node{newRNG, est, se}
		})
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Path is where the estimate is computed: "host" or "graphs".
func (h *HutchinsonEstimator) Path() string {
	if h.host != nil {
		return "host"
	}
	return "graphs"
}

// Estimate returns the estimate at Θ [m, d] with probes drawn from the RNG
// state rng, its standard error, and the new RNG state.
func (h *HutchinsonEstimator) Estimate(theta, rng *tensors.Tensor) (newRNG *tensors.Tensor, estimate, stderr float64, err error) {
	if h.host == nil {
		out, err := run(h.exec, theta, rng)
		if err != nil {
			return nil, 0, 0, err
		}
		return out[0], scalar(out[1]), scalar(out[2]), nil
	}
	out, err := run(h.exec, rng)
	if err != nil {
		return nil, 0, 0, err
	}
	defer out[1].FinalizeAll() // the words are used once
	err = tensors.ConstFlatData(out[1], func(words []uint32) {
		err = viewOf(h.b, theta, func(th []float64) {
			estimate, stderr = regularizers.HostHutchinson(h.host, th, words, h.probes)
		})
	})
	if err != nil {
		return nil, 0, 0, err
	}
	return out[0], estimate, stderr, nil
}

// TopEigenvalue returns the largest eigenvalue of the loss Hessian at Θ (the
// sharpness SAM targets), by power iteration on autodiff Hessian-vector products.
func TopEigenvalue(b backends.Backend, p *model.Problem, theta *tensors.Tensor) (float64, error) {
	exec, err := compile(b, func(th, v *Node) *Node {
		net := model.NewNet(th.Graph(), p)
		return regularizers.HessianVectorProduct(func(x *Node) *Node { return net.Forward(x).Loss() }, th, v)
	})
	if err != nil {
		return math.NaN(), err
	}
	return regularizers.TopEigenvalue(func(v []float64) ([]float64, error) {
		out, err := run(exec, theta, tensors.FromFlatDataAndDimensions(v, p.M, p.D))
		if err != nil {
			return nil, err
		}
		return tensors.MustCopyFlatData[float64](out[0]), nil
	}, p.M*p.D, regularizers.PowerOptions{})
}
