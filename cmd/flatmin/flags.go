package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/spf13/pflag"
)

// newFlagSet returns a flag set that reports errors instead of printing usage.
func newFlagSet(name, synopsis string, stdout io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: flatmin %s\n\nFlags:\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses args; --help prints the usage (pflag calls fs.Usage) and
// returns pflag.ErrHelp.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return err
		}
		return runner.Input(fmt.Errorf("%v (see flatmin %s --help)", err, fs.Name()))
	}
	if fs.NArg() > 0 {
		return runner.Input(fmt.Errorf("unexpected argument %q (see flatmin %s --help)", fs.Arg(0), fs.Name()))
	}
	return refuseEmpty(fs)
}

// refuseEmpty refuses a string flag given an empty value: that is an unset
// shell variable more often than a wish for the default (`--resume ""`
// would otherwise start a new run).
func refuseEmpty(fs *pflag.FlagSet) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		if err == nil && f.Value.Type() == "string" && f.Value.String() == "" {
			err = runner.Input(fmt.Errorf("--%s is empty (an unset variable?): give a value, or leave the flag out", f.Name))
		}
	})
	return err
}

// problemFlags registers the data and model flags shared by the commands.
func problemFlags(fs *pflag.FlagSet, c *runner.Config) {
	fs.IntVar(&c.M, "m", 0, fmt.Sprintf("neurons (default %d, or from --w/--theta0)", runner.DefaultM))
	fs.IntVar(&c.N, "n", 0, fmt.Sprintf("data points of synthetic data (default %d; must match files if given)", runner.DefaultN))
	fs.IntVar(&c.D, "d", 0, fmt.Sprintf("input dimension of synthetic data (default %d; must match files if given)", runner.DefaultD))
	fs.StringVar(&c.Activation, "activation", c.Activation, "activation: cubic (z³+νz), odd (z^(2k+1)+νz) or tanh")
	fs.Float64Var(&c.Nu, "nu", c.Nu, "ν, the linear term of cubic/odd (0 is the paper's cube)")
	fs.IntVar(&c.K, "k", c.K, "k of the odd activation z^(2k+1)+νz")
	fs.StringVar(&c.Labels, "labels", c.Labels, "synthetic labels: uniform:LO,HI | normal:MU,SD | const:V | teacher:K")
	fs.Uint64Var(&c.DataSeed, "data-seed", c.DataSeed, "seed of the synthetic data")
	fs.StringVar(&c.XPath, "x", "", "data X as .npy, n×d (with --y)")
	fs.StringVar(&c.YPath, "y", "", "labels y as .npy, n (with --x)")
	fs.StringVar(&c.DataPath, "data", "", "data as CSV: one row per point, last column y")
	fs.StringVar(&c.WPath, "w", "", "fixed second-layer weights as .npy, m (default all ones)")
	fs.BoolVar(&c.Normalize, "normalize", false, "scale each row of file data to unit norm (synthetic rows already are)")
	fs.StringVar(&c.Backend, "backend", "", "GoMLX backend: go (SimpleGo, default), xla:cpu, xla:cuda; default from $GOMLX_BACKEND")
}

