package trainers

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/flatmin/flatmin/model"
	"github.com/gomlx/gomlx/backends"
)

// Each trainer's exported constructor takes its own settings struct: it
// steps exactly as New does from the union Config, and a bad field comes
// back as a FieldError naming that field (no CLI flag in a library error).
func TestConstructorsTakeTheirSettings(t *testing.T) {
	b := testBackend(t)
	p := paperProblem(t, 0.2, "uniform:0.5,1", 1)
	cfg := DefaultConfig()
	cfg.Eta, cfg.Sigma, cfg.Rho, cfg.SAMBatch, cfg.Lambda = 0.02, 0.05, 0.03, 2, 0.01
	x := cfg.Execution
	for _, c := range []struct {
		name  string
		build func(b backends.Backend, p *model.Problem) (Trainer, error)
		bad   func(b backends.Backend, p *model.Problem) (Trainer, error)
		field string
	}{
		{"gd", func(b backends.Backend, p *model.Problem) (Trainer, error) { return NewGD(b, p, cfg.GD(), x) },
			func(b backends.Backend, p *model.Problem) (Trainer, error) {
				return NewGD(b, p, GDSettings{Eta: -1}, x)
			}, "Eta"},
		{"labelnoise", func(b backends.Backend, p *model.Problem) (Trainer, error) {
			return NewLabelNoise(b, p, cfg.LabelNoise(), x)
		},
			func(b backends.Backend, p *model.Problem) (Trainer, error) {
				return NewLabelNoise(b, p, LabelNoiseSettings{Eta: 0.1, Sigma: math.NaN()}, x)
			}, "Sigma"},
		{"sam1", func(b backends.Backend, p *model.Problem) (Trainer, error) { return NewSAM1(b, p, cfg.SAM1(), x) },
			func(b backends.Backend, p *model.Problem) (Trainer, error) {
				return NewSAM1(b, p, SAM1Settings{Eta: 0.1, Rho: 0.1, SAMBatch: 0}, x)
			}, "SAMBatch"},
		{"sam", func(b backends.Backend, p *model.Problem) (Trainer, error) { return NewSAM(b, p, cfg.SAM(), x) },
			func(b backends.Backend, p *model.Problem) (Trainer, error) {
				return NewSAM(b, p, SAMSettings{Eta: 0.1}, x)
			}, "Rho"},
		{"penalty", func(b backends.Backend, p *model.Problem) (Trainer, error) { return NewPenalty(b, p, cfg.Penalty(), x) },
			func(b backends.Backend, p *model.Problem) (Trainer, error) {
				return NewPenalty(b, p, PenaltySettings{Eta: 0.1, Lambda: -1}, x)
			}, "Lambda"},
		{"riemannian", func(b backends.Backend, p *model.Problem) (Trainer, error) {
			return NewRiemannian(b, p, RiemannianSettings{Eta: 1, RetractTol: 1e-12}, x)
		}, func(b backends.Backend, p *model.Problem) (Trainer, error) {
			return NewRiemannian(b, p, RiemannianSettings{Eta: 1, RetractTol: 2}, x)
		}, "RetractTol"},
	} {
		run := func(tr Trainer) []float64 {
			s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5, 1), 1)
			if err := tr.Init(s); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Advance(s, 30); err != nil {
				t.Fatal(err)
			}
			if err := tr.Sync(s); err != nil {
				t.Fatal(err)
			}
			return s.ThetaValues()
		}
		own, err := c.build(b, p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		union := cfg
		if c.name == "riemannian" {
			union.Eta = 1
		}
		if got, want := run(own), run(newTrainer(t, c.name, p, union)); !slices.Equal(got, want) {
			t.Errorf("%s: its constructor and New step differently", c.name)
		}
		_, err = c.bad(b, p)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: bad %s gave %v, want a FieldError naming it", c.name, c.field, err)
		}
	}
}
