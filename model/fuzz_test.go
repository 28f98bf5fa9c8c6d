package model

import (
	"math"
	"testing"
)

func FuzzParseCSV(f *testing.F) {
	for _, s := range []string{"0.1,0.2,1\n0.3,0.4,2\n", "x,y\n1,2\n", "# c\n\n1,2,3", "1,\"2\n", "1,NaN,2\n", "a\n", "1e400,1\n", ",\n", "1,2\n3\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		x, y, n, d, err := ParseCSV(data)
		if err != nil {
			return
		}
		if n < 1 || d < 1 || len(x) != n*d || len(y) != n {
			t.Fatalf("n=%d d=%d with %d and %d values", n, d, len(x), len(y))
		}
		for _, v := range append(append([]float64(nil), x...), y...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("non-finite value %v accepted", v)
			}
		}
	})
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"uniform:1,2", "normal:0,1", "const:3", "teacher:4", "teacher:1e9", "uniform:2,1", ":", "uniform:,", "const:-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLabels(s)
		if err != nil {
			return
		}
		back, err := ParseLabels(l.String())
		if err != nil || back != l {
			t.Fatalf("%q parsed as %+v, which prints as %q and reads back as %+v (%v)", s, l, l.String(), back, err)
		}
	})
}

func FuzzNewActivation(f *testing.F) {
	f.Add("cubic", 0.1, 1)
	f.Add("odd", 0.0, 3)
	f.Add("tanh", -1.0, 0)
	f.Add("ODD", 1e308, 10)
	f.Add("relu", 0.0, 1)
	f.Fuzz(func(t *testing.T, name string, nu float64, k int) {
		a, err := NewActivation(name, nu, k)
		if err != nil {
			return
		}
		if a.Name() == "" {
			t.Fatal("empty name")
		}
		for order := range 4 {
			if v := a.Host(0.5, order); math.IsNaN(v) {
				t.Fatalf("%s: φ^(%d)(0.5) is NaN", a.Name(), order)
			}
		}
		_ = a.Constants()
		_, _ = a.Inverse(0.3)
	})
}
