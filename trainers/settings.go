package trainers

import (
	"fmt"
	"math"
)

// Settings are one trainer's hyperparameters, the way gonum gives each
// method a struct of its own: Validate says which field is out of range
// (a *FieldError naming the Config field), so that any front end can name
// its own flag or key for it.
type Settings interface {
	Validate() error
}

// GDSettings are gd's: Θ ← Θ − η∇L.
type GDSettings struct {
	Eta float64 // step size η > 0
}

// LabelNoiseSettings are labelnoise's: gd on labels y + ζ, ζ ~ N(0, σ²) each step.
type LabelNoiseSettings struct {
	Eta   float64 // step size η > 0
	Sigma float64 // noise standard deviation σ ≥ 0
}

// SAM1Settings are sam1's: the paper's 1-SAM, each of Batch examples with
// its own perturbation of radius Rho.
type SAM1Settings struct {
	Eta      float64 // step size η > 0
	Rho      float64 // perturbation radius ρ > 0
	SAMBatch int     // examples per step B ≥ 1
}

// SAMSettings are sam's: standard SAM, one perturbation of radius Rho
// along the full-batch gradient.
type SAMSettings struct {
	Eta float64 // step size η > 0
	Rho float64 // perturbation radius ρ > 0
}

// PenaltySettings are penalty's: gd on L + λ Tr D²L.
type PenaltySettings struct {
	Eta    float64 // step size η > 0
	Lambda float64 // weight λ ≥ 0
}

// RiemannianSettings are riemannian's: the projected flow of Tr D²L on the
// manifold of zero loss.
type RiemannianSettings struct {
	Eta        float64 // the largest step the Armijo safeguard may take, > 0
	RetractTol float64 // retraction tolerance on ‖f − y‖, relative to ‖y‖, in (0, 1)
	Gtol       float64 // converged once ‖grad_M Tr D²L‖ ≤ Gtol; 0: at its rounding floor
}

// Execution says how a trainer runs; results do not depend on it beyond
// rounding (Engine, Graphs) or at all (Fuse).
type Execution struct {
	// Engine is how Θ is represented while training: EngineTheta (Θ itself,
	// the reference), EngineFeature (Θ = Θ₀ − SX, moving only Zᵀ), or
	// "" for automatic (EngineFeature where it is cheaper).
	Engine string
	// Fuse is how many steps run inside one compiled call; 0 chooses by size,
	// 1 is one step per call.
	Fuse int
	// Graphs keeps every trainer in compiled GoMLX graphs on SimpleGo too,
	// where gd, labelnoise, sam1 (hostgd.go) and the feature engine's
	// riemannian (flow.go) and sam (hostsam.go) otherwise step on the host:
	// the reference, slower.
	// $FLATMIN_GRAPHS=1 sets it for every trainer (GraphsForced).
	Graphs bool
}

// FieldError is a setting out of its range. Field is the name of the
// Config field (and of the settings struct's).
type FieldError struct {
	Field string
	Value any
	Want  string // what the value must be, e.g. "positive and finite"
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s must be %s, got %v", e.Field, e.Want, e.Value)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func checkEta(eta float64) error {
	if !(eta > 0) || !finite(eta) {
		return &FieldError{"Eta", eta, "positive and finite"}
	}
	return nil
}

// Validate checks η.
func (s GDSettings) Validate() error { return checkEta(s.Eta) }

// Validate checks η and σ.
func (s LabelNoiseSettings) Validate() error {
	if !(s.Sigma >= 0) || !finite(s.Sigma) {
		return &FieldError{"Sigma", s.Sigma, "≥ 0 and finite"}
	}
	return checkEta(s.Eta)
}

// Validate checks η, ρ and B.
func (s SAM1Settings) Validate() error {
	switch {
	case !(s.Rho > 0) || !finite(s.Rho):
		return &FieldError{"Rho", s.Rho, "positive and finite"}
	case s.SAMBatch < 1:
		return &FieldError{"SAMBatch", s.SAMBatch, "at least 1"}
	}
	return checkEta(s.Eta)
}

// Validate checks η and ρ.
func (s SAMSettings) Validate() error {
	if !(s.Rho > 0) || !finite(s.Rho) {
		return &FieldError{"Rho", s.Rho, "positive and finite"}
	}
	return checkEta(s.Eta)
}

// Validate checks η and λ.
func (s PenaltySettings) Validate() error {
	if !(s.Lambda >= 0) || !finite(s.Lambda) {
		return &FieldError{"Lambda", s.Lambda, "≥ 0 and finite"}
	}
	return checkEta(s.Eta)
}

// Validate checks η, the retraction tolerance and gtol.
func (s RiemannianSettings) Validate() error {
	switch {
	case !(s.RetractTol > 0) || s.RetractTol >= 1:
		return &FieldError{"RetractTol", s.RetractTol, "in (0, 1)"}
	case !(s.Gtol >= 0) || !finite(s.Gtol):
		return &FieldError{"Gtol", s.Gtol, "≥ 0 and finite"}
	}
	return checkEta(s.Eta)
}

// Validate checks the engine's name and the fuse count.
func (x Execution) Validate() error {
	if _, err := ChooseEngineSizes(x.Engine, 1, 1); err != nil {
		return err
	}
	if x.Fuse < 0 || x.Fuse > 4096 {
		return &FieldError{"Fuse", x.Fuse, "between 0 (automatic) and 4096"}
	}
	return nil
}

// GD returns the gd settings in c.
func (c Config) GD() GDSettings { return GDSettings{Eta: c.Eta} }

// LabelNoise returns the labelnoise settings in c.
func (c Config) LabelNoise() LabelNoiseSettings {
	return LabelNoiseSettings{Eta: c.Eta, Sigma: c.Sigma}
}

// SAM1 returns the sam1 settings in c.
func (c Config) SAM1() SAM1Settings {
	return SAM1Settings{Eta: c.Eta, Rho: c.Rho, SAMBatch: c.SAMBatch}
}

// SAM returns the sam settings in c.
func (c Config) SAM() SAMSettings { return SAMSettings{Eta: c.Eta, Rho: c.Rho} }

// Penalty returns the penalty settings in c.
func (c Config) Penalty() PenaltySettings { return PenaltySettings{Eta: c.Eta, Lambda: c.Lambda} }

// Riemannian returns the riemannian settings in c.
func (c Config) Riemannian() RiemannianSettings {
	return RiemannianSettings{Eta: c.Eta, RetractTol: c.RetractTol, Gtol: c.Gtol}
}

// Settings returns trainer name's settings in c.
func (c Config) Settings(name string) (Settings, error) {
	t, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown trainer %q", name)
	}
	return t.settings(c), nil
}

// ValidateAll checks every trainer's settings in c, also those the trainer
// in use ignores (a NaN there is a mistake all the same), except η, which
// front ends may choose later, and the execution settings.
func (c Config) ValidateAll() error {
	c.Eta = 1
	for _, name := range Names() {
		if err := registry[name].settings(c).Validate(); err != nil {
			return err
		}
	}
	return c.Execution.Validate()
}
