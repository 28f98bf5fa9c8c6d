package npy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/core/tensors/numpy"
)

func TestReadNpyRejectsMalformed(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(writeNpy(t, dir, "good.npy", tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4}, 2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	header := func(descr, shape string) []byte {
		h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }"
		for (10+len(h)+1)%64 != 0 {
			h += " "
		}
		h += "\n"
		out := []byte("\x93NUMPY\x01\x00")
		out = append(out, byte(len(h)), byte(len(h)>>8))
		return append(out, h...)
	}
	cases := map[string][]byte{
		"empty":         {},
		"bad magic":     append([]byte("XNUMPY"), good[6:]...),
		"truncated":     good[:len(good)-3],
		"header only":   good[:20],
		"big-endian":    append(header(">f8", "(2,)"), make([]byte, 16)...),
		"huge shape":    append(header("<f8", "(100000000000,)"), make([]byte, 16)...),
		"negative dim":  append(header("<f8", "(-2,)"), make([]byte, 16)...),
		"strings":       append(header("<U3", "(2,)"), make([]byte, 24)...),
		"too much data": append(append([]byte(nil), good...), 1, 2, 3, 4, 5, 6, 7, 8),
		"bad version":   append([]byte("\x93NUMPY\x09\x00"), good[8:]...),
	}
	for name, data := range cases {
		if _, _, err := Decode(data); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := Read(filepath.Join(dir, "missing.npy")); err == nil {
		t.Error("a missing file was accepted")
	}
	if _, _, err := Read(dir); err == nil {
		t.Error("a directory was accepted")
	}
}

// A regular file whose .npy header claims more (or less) data than the file
// holds is refused from its size, before the data is read or allocated.
func TestNpyHeaderAgainstFileSize(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, shape string
		data        []float64
		want        string
	}{
		{"claims more", "(1000, 3)", []float64{1, 2, 3}, "truncated"},
		{"claims far more", "(100000000000,)", []float64{1}, "too large"},
		{"claims less", "(1,)", []float64{1, 2}, "more data"},
	} {
		path := filepath.Join(dir, c.name+".npy")
		if err := os.WriteFile(path, npyBytes(c.shape, c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Read(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	// A good one still reads, in C order.
	path := filepath.Join(dir, "good.npy")
	os.WriteFile(path, npyBytes("(2, 3)", []float64{1, 2, 3, 4, 5, 6}), 0o644)
	v, dims, err := Read(path)
	if err != nil || fmt.Sprint(dims) != "[2 3]" || fmt.Sprint(v) != "[1 2 3 4 5 6]" {
		t.Errorf("good file: %v %v %v", v, dims, err)
	}
}

func FuzzDecodeNpy(f *testing.F) {
	header := func(descr, shape string, body int) []byte {
		h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }\n"
		out := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
		return append(append(out, h...), make([]byte, body)...)
	}
	f.Add(header("<f8", "(2,)", 16))
	f.Add(header("<f4", "(2, 1)", 8))
	f.Add(header("|u1", "(3,)", 3))
	f.Add(header("<i8", "()", 8))
	f.Add(header(">f8", "(1,)", 8))
	f.Add(header("<f8", "(99999999999,)", 8))
	f.Add([]byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		values, dims, err := Decode(data)
		if err != nil {
			return
		}
		size := 1
		for _, d := range dims {
			size *= d
		}
		if len(values) != size {
			t.Fatalf("%d values for shape %v", len(values), dims)
		}
	})
}

// An array written block by block reads back whole through GoMLX's numpy
// reader (npy.Decode), and a wrong count is an error, not a bad file.
func TestNpyWriterStreamsBlocks(t *testing.T) {
	for _, dims := range [][]int{{7}, {5, 3}, {2, 3, 4}} {
		size := 1
		for _, d := range dims {
			size *= d
		}
		values := make([]float64, size)
		for i := range values {
			values[i] = float64(i)*1.5 - 3
		}
		var buf bytes.Buffer
		err := Write(&buf, dims, func(emit func([]float64) error) error {
			for start := 0; start < size; start += 4 {
				if err := emit(values[start:min(start+4, size)]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, gotDims, err := Decode(buf.Bytes())
		if err != nil {
			t.Fatalf("%v: %v", dims, err)
		}
		if fmt.Sprint(gotDims) != fmt.Sprint(dims) || fmt.Sprint(got) != fmt.Sprint(values) {
			t.Fatalf("%v came back as %v %v", dims, gotDims, got)
		}
	}
	err := Write(io.Discard, []int{3}, func(emit func([]float64) error) error { return emit([]float64{1, 2}) })
	if err == nil {
		t.Fatal("2 values for shape (3,) were accepted")
	}
}

// npyBytes is a little-endian float64 .npy file with the given header shape
// (written as Python writes it) and data.
func npyBytes(shape string, data []float64) []byte {
	h := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': %s, }", shape)
	h += strings.Repeat(" ", 63-(10+len(h))%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(h)))
	b.WriteString(h)
	binary.Write(&b, binary.LittleEndian, data)
	return b.Bytes()
}

// writeNpy writes tensor with GoMLX's own writer: an independent encoder.
func writeNpy(t *testing.T, dir, name string, tensor *tensors.Tensor) string {
	path := filepath.Join(dir, name)
	if err := numpy.ToNpyFile(tensor, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// The float64 fast path (Read, ReadFrom with a known size, Decode) gives
// what GoMLX's own writer wrote, and a Fortran-order file from WriteFortran
// reads back in C order (the transpose of the rows streamed).
func TestFloat64FastPathAndFortran(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]float64, 7*5)
	for i := range vals {
		vals[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
	}
	path := writeNpy(t, dir, "a.npy", tensors.FromFlatDataAndDimensions(vals, 7, 5))
	got, dims, err := Read(path)
	if err != nil || !slices.Equal(dims, []int{7, 5}) || !slices.Equal(got, vals) {
		t.Fatalf("Read: %v %v, want the written values", dims, err)
	}
	raw, _ := os.ReadFile(path)
	if got, _, err := Decode(raw); err != nil || !slices.Equal(got, vals) {
		t.Fatalf("Decode: %v", err)
	}
	// Z [2, 3] streamed as Zᵀ's rows [3, 2].
	zt := []float64{1, 2, 3, 4, 5, 6} // Zᵀ rows (1,2), (3,4), (5,6)
	var buf bytes.Buffer
	if err := WriteFortran(&buf, []int{2, 3}, func(emit func([]float64) error) error {
		for j := 0; j < 3; j++ {
			if err := emit(zt[2*j : 2*j+2]); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fpath := filepath.Join(dir, "f.npy")
	os.WriteFile(fpath, buf.Bytes(), 0o644)
	z, dims, err := Read(fpath)
	if want := []float64{1, 3, 5, 2, 4, 6}; err != nil || !slices.Equal(dims, []int{2, 3}) || !slices.Equal(z, want) {
		t.Errorf("Fortran order read back as %v %v (%v), want %v", z, dims, err, want)
	}
}
