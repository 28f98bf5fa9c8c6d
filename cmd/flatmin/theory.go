package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/flatmin/flatmin/internal/backend"
)

func cmdTheory(args []string, stdout, stderr io.Writer) error {
	cfg := runner.DefaultConfig()
	fs := newFlagSet("theory", "theory [data/model flags] [--eps E] [--json]", stdout)
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	eps := fs.Float64("eps", 1e-6, "ε of Theorem 3's time bound to ε-stationarity")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of Θ₀ (F(0) is Tr D²L at Θ₀ retracted onto the manifold)")
	fs.Var(autoFloat{&cfg.InitScale, &cfg.InitScaleRule}, "init-scale", "Θ₀ entries are N(0, init-scale²); auto: the scale at which the initial outputs' mean square equals the labels'")
	fs.StringVar(&cfg.Theta0Path, "theta0", "", "initial Θ as .npy, m×d")
	problemFlags(fs, &cfg)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := checkSizes(fs, &cfg); err != nil {
		return err
	}
	if err := cfg.Check(); err != nil {
		return runner.Input(err)
	}
	b, err := backend.Open(cfg.Backend)
	if err != nil {
		return runner.Input(err)
	}
	r, err := runner.Theory(cfg, b, *eps)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(r)
	}
	printTheory(stdout, r)
	return nil
}

func printTheory(w io.Writer, r *runner.TheoryReport) {
	fmt.Fprintf(w, "activation %s, m=%d neurons, n=%d points in d=%d\n\n", r.Activation, r.M, r.N, r.D)
	fmt.Fprintf(w, "Theorem 2 (w = 1): every stationary point of Tr D²L on the manifold has θ_j·x_i = φ⁻¹(y_i/m)\n")
	if r.Optimum != "defined" {
		fmt.Fprintf(w, "  no prediction: %s\n", r.Optimum)
	} else {
		fmt.Fprintf(w, "  %4s %12s %10s %14s %12s\n", "i", "y_i", "‖x_i‖²", "φ⁻¹(y_i/m)", "φ'(z*_i)")
		for _, p := range r.Points {
			fmt.Fprintf(w, "  %4d %12.6g %10.4g %14.10g %12.6g\n", p.I, p.Y, p.NormSq, float64(p.ZStar), float64(p.PhiPrime))
		}
		fmt.Fprintf(w, "  minimum F* = 2 Σ_i ‖x_i‖² m φ'(z*_i)² = %.10g; Z = XΘᵀ is then rank one\n", float64(r.TraceMin))
	}
	if r.Note != "" {
		fmt.Fprintf(w, "  %s\n", r.Note)
	}
	fmt.Fprintf(w, "\nconstants: ϱ1 = inf φ' = %.4g, ϱ2 = inf φ''' = %.4g, β = %.4g", r.Rho1, r.Rho2, r.Beta)
	if !math.IsNaN(float64(r.BetaPaper)) {
		fmt.Fprintf(w, " (paper's sufficient β: %.4g)", float64(r.BetaPaper))
	}
	fmt.Fprintf(w, ", μ = λ_min(XXᵀ) = %.4g\n", r.Mu)
	fmt.Fprintf(w, "assumptions: 1 (φ' ≥ ϱ1 > 0, φ''' ≥ ϱ2 > 0) %s, 2 (x_i independent) %s, 3 (β-normality) %s\n",
		holds(r.Assumption1), holds(r.Assumption2), holds(r.Assumption3))
	for _, why := range r.Why {
		fmt.Fprintf(w, "  %s\n", why)
	}
	fmt.Fprintf(w, "\nTheorem 3: F(0) = %.6g (Tr D²L at Θ₀ retracted onto the manifold)\n", float64(r.F0))
	if math.IsNaN(float64(r.TimeBound)) {
		fmt.Fprintf(w, "  time bound: %s\n", r.TimeBoundNote)
	} else {
		fmt.Fprintf(w, "  the flow is ε-stationary (‖grad_M F‖ ≤ %g) for all t ≥ F(0)/(μβ²) + log(β²/(ϱ1²ϱ2²ε²) ∨ 1)/(ϱ1ϱ2μ) = %.6g\n",
			r.Eps, float64(r.TimeBound))
	}
}

func holds(ok bool) string {
	if ok {
		return "holds"
	}
	return "FAIL"
}
