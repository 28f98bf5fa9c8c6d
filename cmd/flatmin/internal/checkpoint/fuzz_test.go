package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/flatmin/flatmin/internal/npy"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// FuzzDecode feeds arbitrary files to Decode: an error, or a consistent
// checkpoint that encodes back to itself; never a panic.
func FuzzDecode(f *testing.F) {
	good, _ := Encode(sample(7))
	f.Add(good)
	f.Add(good[:len(good)/2])
	withID := sample(300)
	withID.Identity = &Identity{Config: "c0ffee", Data: map[string]string{"x.npy": "1", "y.npy": "2", "w.npy": "3", "theta0.npy": "4"}}
	identified, _ := Encode(withID)
	f.Add(identified)
	f.Add(bytes.Replace(identified, []byte(`"step":300`), []byte(`"step":900`), 1)) // edited: fails its hash
	features, _ := Encode(&Checkpoint{Step: 9, M: 2, D: 3, N: 2, Base: tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4, 5, 6}, 2, 3),
		Features: tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4}, 2, 2), RNG: []uint64{1}, Config: []byte(`{}`)})
	f.Add(features)
	npy, _ := npy.Encode(sampleTheta, 2, 3)
	body := fmt.Sprintf(`{"step":7,"theta_npy":%q,"rng":["1","2"],"extra":{"eta":0.5},"wall_seconds":3,"config":{}}`, base64.StdEncoding.EncodeToString(npy))
	sum := sha256.Sum256([]byte(body))
	f.Add([]byte(fmt.Sprintf("%s\nlength %d\nsha256 %s\n\n%s", magicV1, len(body), hex.EncodeToString(sum[:]), body)))
	f.Add([]byte(magic + "\nlength 2\nsha256 00\n\n{}"))
	f.Add([]byte{})
	f.Fuzz(checkDecoded)
}

// FuzzDecodePayload is FuzzDecode behind a valid header: the payload (the
// metadata line and the arrays) is what a hash check would otherwise keep
// the fuzzer from reaching.
func FuzzDecodePayload(f *testing.F) {
	for _, c := range []*Checkpoint{sample(7), {Step: 9, M: 2, D: 3, N: 2, Base: tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4, 5, 6}, 2, 3),
		Features: tensors.FromFlatDataAndDimensions([]float64{1, 2, 3, 4}, 2, 2), RNG: []uint64{1}, Config: []byte(`{}`),
		Identity: &Identity{Config: "c", Data: map[string]string{"x.npy": "1"}}}} {
		data, _ := Encode(c)
		_, payload, _ := bytes.Cut(data, []byte("\n\n"))
		f.Add(payload, false)
	}
	f.Add([]byte(`{"step":7,"theta_npy":"","rng":["1"],"config":{}}`), true)
	f.Add([]byte(`{"step":-1,"arrays":[{"name":"theta","bytes":-5}]}`+"\n"), false)
	f.Fuzz(func(t *testing.T, payload []byte, v1 bool) {
		m := magic
		if v1 {
			m = magicV1
		}
		sum := sha256.Sum256(payload)
		checkDecoded(t, []byte(fmt.Sprintf("%s\nlength %d\nsha256 %s\n\n%s", m, len(payload), hex.EncodeToString(sum[:]), payload)))
	})
}

// checkDecoded decodes data: an error, or a consistent checkpoint that
// encodes and decodes back to itself; never a panic.
func checkDecoded(t *testing.T, data []byte) {
	c, err := Decode(data)
	if err != nil {
		return
	}
	if c.Step < 0 || c.M < 1 || c.D < 1 || (c.Theta == nil) == (c.Base == nil) || (c.Base == nil) != (c.Features == nil) {
		t.Fatalf("decoded an inconsistent checkpoint: step %d, %d×%d, Θ %v, Θ₀ %v, features %v", c.Step, c.M, c.D, c.Theta != nil, c.Base != nil, c.Features != nil)
	}
	again, err := Encode(c)
	if err != nil {
		t.Fatalf("a decoded checkpoint does not encode: %v", err)
	}
	back, err := Decode(again)
	if err != nil || back.Step != c.Step || !bytes.Equal(again, mustEncode(t, back)) {
		t.Fatalf("re-encoding changed the checkpoint: %v", err)
	}
	if (c.Identity == nil) != (back.Identity == nil) {
		t.Fatalf("re-encoding changed the identity: %+v, %+v", c.Identity, back.Identity)
	}
}

func mustEncode(t *testing.T, c *Checkpoint) []byte {
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
