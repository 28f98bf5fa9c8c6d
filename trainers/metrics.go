package trainers

import (
	"bytes"

	"encoding/json"
	"fmt"
	"gonum.org/v1/gonum/mat"
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
	out = append(out, Field{"singular_values_Z", jsonFloats(m.SingularValuesZ)},
		Field{"singular_values_theta", jsonFloats(m.SingularValuesTheta)})
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

func jsonFloats(vs []float64) []JSONFloat {
	out := make([]JSONFloat, len(vs))
	for i, v := range vs {
		out[i] = JSONFloat(v)
	}
	return out
}

// Evaluator computes Metrics for a problem. Its graph is compiled once.
type Evaluator struct {
	b        backends.Backend
	p        *model.Problem
	opt      regularizers.Optimum
	exec     *Exec
	features *Exec // Θ → Z
	tan      *tangentSpace
	feat     *featureEval // for feature-engine states, compiled on first use
	sharp    *Hessian     // when tracking sharpness (TrackSharpness)
}

// featureEval measures a feature-engine state from Zᵀ, without forming Θ.
type featureEval struct {
	eng  *engine
	exec *Exec // Zᵀ → loss, Tr D²L, its manifold form, ‖∇L‖
	tan  *tangentSpace
	// Θ₀ᵀΘ₀ for the Θ₀ it was computed at (the costly part of ΘᵀΘ).
	baseGram *mat.Dense
	gramOf   *tensors.Tensor
}

// smallTheta is the size (m·d) up to which Θ's singular values come from an
// SVD of Θ itself; above it, from the eigenvalues of ΘᵀΘ, which needs no
// m×d buffer but resolves singular values only down to ~1e-8·σ₁.
var smallTheta = 1 << 20

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
	tan, err := newTangentSpace(b, p, &engine{name: EngineTheta, p: p, sp: thetaSpace{}})
	if err != nil {
		return nil, err
	}
	features, err := compile(b, func(theta *Node) *Node { return model.NewNet(theta.Graph(), p).Features(theta) })
	if err != nil {
		return nil, err
	}
	return &Evaluator{b: b, p: p, opt: regularizers.PredictOptimum(p), exec: exec, features: features, tan: tan}, nil
}

func (e *Evaluator) compileFeatures() error {
	p := e.p
	eng, err := newEngine(e.b, p, EngineFeature)
	if err != nil {
		return err
	}
	exec, err := compile(e.b, func(zt *Node) []*Node {
		net := model.NewNet(zt.Graph(), p)
		fw := net.ForwardFeatures(zt)
		grad := fw.Coef(MulScalar(fw.R, 2)) // ∇L = 2Jᵀr as V X
		return []*Node{fw.Loss(), regularizers.TraceHessian(fw), regularizers.TraceHessianManifold(fw),
			Sqrt(featureSpace{}.normSq(net, grad))}
	})
	if err != nil {
		return err
	}
	tan, err := newTangentSpace(e.b, p, eng)
	if err != nil {
		return err
	}
	e.feat = &featureEval{eng: eng, exec: exec, tan: tan}
	return nil
}

// MeasureState computes the metrics at s: Measure(s.Theta) for a Θ-engine
// state; from the features for a feature-engine state, forming Θ only when
// small (for its singular values). When tracking sharpness, Extra holds
// SharpnessColumns.
func (e *Evaluator) MeasureState(s *State) (Metrics, error) {
	m, err := e.measureState(s)
	if err != nil || e.sharp == nil {
		return m, err
	}
	if s.Theta == nil {
		if err := e.feat.eng.sync(s); err != nil {
			return m, err
		}
	}
	lmax, lmin, err := e.Sharpness(s.Theta)
	if err != nil {
		return m, err
	}
	m.Extra = map[string]float64{ColumnLambdaMax: lmax, ColumnLambdaMin: lmin}
	return m, nil
}

func (e *Evaluator) measureState(s *State) (Metrics, error) {
	if s.Features == nil {
		return e.Measure(s.Theta)
	}
	if e.feat == nil {
		if err := e.compileFeatures(); err != nil {
			return Metrics{}, err
		}
	}
	f := e.feat
	out, err := run(f.exec, s.Features)
	if err != nil {
		return Metrics{}, err
	}
	m := Metrics{Loss: scalar(out[0]), TraceHessian: scalar(out[1]), TraceHessianManifold: scalar(out[2]), GradNorm: scalar(out[3])}
	if err := viewOf(e.b, s.Features, func(zt []float64) {
		e.fromFeatures(&m, zt, e.p.M, e.p.N, e.opt.TheoryGapNeuronMajor)
	}); err != nil {
		return m, err
	}
	if tp, err := f.tan.atLean(s.Features, e.b); err == nil {
		if norm, err := tp.gradNorm(); err == nil {
			m.RiemannianGradNorm = norm
		}
		tp.release()
	}
	if e.p.M*e.p.D <= smallTheta {
		if s.Theta == nil {
			if err := f.eng.sync(s); err != nil {
				return m, err
			}
		}
		m.SingularValuesTheta = thetaSingularValues(tensors.MustCopyFlatData[float64](s.Theta), e.p.M, e.p.D)
		return m, nil
	}
	gram, err := f.thetaGram(s)
	if err != nil {
		return m, err
	}
	m.SingularValuesTheta = singularValuesFromGram(gram, e.p.D, min(e.p.M, e.p.D))
	return m, nil
}

