package trainers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"github.com/flatmin/flatmin/model"
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

// Field is one named value of a JSON object whose key order matters.
type Field struct {
	Name  string
	Value any
}

// Fields lists the metrics in order: MetricNames, singular_values_Z,
// singular_values_theta, the extras (sorted) and wall_seconds. NaN is null.
func (m Metrics) Fields() []Field {
	var out []Field
	for i, v := range m.scalars() {
		if i == 0 {
			out = append(out, Field{"step", m.Step})
		} else {
			out = append(out, Field{MetricNames[i], JSONFloat(v)})
		}
	}
	out = append(out, Field{"singular_values_Z", JSONFloats(m.SingularValuesZ)},
		Field{"singular_values_theta", JSONFloats(m.SingularValuesTheta)})
	for _, name := range slices.Sorted(maps.Keys(m.Extra)) {
		out = append(out, Field{name, JSONFloat(m.Extra[name])})
	}
	return append(out, Field{"wall_seconds", JSONFloat(m.WallSeconds)})
}

// MarshalJSON writes Fields as one object.
func (m Metrics) MarshalJSON() ([]byte, error) { return MarshalFields(m.Fields()) }

// UnmarshalJSON reads what MarshalJSON writes; null reads back as NaN and
// unknown keys as extras.
func (m *Metrics) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	*m = Metrics{Extra: map[string]float64{}}
	ptrs := []*float64{nil, &m.Loss, &m.TraceHessian, &m.TraceHessianManifold, &m.TraceMin,
		&m.TheoryGap, &m.GradNorm, &m.RiemannianGradNorm, &m.EffectiveRank}
	for i, name := range MetricNames {
		msg, ok := raw[name]
		delete(raw, name)
		if !ok {
			if i > 0 {
				*ptrs[i] = math.NaN()
			}
			continue
		}
		if i == 0 {
			if err := json.Unmarshal(msg, &m.Step); err != nil {
				return fmt.Errorf("metrics step: %w", err)
			}
			continue
		}
		var f JSONFloat
		if err := json.Unmarshal(msg, &f); err != nil {
			return fmt.Errorf("metrics %s: %w", name, err)
		}
		*ptrs[i] = float64(f)
	}
	for name, dst := range map[string]*[]float64{"singular_values_Z": &m.SingularValuesZ, "singular_values_theta": &m.SingularValuesTheta} {
		var fs []JSONFloat
		if msg, ok := raw[name]; ok {
			if err := json.Unmarshal(msg, &fs); err != nil {
				return fmt.Errorf("metrics %s: %w", name, err)
			}
		}
		delete(raw, name)
		for _, f := range fs {
			*dst = append(*dst, float64(f))
		}
	}
	for name, msg := range raw {
		var f JSONFloat
		if err := json.Unmarshal(msg, &f); err != nil {
			return fmt.Errorf("metrics %s: %w", name, err)
		}
		if name == "wall_seconds" {
			m.WallSeconds = float64(f)
		} else {
			m.Extra[name] = float64(f)
		}
	}
	return nil
}

// MarshalFields writes fields as one JSON object, in order.
func MarshalFields(fields []Field) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		key, _ := json.Marshal(f.Name)
		buf.Write(key)
		buf.WriteByte(':')
		val, err := json.Marshal(f.Value)
		if err != nil {
			return nil, err
		}
		buf.Write(val)
	}
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

// UnmarshalJSON implements json.Unmarshaler: null reads back as NaN.
func (f *JSONFloat) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*f = JSONFloat(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*f = JSONFloat(v)
	return nil
}

func JSONFloats(vs []float64) []JSONFloat {
	out := make([]JSONFloat, len(vs))
	for i, v := range vs {
		out[i] = JSONFloat(v)
	}
	return out
}
