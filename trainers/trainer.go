package trainers

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// State is everything that crosses from one step to the next. It is explicit
// so that a checkpoint of it resumes a run bit for bit.
type State struct {
	Step int64
	// Theta is Θ [m, d] float64. Under the feature engine it is nil between
	// steps until Trainer.Sync forms it from Base and Shift.
	Theta *tensors.Tensor
	RNG   *tensors.Tensor    // GoMLX RNG state; used by stochastic trainers
	Extra map[string]float64 // a trainer's own scalars, e.g. the current step size
	// The feature engine's representation: Θ₀ (Base [m, d]) and the features
	// Zᵀ = Θ Xᵀ (Features [m, n]); nil under the Θ engine.
	Base, Features *tensors.Tensor
}

// NewState starts a run at step 0 from Θ₀ (m×d, row-major) with the RNG seeded by seed.
func NewState(p *model.Problem, theta0 []float64, seed uint64) (*State, error) {
	return NewStateOn(nil, p, theta0, seed)
}

// NewStateOn is NewState with Θ₀ copied straight into a buffer of backend b
// (nil b: a host tensor), so that a large Θ₀ is not copied again when the
// first step moves it to the backend; the caller may drop theta0 afterwards.
func NewStateOn(b backends.Backend, p *model.Problem, theta0 []float64, seed uint64) (*State, error) {
	if err := p.CheckTheta(theta0); err != nil {
		return nil, err
	}
	rng, err := graph.RNGStateFromSeed(int64(seed ^ 0x6e6f_6973_6521))
	if err != nil {
		return nil, err
	}
	var theta *tensors.Tensor
	if b == nil {
		theta = tensors.FromFlatDataAndDimensions(theta0, p.M, p.D) // copies
	} else {
		// Straight into a backend buffer: no host tensor in between.
		buf, err := b.BufferFromFlatData(0, theta0, shapes.Make(dtypes.Float64, p.M, p.D))
		if err != nil {
			return nil, err
		}
		if theta, err = tensors.FromBuffer(b, buf); err != nil {
			return nil, err
		}
	}
	return &State{Theta: theta, RNG: rng, Extra: map[string]float64{}}, nil
}

// RNGValues copies the RNG state to the host.
func (s *State) RNGValues() []uint64 { return tensors.MustCopyFlatData[uint64](s.RNG) }

// FeatureValues copies the feature engine's Zᵀ [m, n] to the host (nil under the Θ engine).
func (s *State) FeatureValues() []float64 {
	if s.Features == nil {
		return nil
	}
	return tensors.MustCopyFlatData[float64](s.Features)
}

// ThetaValues copies Θ to the host (call Trainer.Sync first under the feature engine).
func (s *State) ThetaValues() []float64 { return tensors.MustCopyFlatData[float64](s.Theta) }

// RestoreState rebuilds a state from a checkpoint's values: Θ [m, d] for a
// Θ-engine state, or Θ₀ [m, d] and the features Zᵀ [m, n] (theta nil) for a
// feature-engine state, so that a resumed run continues bit for bit. The
// tensors are used as they are, not copied.
func RestoreState(p *model.Problem, step int64, theta, base, features *tensors.Tensor, rng []uint64, extra map[string]float64) (*State, error) {
	check := func(name string, t *tensors.Tensor, cols int) error {
		if d := t.Shape().Dimensions; len(d) != 2 || d[0] != p.M || d[1] != cols {
			return fmt.Errorf("%s has shape %v, want [%d %d]", name, d, p.M, cols)
		}
		return nil
	}
	switch {
	case features != nil && base != nil:
		if err := check("Θ₀", base, p.D); err != nil {
			return nil, err
		}
		if err := check("features", features, p.N); err != nil {
			return nil, err
		}
	case theta != nil:
		if err := check("Θ", theta, p.D); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("a state needs Θ or Θ₀ and features")
	}
	if len(rng) != graph.RNGStateShape.Size() {
		return nil, fmt.Errorf("RNG state has %d values, want %d", len(rng), graph.RNGStateShape.Size())
	}
	if extra == nil {
		extra = map[string]float64{}
	}
	return &State{
		Step: step, Theta: theta, Base: base, Features: features,
		RNG:   tensors.FromFlatDataAndDimensions(append([]uint64(nil), rng...), graph.RNGStateShape.Dimensions...),
		Extra: extra,
	}, nil
}

// Trainer moves Θ. Implementations compile their update once and keep no
// state between steps beyond what is in State.
type Trainer interface {
	// Name is the trainer's name as given to --trainer.
	Name() string
	// Init prepares a fresh run's state before its first step (e.g. puts Θ₀ on
	// the manifold of zero loss). It is not called when a run is resumed.
	Init(s *State) error
	// Step advances s by one step and returns the loss at Θ before the step.
	Step(s *State) (loss float64, err error)
	// Advance takes k ≥ 1 steps, fused into few compiled calls where the
	// trainer can, with the same result as k calls of Step; it returns the
	// loss before the last of them.
	Advance(s *State, k int64) (loss float64, err error)
	// Sync makes s.Theta current (the feature engine forms it only when asked).
	Sync(s *State) error
	// Engine names the representation in use: EngineTheta or EngineFeature.
	Engine() string
	// Path says where the steps are computed: PathHost or PathGraphs.
	Path() string
	// Extras names the per-run scalars the trainer keeps in State.Extra and
	// wants logged, in order (nil for none).
	Extras() []string
}