// thetaGram returns ΘᵀΘ (d×d, row-major) of a feature state without forming
// Θ: with Θ = Θ₀ − S X, ΘᵀΘ = Θ₀ᵀΘ₀ − (Θ₀ᵀS)X − Xᵀ(SᵀΘ₀) + Xᵀ(SᵀS)X. The
// products over m run on the host (gonum) on Θ₀'s own memory: a graph would
// transpose-copy the m×d Θ₀ to contract over its rows.
func (f *featureEval) thetaGram(s *State) ([]float64, error) {
	p := f.eng.p
	shiftT, err := f.eng.shift(s)
	if err != nil {
		return nil, err
	}
	defer shiftT.FinalizeAll()
	var bs, ss mat.Dense // Θ₀ᵀS (d×n), SᵀS (n×n)
	err = viewOf(f.eng.b, shiftT, func(sflat []float64) {
		shift := mat.NewDense(p.M, p.N, sflat)
		ss.Mul(shift.T(), shift)
		err = viewOf(f.eng.b, s.Base, func(flat []float64) {
			base := mat.NewDense(p.M, p.D, flat)
			if f.gramOf != s.Base {
				f.baseGram = &mat.Dense{}
				f.baseGram.Mul(base.T(), base)
				f.gramOf = s.Base
			}
			bs.Mul(base.T(), shift)
		})
	})
	if err != nil {
		return nil, err
	}
	x := mat.NewDense(p.N, p.D, p.X)
	var bsx, ssx, xssx mat.Dense
	bsx.Mul(&bs, x)
	ssx.Mul(&ss, x)
	xssx.Mul(x.T(), &ssx)
	var g mat.Dense
	g.Sub(f.baseGram, &bsx)
	g.Sub(&g, bsx.T())
	g.Add(&g, &xssx)
	return g.RawMatrix().Data, nil
}

// viewOf passes t's float64 data to fn without copying it where backend b
// shares memory with the host (SimpleGo); elsewhere through a local copy
// that is dropped afterwards.
func viewOf(b backends.Backend, t *tensors.Tensor, fn func(flat []float64)) error {
	if !t.IsLocal() && b.HasSharedBuffers() {
		if buf, err := t.Buffer(b, 0); err == nil {
			if flat, err := b.BufferData(buf); err == nil {
				if v, ok := flat.([]float64); ok {
					fn(v)
					return nil
				}
			}
		}
	}
	hadLocal := t.IsLocal()
	err := tensors.ConstFlatData(t, fn)
	if !hadLocal && !t.IsShared() && t.IsOnAnyDevice() {
		t.FinalizeLocal()
	}
	return err
}

// fromFeatures fills the metrics that come from Z given as rows×cols
// (n×m, or Zᵀ m×n): theory gap, singular values, effective rank.
func (e *Evaluator) fromFeatures(m *Metrics, z []float64, rows, cols int, gap func(z []float64, n, m int) float64) {
	m.TraceMin, m.EffectiveRank, m.RiemannianGradNorm = math.NaN(), math.NaN(), math.NaN()
	if e.opt.OK {
		m.TraceMin = e.opt.TraceMin
	}
	m.TheoryGap = gap(z, e.p.N, e.p.M)
	k := min(e.p.N, e.p.M)
	if rows*cols > smallTheta {
		// Large Z: singular values from its k×k Gram matrix, built on Z's own
		// memory (an SVD would copy it).
		v := mat.NewDense(rows, cols, z)
		var g mat.Dense
		if rows > cols {
			g.Mul(v.T(), v)
		} else {
			g.Mul(v, v.T())
		}
		m.SingularValuesZ = singularValuesFromGram(g.RawMatrix().Data, min(rows, cols), k)
	} else if sv, err := linalg.SingularValues(z, rows, cols); err == nil {
		m.SingularValuesZ = sv
	} else {
		m.SingularValuesZ = nanSlice(k)
		return
	}
	m.EffectiveRank = linalg.EffectiveRank(m.SingularValuesZ)
}

