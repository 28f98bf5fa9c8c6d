package main

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/flatmin/flatmin/cmd/flatmin/internal/runner"
	"github.com/spf13/pflag"
)

// Every flag of train and compare that is a setting writes the Config field
// whose config.json key is the flag's name with '_' for '-': the one mapping
// that resume's conflict check, --param and the error messages rely on
// (runner/keys.go). Each flag is set to a fresh value and the field found by
// the key must hold it.
func TestFlagsAreConfigKeys(t *testing.T) {
	notSettings := map[string]bool{"out": true, "resume": true, "quiet": true, "trainers": true, "param": true}
	cfg := runner.DefaultConfig()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	problemFlags(fs, &cfg)
	trainerFlags(fs, &cfg)
	fs.Int64Var(&cfg.CheckpointEvery, "checkpoint-every", 0, "")
	fs.IntVar(&cfg.Snapshots, "snapshots", 0, "")
	fs.BoolVar(&cfg.TrackSharpness, "track-sharpness", false, "")
	fresh := map[reflect.Kind]struct {
		text string
		want any
	}{
		reflect.Float64: {"0.375", 0.375}, reflect.Int: {"7", int64(7)}, reflect.Int64: {"7", int64(7)},
		reflect.Uint64: {"7", uint64(7)}, reflect.String: {"xyz", "xyz"}, reflect.Bool: {"true", true},
	}
	checked := 0
	fs.VisitAll(func(f *pflag.Flag) {
		if notSettings[f.Name] {
			return
		}
		key := runner.KeyOfFlag(f.Name)
		field := reflect.ValueOf(&cfg).Elem().FieldByNameFunc(func(name string) bool {
			sf, _ := reflect.TypeFor[runner.Config]().FieldByName(name)
			tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			return tag == key
		})
		if !field.IsValid() {
			t.Errorf("--%s: Config has no field with key %q", f.Name, key)
			return
		}
		c, ok := fresh[field.Kind()]
		if !ok {
			t.Errorf("--%s: field of kind %s", f.Name, field.Kind())
			return
		}
		value, want := c.text, c.want
		if err := fs.Set(f.Name, value); err != nil {
			t.Errorf("--%s %v: %v", f.Name, value, err)
			return
		}
		var got any
		switch field.Kind() {
		case reflect.Int, reflect.Int64:
			got = field.Int()
		default:
			got = field.Interface()
		}
		if got != want {
			t.Errorf("--%s %v set the field with key %q to %v", f.Name, value, key, got)
		}
		checked++
	})
	if checked < 30 {
		t.Errorf("only %d flags checked", checked)
	}
}
