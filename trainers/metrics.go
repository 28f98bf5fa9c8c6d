package trainers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/flatmin/flatmin/internal/linalg"
	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/regularizers"
	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Metrics is what the loop logs at a log step and what `flatmin inspect`
// prints. NaN marks a quantity that is undefined here (JSON null).
type Metrics struct {
	Step                 int64
	Loss                 float64
	TraceHessian         float64 // exact Tr D²L
	TraceHessianManifold float64 // 2 Σ_i ‖Df_i‖²
	TraceMin             float64 // F*, when w = 1 and φ⁻¹ exists
	TheoryGap            float64 // max_ij |z_ij − φ⁻¹(y_i/m)|
	GradNorm             float64 // ‖∇L‖
	RiemannianGradNorm   float64 // ‖P ∇Tr D²L‖, NaN when J Jᵀ is singular
	SingularValuesZ      []float64
	SingularValuesTheta  []float64
	EffectiveRank        float64 // of Z: exp(entropy of σ/Σσ)
	WallSeconds          float64
	Extra                map[string]float64 // the trainer's scalars (Trainer.Extras)
}

// MetricNames are the scalar metric names shared by CSV columns, JSON keys
// and the summary's "final" object, in order.
var MetricNames = []string{"step", "loss", "trace_hessian", "trace_hessian_manifold", "trace_min",
	"theory_gap", "grad_norm", "riemannian_grad_norm", "effective_rank"}

func (m *Metrics) scalars() []float64 {
	return []float64{float64(m.Step), m.Loss, m.TraceHessian, m.TraceHessianManifold, m.TraceMin,
		m.TheoryGap, m.GradNorm, m.RiemannianGradNorm, m.EffectiveRank}
}

// CSVHeader returns metrics.csv's columns for a problem and a trainer's extras.
func CSVHeader(p *model.Problem, extras []string) []string {
	h := append([]string(nil), MetricNames...)
	for k := range min(p.N, p.M) {
		h = append(h, fmt.Sprintf("sv_z_%d", k+1))
	}
	for k := range min(p.M, p.D) {
		h = append(h, fmt.Sprintf("sv_theta_%d", k+1))
	}
	h = append(h, extras...)
	return append(h, "wall_seconds")
}

// CSVRecord formats m in CSVHeader's column order; floats round-trip exactly.
func (m *Metrics) CSVRecord(extras []string) []string {
	var rec []string
	for i, v := range m.scalars() {
		if i == 0 {
			rec = append(rec, strconv.FormatInt(m.Step, 10))
			continue
		}
		rec = append(rec, formatFloat(v))
	}
	for _, v := range m.SingularValuesZ {
		rec = append(rec, formatFloat(v))
	}
	for _, v := range m.SingularValuesTheta {
		rec = append(rec, formatFloat(v))
	}
	for _, name := range extras {
		rec = append(rec, formatFloat(m.Extra[name]))
	}
	return append(rec, formatFloat(m.WallSeconds))
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// MarshalJSON writes the metrics as one object: the names of MetricNames,
// singular_values_Z, singular_values_theta, the extras and wall_seconds.
func (m Metrics) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	field := func(name string, v any) {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		buf.Write(key)
		buf.WriteByte(':')
		val, _ := json.Marshal(v)
		buf.Write(val)
	}
	for i, v := range m.scalars() {
		if i == 0 {
			field("step", m.Step)
		} else {
			field(MetricNames[i], JSONFloat(v))
		}
	}
	field("singular_values_Z", jsonFloats(m.SingularValuesZ))
	field("singular_values_theta", jsonFloats(m.SingularValuesTheta))
	for _, name := range slices.Sorted(maps.Keys(m.Extra)) {
		field(name, JSONFloat(m.Extra[name]))
	}
	field("wall_seconds", JSONFloat(m.WallSeconds))
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// JSONFloat marshals NaN and ±Inf as null, which JSON has no numbers for.
type JSONFloat float64

// MarshalJSON implements json.Marshaler.
func (f JSONFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return []byte(formatFloat(v)), nil
}

func jsonFloats(vs []float64) []JSONFloat {
	out := make([]JSONFloat, len(vs))
	for i, v := range vs {
		out[i] = JSONFloat(v)
	}
	return out
}

// Evaluator computes Metrics for a problem. Its graph is compiled once.
type Evaluator struct {
	p    *model.Problem
	opt  regularizers.Optimum
	exec *Exec
	tan  *tangentSpace
}

// NewEvaluator compiles the metrics graph for p.
func NewEvaluator(b backends.Backend, p *model.Problem) (*Evaluator, error) {
	exec, err := compile(b, func(theta *Node) []*Node {
		fw := model.NewNet(theta.Graph(), p).Forward(theta)
		return []*Node{
			fw.Loss(),
			regularizers.TraceHessian(fw),
			regularizers.TraceHessianManifold(fw),
			Sqrt(ReduceAllSum(Square(fw.LossGrad()))),
			fw.Z,
		}
	})
	if err != nil {
		return nil, err
	}
	tan, err := newTangentSpace(b, p)
	if err != nil {
		return nil, err
	}
	return &Evaluator{p: p, opt: regularizers.PredictOptimum(p), exec: exec, tan: tan}, nil
}

// Optimum returns the theory's prediction the metrics compare against.
func (e *Evaluator) Optimum() regularizers.Optimum { return e.opt }

// Measure computes the metrics at Θ (Step, WallSeconds and Extra are left to the caller).
func (e *Evaluator) Measure(theta *tensors.Tensor) (Metrics, error) {
	out, err := run(e.exec, theta)
	if err != nil {
		return Metrics{}, err
	}
	m := Metrics{
		Loss:                 scalar(out[0]),
		TraceHessian:         scalar(out[1]),
		TraceHessianManifold: scalar(out[2]),
		GradNorm:             scalar(out[3]),
		TraceMin:             math.NaN(),
		EffectiveRank:        math.NaN(),
		RiemannianGradNorm:   math.NaN(),
	}
	if e.opt.OK {
		m.TraceMin = e.opt.TraceMin
	}
	z := tensors.MustCopyFlatData[float64](out[4])
	m.TheoryGap = e.opt.TheoryGap(z, e.p.N, e.p.M)
	if sv, err := linalg.SingularValues(z, e.p.N, e.p.M); err == nil {
		m.SingularValuesZ = sv
		m.EffectiveRank = linalg.EffectiveRank(sv)
	} else {
		m.SingularValuesZ = nanSlice(min(e.p.N, e.p.M))
	}
	if sv, err := linalg.SingularValues(tensors.MustCopyFlatData[float64](theta), e.p.M, e.p.D); err == nil {
		m.SingularValuesTheta = sv
	} else {
		m.SingularValuesTheta = nanSlice(min(e.p.M, e.p.D))
	}
	if tp, err := e.tan.at(theta); err == nil {
		if _, norm, err := tp.project(); err == nil {
			m.RiemannianGradNorm = norm
		}
	}
	return m, nil
}

func nanSlice(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}
