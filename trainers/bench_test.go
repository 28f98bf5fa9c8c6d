package trainers

import (
	"fmt"
	"testing"

	"github.com/flatmin/flatmin/model"
)

// BenchmarkStep times one step of each trainer on Figure 1a's size and on a
// wide network (n=512, m=256, d=64), where the fast DotGeneral gradient and
// the closed forms matter.
func BenchmarkStep(b *testing.B) {
	for _, size := range []struct{ n, d, m int }{{3, 3, 10}, {512, 64, 256}} {
		p := syntheticProblem(b, size.n, size.d, size.m, 0.1, "uniform:0.5,1", 1)
		for _, name := range Names() {
			cfg := DefaultConfig()
			cfg.Eta = DefaultEta(name)
			tr := newTrainer(b, name, p, cfg)
			s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.5/float64(size.d), 1), 1)
			if err := tr.Init(s); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("%s/n=%d,d=%d,m=%d", name, size.n, size.d, size.m), func(b *testing.B) {
				for range b.N {
					if _, err := tr.Step(s); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkMeasure times the metrics of one log step.
func BenchmarkMeasure(b *testing.B) {
	for _, size := range []struct{ n, d, m int }{{3, 3, 10}, {512, 64, 256}} {
		p := syntheticProblem(b, size.n, size.d, size.m, 0.1, "uniform:0.5,1", 1)
		ev, err := NewEvaluator(testBackend(b), p)
		if err != nil {
			b.Fatal(err)
		}
		s, _ := NewState(p, model.InitTheta(p.M, p.D, 0.1, 1), 1)
		b.Run(fmt.Sprintf("n=%d,d=%d,m=%d", size.n, size.d, size.m), func(b *testing.B) {
			for range b.N {
				if _, err := ev.Measure(s.Theta); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
