package checkpoint

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

var sampleTheta = []float64{1, -2.5, math.Pi, 1e-300, -0.0, 7}

func sample(step int64) *Checkpoint {
	return &Checkpoint{
		Step: step, M: 2, D: 3, Theta: tensors.FromFlatDataAndDimensions(append([]float64(nil), sampleTheta...), 2, 3),
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
	got := tensors.MustCopyFlatData[float64](back.Theta)
	for i, v := range sampleTheta {
		if math.Float64bits(v) != math.Float64bits(got[i]) {
			t.Errorf("Θ[%d] %v came back as %v", i, v, got[i])
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

// A feature-engine state (Θ₀ and Zᵀ, no Θ) round-trips exactly too.
func TestFeatureStateRoundTrip(t *testing.T) {
	base := []float64{1, 2, 3, 4, 5, 6}
	zt := []float64{0.5, -1e-17, 3, math.MaxFloat64}
	c := &Checkpoint{Step: 9, M: 2, D: 3, N: 2, Base: tensors.FromFlatDataAndDimensions(base, 2, 3),
		Features: tensors.FromFlatDataAndDimensions(zt, 2, 2), RNG: []uint64{1, 2}, Config: json.RawMessage(`{}`)}
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Theta != nil || back.N != 2 || back.M != 2 || back.D != 3 {
		t.Fatalf("got %+v", back)
	}
	if fmt.Sprint(tensors.MustCopyFlatData[float64](back.Base)) != fmt.Sprint(base) ||
		fmt.Sprint(tensors.MustCopyFlatData[float64](back.Features)) != fmt.Sprint(zt) {
		t.Fatalf("arrays came back as %v, %v", back.Base, back.Features)
	}
}

// Checkpoints of version 1 (Θ as base64 inside the JSON) still load.
func TestDecodeReadsVersion1(t *testing.T) {
	npy, _ := npy.Encode(sampleTheta, 2, 3)
	body := fmt.Sprintf(`{"step":7,"theta_npy":%q,"rng":["1","2"],"extra":{"eta":0.5},"wall_seconds":3,"config":{}}`,
		base64.StdEncoding.EncodeToString(npy))
	sum := sha256.Sum256([]byte(body))
	file := fmt.Sprintf("FLATMIN-CHECKPOINT 1\nlength %d\nsha256 %s\n\n%s", len(body), hex.EncodeToString(sum[:]), body)
	c, err := Decode([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if c.Step != 7 || c.Extra["eta"] != 0.5 || fmt.Sprint(tensors.MustCopyFlatData[float64](c.Theta)) != fmt.Sprint(sampleTheta) {
		t.Fatalf("got %+v", c)
	}
}

// A checkpoint's identity comes back as written; one without (older
// files) comes back nil.
func TestIdentityRoundTrip(t *testing.T) {
	c := sample(5)
	c.Identity = &Identity{Config: "abc", Data: map[string]string{"x.npy": "01", "theta0.npy": "02"}}
	back, err := Decode(mustEncode(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if back.Identity == nil || back.Identity.Config != "abc" || back.Identity.Data["x.npy"] != "01" || back.Identity.Data["theta0.npy"] != "02" || len(back.Identity.Data) != 2 {
		t.Errorf("identity came back as %+v", back.Identity)
	}
	if back, _ := Decode(mustEncode(t, sample(5))); back.Identity != nil {
		t.Errorf("no identity came back as %+v", back.Identity)
	}
}

// LatestValid skips a checkpoint whose name is not its step's and one its
// check refuses, naming why, and falls back to the next.
func TestLatestValidSkipsRenamedAndRefused(t *testing.T) {
	dir := t.TempDir()
	for _, step := range []int64{100, 200} {
		if err := Write(dir, sample(step)); err != nil {
			t.Fatal(err)
		}
	}
	os.Rename(filepath.Join(dir, Dir, fileName(200)), filepath.Join(dir, Dir, fileName(900)))
	c, warnings, err := LatestValid(dir, nil)
	if err != nil || c.Step != 100 || len(warnings) != 1 || !strings.Contains(warnings[0], "holds step 200") {
		t.Fatalf("renamed: %v, %v, %v", c, warnings, err)
	}
	refuse := func(c *Checkpoint) error {
		if c.Step == 100 {
			return errors.New("not this run's")
		}
		return nil
	}
	_, warnings, err = LatestValid(dir, refuse)
	if !errors.Is(err, ErrNone) || len(warnings) != 2 || !strings.Contains(warnings[1], "not this run's") {
		t.Errorf("refused: %v, %v", warnings, err)
	}
}
