package checkpoint

import (
	"bytes"
	"testing"
)

func FuzzDecode(f *testing.F) {
	good, _ := Encode(sample(7))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(magic + "\nlength 2\nsha256 00\n\n{}"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(c)
		if err != nil {
			t.Fatalf("a decoded checkpoint does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil || back.Step != c.Step || !bytes.Equal(again, mustEncode(t, back)) {
			t.Fatalf("re-encoding changed the checkpoint: %v", err)
		}
	})
}

func mustEncode(t *testing.T, c *Checkpoint) []byte {
	data, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