func thetaSingularValues(theta []float64, m, d int) []float64 {
	if sv, err := linalg.SingularValues(theta, m, d); err == nil {
		return sv
	}
	return nanSlice(min(m, d))
}

// singularValuesFromGram returns the k largest √λ of a d×d Gram matrix, descending.
func singularValuesFromGram(g []float64, d, k int) []float64 {
	vals, err := linalg.EigenvaluesSym(g, d)
	if err != nil {
		return nanSlice(k)
	}
	out := make([]float64, k)
	for i := range k {
		out[i] = math.Sqrt(math.Max(vals[d-1-i], 0))
	}
	return out
}

// Features returns Z = XΘᵀ (n×m, row-major) at Θ.
func (e *Evaluator) Features(theta *tensors.Tensor) ([]float64, error) {
	out, err := run(e.features, theta)
	if err != nil {
		return nil, err
	}
	return tensors.MustCopyFlatData[float64](out[0]), nil
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
	}
	e.fromFeatures(&m, tensors.MustCopyFlatData[float64](out[4]), e.p.N, e.p.M, e.opt.TheoryGap)
	m.SingularValuesTheta = thetaSingularValues(tensors.MustCopyFlatData[float64](theta), e.p.M, e.p.D)
	if tp, err := e.tan.at(theta); err == nil {
		if norm, err := tp.gradNorm(); err == nil {
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

// Report is what `flatmin inspect` prints: the metrics of one Θ (without the
// step and wall time of a run) and optional estimates.
type Report struct {
	Metrics       Metrics
	TopEigenvalue float64 // λ_max of the loss Hessian, NaN if power iteration failed
	Hutchinson    *HutchinsonReport
	Eigen         *EigenReport   // Lanczos' top-k and smallest, when asked
	Density       *DensityReport // SLQ, when asked
}

// HutchinsonReport is a stochastic estimate of Tr D²L (Hutchinson's or Hutch++).
type HutchinsonReport struct {
	Estimate     float64 `json:"estimate"`
	Stderr       float64 `json:"stderr"`
	Probes       int     `json:"probes"`
	Method       string  `json:"method"`        // "hutchinson" or "hutchpp"
	StderrMethod string  `json:"stderr_method"` // how Stderr was computed
}

// MarshalJSON writes the metrics' fields, "top_eigenvalue" and "hutchinson"
// (null when not asked), then, when asked, "top_eigenvalues",
// "min_eigenvalue", "lanczos_steps", "lanczos_converged" and "spectral_density".
func (r Report) MarshalJSON() ([]byte, error) {
	var fields []Field
	for _, f := range r.Metrics.Fields() {
		if f.Name != "step" && f.Name != "wall_seconds" {
			fields = append(fields, f)
		}
	}
	fields = append(fields, Field{"top_eigenvalue", JSONFloat(r.TopEigenvalue)}, Field{"hutchinson", r.Hutchinson})
	if r.Eigen != nil {
		fields = append(fields, Field{"top_eigenvalues", jsonFloats(r.Eigen.Top)}, Field{"min_eigenvalue", JSONFloat(r.Eigen.Min)},
			Field{"lanczos_steps", r.Eigen.Steps}, Field{"lanczos_converged", r.Eigen.Converged})
	}
	if r.Density != nil {
		fields = append(fields, Field{"spectral_density", r.Density})
	}
	return MarshalFields(fields)
}

// Hutchinson estimates Tr D²L at Θ with `probes` Rademacher probes seeded by
// seed, by the model's structured estimator (regularizers.HutchinsonTraceHessian:
// the generic autodiff estimator's probes and estimate, several times faster).
func Hutchinson(b backends.Backend, p *model.Problem, theta *tensors.Tensor, probes int, seed uint64) (*HutchinsonReport, error) {
	rng, err := RNGStateFromSeed(int64(seed))
	if err != nil {
		return nil, err
	}
	exec, err := compile(b, func(th, rng *Node) []*Node {
		_, est, se := regularizers.HutchinsonTraceHessian(model.NewNet(th.Graph(), p).Forward(th), rng, probes)
		return []*Node{est, se}
	})
	if err != nil {
		return nil, err
	}
	out, err := run(exec, theta, rng)
	if err != nil {
		return nil, err
	}
	return &HutchinsonReport{Estimate: scalar(out[0]), Stderr: scalar(out[1]), Probes: probes, Method: EstimatorHutchinson,
		StderrMethod: "sample standard deviation of the probes' quadratic forms over √(probes)"}, nil
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
