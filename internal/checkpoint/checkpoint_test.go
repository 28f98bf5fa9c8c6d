package checkpoint

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample(step int64) *Checkpoint {
	return &Checkpoint{
		Step: step, M: 2, D: 3, Theta: []float64{1, -2.5, math.Pi, 1e-300, -0.0, 7},
		RNG:         []uint64{math.MaxUint64, 1 << 63, 12345},
		Extra:       map[string]float64{"eta": 0.1 / 3, "halvings": 4},
		WallSeconds: 12.75, Config: json.RawMessage(`{"trainer":"riemannian"}`),
	}
}

func TestRoundTripIsExact(t *testing.T) {
	c := sample(42)
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range c.Theta {
		if math.Float64bits(v) != math.Float64bits(back.Theta[i]) {
			t.Errorf("Θ[%d] %v came back as %v", i, v, back.Theta[i])
		}
	}
	for i, v := range c.RNG {
		if back.RNG[i] != v {
			t.Errorf("RNG[%d] %d came back as %d", i, v, back.RNG[i])
		}
	}
	if back.Step != 42 || back.Extra["eta"] != c.Extra["eta"] || back.WallSeconds != 12.75 || string(back.Config) != string(c.Config) || back.M != 2 || back.D != 3 {
		t.Errorf("got %+v", back)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	data, _ := Encode(sample(1))
	flip := append([]byte(nil), data...)
	flip[len(flip)-10] ^= 0x20
	for name, bad := range map[string][]byte{
		"truncated":   data[:len(data)-5],
		"bit flip":    flip,
		"empty":       {},
		"header only": data[:30],
		"extra bytes": append(append([]byte(nil), data...), ' '),
		"other file":  []byte("{\"step\": 3}\n\n{}"),
	} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWriteKeepsTwoAndLatestSkipsCorrupt(t *testing.T) {
	dir := t.TempDir()
	for _, step := range []int64{100, 200, 300} {
		if err := Write(dir, sample(step)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := list(filepath.Join(dir, Dir))
	if len(files) != 2 || files[0] != fileName(200) || files[1] != fileName(300) {
		t.Fatalf("kept %v, want the last two", files)
	}
	c, warnings, err := Latest(dir)
	if err != nil || c.Step != 300 || len(warnings) != 0 {
		t.Fatalf("latest %v, %v, %v", c, warnings, err)
	}
	// Truncate the newest: Latest must fall back to step 200 and say why.
	newest := filepath.Join(dir, Dir, fileName(300))
	data, _ := os.ReadFile(newest)
	os.WriteFile(newest, data[:len(data)/2], 0o644)
	c, warnings, err = Latest(dir)
	if err != nil || c.Step != 200 || len(warnings) != 1 || !strings.Contains(warnings[0], "truncated") {
		t.Fatalf("after truncation: %v, %v, %v", c, warnings, err)
	}
	os.WriteFile(filepath.Join(dir, Dir, fileName(200)), []byte("garbage"), 0o644)
	if _, warnings, err = Latest(dir); !errors.Is(err, ErrNone) || len(warnings) != 2 {
		t.Errorf("all corrupt: %v, %v", warnings, err)
	}
	if _, _, err := Latest(t.TempDir()); !errors.Is(err, ErrNone) {
		t.Errorf("no checkpoints: %v", err)
	}
}