// Converger is a Trainer that can tell when it has converged: further steps
// would not change Θ beyond rounding. The loop stops such a run early.
type Converger interface {
	Converged(s *State) bool
}

// Config carries every trainer's settings beside one Execution: what a
// front end that offers all trainers by name (the CLI, compare, sweeps)
// holds. New hands each trainer's constructor (NewGD, NewLabelNoise,
// NewSAM1, NewSAM, NewPenalty, NewRiemannian) only its own Settings struct
// (Config.GD, Config.LabelNoise, ...); a library user calls the
// constructor directly.
type Config struct {
	Eta        float64 // step size (all)
	Sigma      float64 // label-noise standard deviation (labelnoise)
	Rho        float64 // perturbation radius (sam1, sam)
	SAMBatch   int     // examples per 1-SAM step, each with its own perturbation: m-sharpness, m = SAMBatch (sam1)
	Lambda     float64 // weight of Tr D²L (penalty)
	RetractTol float64 // retraction tolerance, relative to ‖y‖ (riemannian)
	// Gtol ends a riemannian run as converged once ‖grad_M F‖ ≤ Gtol; 0 (the
	// default) ends it only when ‖grad_M F‖ reaches its rounding floor.
	Gtol float64
	Execution
}

// Engines.
const (
	EngineTheta   = "theta"
	EngineFeature = "feature"
)

// DefaultConfig is the paper's Figure 1a step size and noise.
func DefaultConfig() Config {
	return Config{Eta: 0.05, Sigma: 0.03, Rho: 0.05, SAMBatch: 1, Lambda: 0.01, RetractTol: 1e-12}
}

// DefaultEta is a trainer's default step size: the paper's η = 0.05, except
// for riemannian, whose η is only the largest step its safeguard may take
// (it halves η until the step decreases the Lagrangian of Tr D²L enough,
// then lets it grow back).
func DefaultEta(trainer string) float64 {
	if strings.ToLower(trainer) == "riemannian" {
		return 1
	}
	return DefaultConfig().Eta
}

type constructor func(b backends.Backend, p *model.Problem, cfg Config) (Trainer, error)

// entry is a registered trainer: its constructor and the settings it reads.
type entry struct {
	new      constructor
	settings func(Config) Settings
}

var registry = map[string]entry{}

func register(name string, c constructor, settings func(Config) Settings) {
	registry[name] = entry{c, settings}
}

// Names lists the trainers, sorted.
func Names() []string { return slices.Sorted(maps.Keys(registry)) }

// New builds the trainer called name for problem p on backend b.
func New(name string, b backends.Backend, p *model.Problem, cfg Config) (Trainer, error) {
	t, ok := registry[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("unknown trainer %q: use one of %s", name, strings.Join(Names(), ", "))
	}
	return t.new(b, p, cfg)
}

// prepare is what every exported constructor does first: validate the
// trainer's settings, the execution and the problem, and apply
// $FLATMIN_GRAPHS.
func prepare(p *model.Problem, s Settings, x *Execution) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := x.Validate(); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	x.Graphs = x.Graphs || GraphsForced()
	return nil
}

// compile builds an Exec and turns GoMLX's panics into errors.
func compile(b backends.Backend, fn any) (e *graph.Exec, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("building graph: %v", r)
		}
	}()
	return graph.NewExecAny(b, fn)
}

// run executes e and returns its outputs; errors (and panics) become errors.
func run(e *graph.Exec, args ...any) (out []*tensors.Tensor, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", e.Name(), r)
		}
	}()
	return e.Exec(args...)
}

func scalar(t *tensors.Tensor) float64 { return tensors.ToScalar[float64](t) }

// ChooseEngine resolves a requested engine ("" for automatic) for problem p.
// The feature engine's step costs O(n²m) against the Θ engine's O(nmd), so
// it is chosen when n ≤ d: there G = XXᵀ is invertible and Z's rows can
// take any value. With n > d (G singular) Z must stay in a subspace that
// rounding slowly leaves and steps cannot correct, and the Riemannian flow
// then stalls short of its optimum (seen on Figure 2's data); either engine
// can still be asked for explicitly.
func ChooseEngine(requested string, p *model.Problem) (string, error) {
	return ChooseEngineSizes(requested, p.N, p.D)
}

// MaxFeatureN is the largest n for which "auto" picks the feature engine:
// beyond it the engine's n×n matrices (G, G⁺ by an O(n³) eigendecomposition,
// the graphs' constant copies) cost more than its cheaper steps save.
const MaxFeatureN = 2048

// ChooseEngineSizes is ChooseEngine for a problem of n points in d dimensions.
func ChooseEngineSizes(requested string, n, d int) (string, error) {
	switch strings.ToLower(requested) {
	case "", "auto":
		if n <= d && n <= MaxFeatureN {
			return EngineFeature, nil
		}
		return EngineTheta, nil
	case EngineTheta:
		return EngineTheta, nil
	case EngineFeature:
		return EngineFeature, nil
	}
	return "", &FieldError{"Engine", fmt.Sprintf("%q", requested), "theta, feature or auto"}
}
