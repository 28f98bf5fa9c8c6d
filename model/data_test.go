package model

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/numpy"
)

func TestSynthetic(t *testing.T) {
	act, _ := NewActivation("cubic", 0, 1)
	for _, spec := range []string{"uniform:1,2", "normal:0,0.5", "const:0.7", "teacher:4"} {
		l, err := ParseLabels(spec)
		if err != nil {
			t.Fatal(err)
		}
		if l.String() != spec {
			t.Errorf("ParseLabels(%q).String() = %q", spec, l.String())
		}
		x, y, err := Synthetic(6, 4, l, act, 42)
		if err != nil {
			t.Fatal(err)
		}
		x2, y2, _ := Synthetic(6, 4, l, act, 42)
		x3, _, _ := Synthetic(6, 4, l, act, 43)
		for i := range x {
			if x[i] != x2[i] {
				t.Fatalf("%s: same seed, different X", spec)
			}
			if x[i] < 0 || x[i] > 1 {
				t.Errorf("%s: entry %g outside [0, 1]", spec, x[i])
			}
		}
		if x[0] == x3[0] {
			t.Errorf("%s: different seeds gave the same first entry", spec)
		}
		for i := range 6 {
			norm := 0.0
			for k := range 4 {
				norm += x[i*4+k] * x[i*4+k]
			}
			if math.Abs(norm-1) > 1e-14 {
				t.Errorf("%s: row %d has squared norm %g", spec, i, norm)
			}
			if y[i] != y2[i] {
				t.Fatalf("%s: same seed, different y", spec)
			}
		}
		switch l.Kind {
		case "uniform":
			for _, v := range y {
				if v < 1 || v > 2 {
					t.Errorf("uniform label %g outside [1, 2]", v)
				}
			}
		case "const":
			for _, v := range y {
				if v != 0.7 {
					t.Errorf("const label %g", v)
				}
			}
		}
	}
}

func TestParseLabelsRejects(t *testing.T) {
	for _, s := range []string{"", "uniform", "uniform:1", "uniform:2,1", "normal:0,-1", "teacher:0", "teacher:1.5", "const:NaN", "beta:1,2", "uniform:a,b", "const:1,2"} {
		if _, err := ParseLabels(s); err == nil {
			t.Errorf("ParseLabels(%q) accepted it", s)
		}
	}
}

func TestParseCSV(t *testing.T) {
	x, y, n, d, err := ParseCSV([]byte("# comment\nx1,x2,y\n0.1, 0.2, 1\n\n0.3,0.4,2\n"))
	if err != nil || n != 2 || d != 2 || x[3] != 0.4 || y[1] != 2 {
		t.Fatalf("got %v %v %d %d %v", x, y, n, d, err)
	}
	for name, text := range map[string]string{
		"empty":       "",
		"header only": "a,b\n",
		"ragged":      "1,2,3\n4,5\n",
		"non-number":  "1,2,3\n4,x,6\n",
		"NaN":         "1,2,3\n4,NaN,6\n",
		"Inf label":   "1,2,Inf\n",
		"one column":  "1\n2\n",
		"bad quote":   "1,\"2,3\n",
	} {
		if _, _, _, _, err := ParseCSV([]byte(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestReadMatrixAndVector(t *testing.T) {
	dir := t.TempDir()
	m := writeNpy(t, dir, "m.npy", tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4, 5, 6}, 2, 3))
	vals, rows, cols, err := ReadMatrix(m, "X")
	if err != nil || rows != 2 || cols != 3 || vals[5] != 6 {
		t.Fatalf("ReadMatrix: %v %d %d %v", vals, rows, cols, err)
	}
	f32 := writeNpy(t, dir, "f32.npy", tensors.FromFlatDataAndDimensions([]float32{0.5, 1.5}, 2))
	if v, err := ReadVector(f32, "y"); err != nil || v[1] != 1.5 {
		t.Fatalf("float32 vector: %v %v", v, err)
	}
	i64 := writeNpy(t, dir, "i64.npy", tensors.FromFlatDataAndDimensions([]int64{3, -4}, 2, 1))
	if v, err := ReadVector(i64, "y"); err != nil || v[1] != -4 {
		t.Fatalf("int64 column: %v %v", v, err)
	}
	if _, err := ReadVector(m, "y"); err == nil {
		t.Error("a 2×3 matrix was accepted as a vector")
	}
	if _, _, _, err := ReadMatrix(f32, "X"); err == nil {
		t.Error("a vector was accepted as a matrix")
	}
	nan := writeNpy(t, dir, "nan.npy", tensors.FromFlatDataAndDimensions([]float64{1, math.NaN()}, 2))
	if _, err := ReadVector(nan, "y"); err == nil || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN not reported: %v", err)
	}
}

// writeNpy writes tensor with GoMLX's own writer: an independent encoder.
func writeNpy(t *testing.T, dir, name string, tensor *tensors.Tensor) string {
	path := filepath.Join(dir, name)
	if err := numpy.ToNpyFile(tensor, path); err != nil {
		t.Fatal(err)
	}
	return path
}
