package runner

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/flatmin/flatmin/trainers"
)

// The one mapping between the names of a setting: the Config field (the
// name library errors use, trainers.FieldError), its config.json key (the
// field's JSON tag) and its flag (the key with '-' for '_'). Flags, --param
// keys, resume's conflict check and error messages all go through it
// (TestFlagsAreConfigKeys holds the flags to it).

// configKeys maps each config.json key to its Config field's index.
var configKeys = func() map[string][]int {
	keys := map[string][]int{}
	t := reflect.TypeFor[Config]()
	for _, f := range reflect.VisibleFields(t) {
		if key := jsonKey(f); key != "" {
			keys[key] = f.Index
		}
	}
	return keys
}()

func jsonKey(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if tag == "-" {
		return ""
	}
	return tag
}

// KeyOfField returns the config.json key of Config's field named field ("" if none).
func KeyOfField(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return ""
	}
	return jsonKey(f)
}

// FlagOfKey returns the flag of a config.json key: "sam_batch" → "sam-batch".
func FlagOfKey(key string) string { return strings.ReplaceAll(key, "_", "-") }

// KeyOfFlag returns the config.json key of a flag: "sam-batch" → "sam_batch".
func KeyOfFlag(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// FlagError rewrites a library's error about a setting (a
// *trainers.FieldError naming a Config field) in the flag's words.
func FlagError(err error) error {
	var fe *trainers.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	key := KeyOfField(fe.Field)
	if key == "" {
		return err
	}
	return fmt.Errorf("--%s must be %s, got %v", FlagOfKey(key), fe.Want, fe.Value)
}

// setKey sets c's setting with config.json key key from its text, as a flag
// would (a number, or auto where the setting has a rule).
func (c *Config) setKey(key, value string) error {
	idx, ok := configKeys[key]
	if !ok {
		return fmt.Errorf("unknown key %q", key)
	}
	v := reflect.ValueOf(c).Elem().FieldByIndex(idx)
	if rule := c.ruleOf(key); rule != nil {
		if value == Auto {
			v.SetFloat(0)
			*rule = Auto
			return nil
		}
		*rule = ""
	}
	var err error
	switch v.Kind() {
	case reflect.Float64:
		var f float64
		if f, err = strconv.ParseFloat(value, 64); err == nil {
			v.SetFloat(f)
		}
	case reflect.Int, reflect.Int64:
		var i int64
		if i, err = strconv.ParseInt(value, 10, 64); err == nil {
			v.SetInt(i)
		}
	case reflect.Uint64:
		var u uint64
		if u, err = strconv.ParseUint(value, 10, 64); err == nil {
			v.SetUint(u)
		}
	default:
		return fmt.Errorf("%s cannot be set here", key)
	}
	if err != nil {
		kind := map[reflect.Kind]string{reflect.Float64: "a number", reflect.Uint64: "an integer ≥ 0"}[v.Kind()]
		if kind == "" {
			kind = "an integer"
		}
		return fmt.Errorf("%q is not %s", value, kind)
	}
	return nil
}

// TrainerKeys lists the config.json keys of trainer's own settings (its
// trainers.Settings struct's fields), in the struct's order.
func TrainerKeys(trainer string) ([]string, error) {
	st, err := trainers.Config{}.Settings(trainer)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, f := range reflect.VisibleFields(reflect.TypeOf(st)) {
		if key := KeyOfField(f.Name); key != "" {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// runKeys are the settings of a run that --param may set for any trainer.
var runKeys = []string{"steps", "log_every", "seed"}

// ruleOf is the rule field of a setting that takes auto (nil for others).
func (c *Config) ruleOf(key string) *string {
	switch key {
	case "eta":
		return &c.EtaRule
	case "rho":
		return &c.RhoRule
	case "init_scale":
		return &c.InitScaleRule
	}
	return nil
}

// ParamKeysHelp lists each trainer's --param keys, for --help.
func ParamKeysHelp() string {
	var parts []string
	for _, name := range trainers.Names() {
		keys, _ := TrainerKeys(name)
		parts = append(parts, name+": "+strings.Join(keys, ", "))
	}
	return strings.Join(parts, "; ") + "; and for any: " + strings.Join(runKeys, ", ")
}
