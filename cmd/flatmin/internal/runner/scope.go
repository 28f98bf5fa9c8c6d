package runner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/flatmin/flatmin/model"
	"github.com/flatmin/flatmin/trainers"
)

// OnManifoldTol is how close to zero loss a Θ must be, as ‖f − y‖/‖y‖, for
// its Tr D²L to be set against F*, the minimum over the manifold of zero loss.
const OnManifoldTol = 1e-6

// TraceMinScope says why F* (trace_min) is not the minimum of Tr D²L over
// the manifold of zero loss for this activation and data shape, or "" when
// Theorem 2 makes it that minimum (F* itself needs w = 1 and φ⁻¹(y_i/m)).
func TraceMinScope(act model.Activation, n, d int) string {
	cube := false
	if o, ok := act.(*model.OddActivation); ok && o.K == 1 && o.Nu == 0 {
		cube = true // Lemma 18: Theorem 2 holds for z³ although Assumption 1 fails
	}
	switch {
	case !act.Constants().Assumption1 && !cube:
		return fmt.Sprintf("%s fails Assumption 1 (φ' ≥ ϱ1 > 0, φ''' ≥ ϱ2 > 0), so Theorem 2 does not make F* the minimum", act.Name())
	case n > d:
		return fmt.Sprintf("n = %d > d = %d: θ_j·x_i = φ⁻¹(y_i/m) for all i has no solution in general, so F* is a lower bound Tr D²L does not reach", n, d)
	}
	return ""
}

// InspectReport is `flatmin inspect`'s output: the metrics, and a note on
// what trace_min means for this Θ where it is not a value Θ could reach.
type InspectReport struct {
	*Report
	Note string // "" when trace_min is the minimum Θ's Tr D²L is to be set against
}

// MarshalJSON writes the report's fields and "note" (when there is one).
func (r InspectReport) MarshalJSON() ([]byte, error) {
	data, err := json.Marshal(r.Report)
	if err != nil || r.Note == "" {
		return data, err
	}
	var note bytes.Buffer
	enc := json.NewEncoder(&note)
	enc.SetEscapeHTML(false) // the note says "n > d"
	if err := enc.Encode(r.Note); err != nil {
		return nil, err
	}
	data = bytes.TrimSuffix(bytes.TrimSpace(data), []byte("}"))
	return append(append(append(data, `,"note":`...), bytes.TrimSpace(note.Bytes())...), '}'), nil
}

// inspectNote says where trace_min does not apply to Θ: outside Theorem 2's
// scope, or off the manifold.
func inspectNote(p *model.Problem, m trainers.Metrics) string {
	if math.IsNaN(m.TraceMin) {
		return ""
	}
	if why := TraceMinScope(p.Act, p.N, p.D); why != "" {
		return "trace_min: " + why
	}
	if rel, off := OffManifold(m.Loss, p.Y); off {
		return fmt.Sprintf("trace_min: Θ is off the manifold of zero loss (‖f − y‖/‖y‖ = %.3g), where F* is the minimum", rel)
	}
	return ""
}

// OffManifold returns ‖f − y‖/‖y‖ from the loss ‖f − y‖² and reports
// whether it is above OnManifoldTol (or not a number): the one test of being
// on the manifold of zero loss (inspect's note, train's summary).
func OffManifold(loss float64, y []float64) (rel float64, off bool) {
	ySq := 0.0
	for _, v := range y {
		ySq += v * v
	}
	rel = math.Sqrt(loss / ySq)
	return rel, !(rel <= OnManifoldTol)
}