// trainerFlags registers the trainer and run flags.
func trainerFlags(fs *pflag.FlagSet, c *runner.Config) {
	fs.StringVar(&c.Trainer, "trainer", c.Trainer, "trainer: "+trainerList())
	fs.Var(autoFloat{&c.Eta, &c.EtaRule}, "eta", "step size η, or auto: min(1/λ*, 1.9/λ̂₀), half the stability limit at the predicted optimum (λ* = λ_max of the loss Hessian there) and 95% of it at Θ₀ (λ̂₀ a bound on its norm there); riemannian: 1, the largest step its safeguard may take")
	fs.Float64Var(&c.Sigma, "sigma", c.Sigma, "label-noise standard deviation σ (labelnoise)")
	fs.Var(autoFloat{&c.Rho, &c.RhoRule}, "rho", "perturbation radius ρ (sam1, sam); auto: rms(y)/(8 rms‖∇f_i‖) at Θ₀, so that it moves outputs by about 1/8 of the labels' scale at any width (sam: at most that, in rms)")
	fs.IntVar(&c.SAMBatch, "sam-batch", c.SAMBatch, "examples per 1-SAM step, each with its own perturbation, their perturbed gradients averaged: SAM with m-sharpness, m = B (sam1)")
	fs.Float64Var(&c.Lambda, "lambda", c.Lambda, "weight λ of Tr D²L in L + λ Tr D²L (penalty)")
	fs.Float64Var(&c.RetractTol, "retract-tol", c.RetractTol, "retraction tolerance on ‖f − y‖, relative to ‖y‖ (riemannian)")
	gtolRule := runner.Auto
	fs.Var(autoFloat{&c.Gtol, &gtolRule}, "gtol", "riemannian: stop as converged once ‖grad_M Tr D²L‖ ≤ gtol; auto (0): once it is at its rounding floor, 4096·ε·‖∇Tr D²L‖")
	fs.Int64Var(&c.Steps, "steps", c.Steps, "number of steps")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of Θ₀ and of the trainer's noise")
	fs.Var(autoFloat{&c.InitScale, &c.InitScaleRule}, "init-scale", "Θ₀ entries are N(0, init-scale²); auto: the scale at which the initial outputs' mean square equals the labels'")
	fs.StringVar(&c.Theta0Path, "theta0", "", "initial Θ as .npy, m×d (instead of a random one)")
	fs.Int64Var(&c.LogEvery, "log-every", c.LogEvery, "log metrics every this many steps")
	fs.Float64Var(&c.MaxLoss, "max-loss", c.MaxLoss, "stop as diverged when the loss exceeds this")
	fs.StringVar(&c.Engine, "engine", c.Engine, engineHelp)
	fs.Lookup("engine").DefValue = "auto" // Config's "" means auto; say so in --help
	fs.IntVar(&c.Fuse, "fuse", c.Fuse, fuseHelp)
	fs.BoolVar(&c.Graphs, "graphs", c.Graphs, graphsHelp)
}

// Help of the flags train and bench share.
const (
	engineHelp = "how Θ is represented: theta (the reference), feature (Θ₀ and Z = XΘᵀ, O(n²m) per step) or auto (feature when n ≤ d and n ≤ 2048)"
	fuseHelp   = "steps per compiled call (0: chosen by size; results do not depend on it; SimpleGo's host paths step one by one)"
	graphsHelp = "step in compiled GoMLX graphs also where SimpleGo would step on the host (the reference: slower, equal to rounding; also $FLATMIN_GRAPHS=1)"
)

// autoFloat is a float flag that also takes "auto": the value 0 and rule
// runner.Auto, for flatmin to choose (the rule is "" for a number given).
type autoFloat struct {
	v    *float64
	rule *string
}

func (a autoFloat) String() string {
	if a.v == nil || *a.rule == runner.Auto {
		return runner.Auto
	}
	return strconv.FormatFloat(*a.v, 'g', -1, 64)
}

func (a autoFloat) Set(s string) error {
	if s == runner.Auto {
		*a.v, *a.rule = 0, runner.Auto
		return nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("want a number or auto, got %q", s)
	}
	*a.v, *a.rule = v, ""
	return nil
}

func (a autoFloat) Type() string { return "float|auto" }

// checkSizes rejects sizes given as ≤ 0: in Config, 0 means "not given".
func checkSizes(fs *pflag.FlagSet, c *runner.Config) error {
	for _, s := range []struct {
		name string
		v    int
	}{{"m", c.M}, {"n", c.N}, {"d", c.D}} {
		if fs.Changed(s.name) && s.v <= 0 {
			return runner.Input(fmt.Errorf("--%s must be positive, got %d", s.name, s.v))
		}
	}
	return nil
}
