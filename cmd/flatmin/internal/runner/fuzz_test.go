package runner

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/checkpoint"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// sameRun says whether two configurations describe the same trajectory,
// by direct comparison of the fields with those a resume may change (and the
// input paths, whose content is checked instead) cleared.
func sameRun(a, b Config) bool {
	clear := func(c *Config) {
		c.Steps, c.Backend, c.CheckpointEvery, c.Engine, c.Fuse, c.Graphs = 0, "", 0, "", 0, false
		c.XPath, c.YPath, c.DataPath, c.WPath, c.Theta0Path = "", "", "", "", ""
	}
	clear(&a)
	clear(&b)
	return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

func fuzzRunConfig() Config {
	c := DefaultConfig()
	c.M, c.N, c.D, c.Eta, c.Steps = 2, 3, 3, 0.05, 300
	return c
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

// FuzzVerifyCheckpoint builds a checkpoint from its parts (its own
// configuration, step, file name, identity, sizes), encodes and decodes it
// and asks resume's checks whether it belongs to the run: they must never
// panic, and must accept exactly the consistent ones.
func FuzzVerifyCheckpoint(f *testing.F) {
	run := fuzzRunConfig()
	runJSON := mustJSON(run)
	digest := ConfigDigest(run)
	other := run
	other.Seed, other.Eta = 9, 0.01
	edited := run
	edited.Trainer = "gd"
	later := run
	later.Steps, later.Engine, later.Backend = 900, "theta", "xla:cpu" // may change on resume
	name := func(step int64) string { return fmt.Sprintf("ckpt-%012d.ckpt", step) }
	for _, s := range []struct {
		own, saved  []byte
		step        int64
		name, idCfg string
		x           string
		m, d        int
		identity    bool
	}{
		{runJSON, runJSON, 300, name(300), digest, "x", 2, 3, true},                      // the run's own
		{mustJSON(later), runJSON, 300, name(300), digest, "x", 2, 3, true},              // settings a resume may change
		{mustJSON(other), runJSON, 300, name(300), ConfigDigest(other), "x", 2, 3, true}, // another run's
		{runJSON, runJSON, 200, name(900), digest, "x", 2, 3, true},                      // renamed to a later step
		{runJSON, mustJSON(edited), 300, name(300), digest, "x", 2, 3, true},             // config.json edited
		{runJSON, runJSON, 300, name(300), digest, "other x", 2, 3, true},                // x.npy replaced
		{runJSON, runJSON, 300, name(300), "", "", 2, 3, false},                          // flatmin 0.1: no identity
		{mustJSON(other), runJSON, 300, name(300), "", "", 2, 3, false},                  // flatmin 0.1, another run
		{runJSON, runJSON, 300, name(300), digest, "x", 3, 3, true},                      // another size
		{[]byte(`{}`), runJSON, 7, name(7), digest, "x", 2, 3, true},
		{[]byte(`null`), []byte(`{"seed":1}`), 0, "ckpt-0.ckpt", "", "", 1, 1, false},
	} {
		f.Add(s.own, s.saved, s.step, s.name, s.idCfg, s.x, s.m, s.d, s.identity)
	}
	files := map[string]string{XFile: "x", YFile: "y", WFile: "w", Theta0File: "t"}
	f.Fuzz(func(t *testing.T, own, saved []byte, step int64, file, idConfig, xDigest string, m, d int, hasIdentity bool) {
		var cfg Config
		if json.Unmarshal(saved, &cfg) != nil || step < 0 || m < 1 || d < 1 || m > 64 || d > 64 {
			return
		}
		c := &checkpoint.Checkpoint{Step: step, M: m, D: d, Theta: tensors.FromFlatDataAndDimensions(make([]float64, m*d), m, d),
			RNG: []uint64{1}, Config: own}
		if hasIdentity {
			c.Identity = &checkpoint.Identity{Config: idConfig, Data: map[string]string{XFile: xDigest, YFile: "y", WFile: "w", Theta0File: "t"}}
		}
		data, err := checkpoint.Encode(c)
		if err != nil {
			return // its configuration is not JSON
		}
		back, err := checkpoint.Decode(data)
		if err != nil {
			t.Fatalf("a checkpoint just encoded does not decode: %v", err)
		}
		id := &checkpoint.Identity{Config: ConfigDigest(cfg), Data: files}
		err = checkpoint.CheckName(file, back.Step)
		if err == nil {
			err = VerifyCheckpoint(back, cfg, id, 2, 3, 3)
		}
		var ownCfg Config
		consistent := file == fmt.Sprintf("ckpt-%012d.ckpt", step) && json.Unmarshal(own, &ownCfg) == nil && sameRun(ownCfg, cfg) &&
			m == 2 && d == 3 && (!hasIdentity || idConfig == id.Config && xDigest == "x")
		if (err == nil) != consistent {
			t.Fatalf("verdict %v for a checkpoint that is consistent: %v (own %s, saved %s, step %d, file %q)", err, consistent, own, saved, step, file)
		}
	})
}

// FuzzMetricsFromRow reads arbitrary metrics.csv rows as a resume reads
// step 0's: an error, or metrics that write back to a row that reads back
// the same; never a panic.
func FuzzMetricsFromRow(f *testing.F) {
	header := []string{"step", "loss", "trace_hessian", "trace_hessian_manifold", "trace_min", "theory_gap", "grad_norm",
		"riemannian_grad_norm", "effective_rank", "sv_z_1", "sv_z_2", "sv_theta_1", "eta", "wall_seconds"}
	f.Add("0,1.5,2,3,NaN,0.25,1e-300,+Inf,1,0.5,0.25,0.75,0.05,0.001")
	f.Add("x,1,2,3,4,5,6,7,8,9,10,11,12,13")
	f.Add("0,1")
	extras := []string{"eta"}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := metricsFromRow(header, strings.Split(line, ","), extras)
		if err != nil {
			return
		}
		rec := m.CSVRecord(extras)
		again, err := metricsFromRow(header, rec, extras)
		if err != nil {
			t.Fatalf("%q: its own record %q does not read back: %v", line, rec, err)
		}
		if back := again.CSVRecord(extras); !slices.Equal(back, rec) {
			t.Fatalf("%q: %q read back as %q", line, rec, back)
		}
	})
}
