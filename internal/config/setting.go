package config

import (
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Var describes one setting: its name, its default, what it means, and
// how to read it back from a Config. Its Default is the only place the
// default is written: Load reads it from here, docs/configuration.md and
// the start-up summary print it, and a test checks that a Config loaded
// from nothing holds it.
type Var struct {
	Name, Default, Help string
	// Secret values are masked when printed.
	Secret bool
	// Sources are the values of SOURCE that read the setting; empty, it
	// counts with every source. A setting set for a source that does not
	// read it is named in Config.Ignored.
	Sources []string

	// value is the setting in force in a Config, written as the variable
	// is (a secret masked).
	value func(Config) string
}

// Vars lists every setting Load reads, grouped as docs/configuration.md
// shows them.
var Vars = slices.Concat(kafkaVars, sourceVars, relayVars, fleetVars, processVars)

var byName = func() map[string]*Var {
	m := make(map[string]*Var, len(Vars))
	for i := range Vars {
		if _, dup := m[Vars[i].Name]; dup {
			panic("config: " + Vars[i].Name + " is listed twice")
		}
		m[Vars[i].Name] = &Vars[i]
	}
	return m
}()

// defaultOf returns the default of the setting name, which must be in
// Vars.
func defaultOf(name string) string {
	v, ok := byName[name]
	if !ok {
		panic("config: " + name + " is read but not listed in Vars")
	}
	return v.Default
}

// ignoredBy lists the settings set (in the environment or the .env file)
// that source does not read.
func ignoredBy(source string, isSet func(string) bool) []string {
	var out []string
	for _, v := range Vars {
		if len(v.Sources) > 0 && !slices.Contains(v.Sources, source) && isSet(v.Name) {
			out = append(out, v.Name)
		}
	}
	return out
}

// LogValue prints every setting in force once at start-up, by variable
// name in lower case, with secrets masked.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(Vars))
	for _, v := range Vars {
		if v.Name == "ENV_FILE" {
			continue // how the settings were read, not one of them
		}
		attrs = append(attrs, slog.String(strings.ToLower(v.Name), v.value(c)))
	}
	return slog.GroupValue(attrs...)
}

// The ways a value is written back as its variable.

// durationText writes d as a setting is written: 10s, 2m, 1h, 1m30s.
func durationText(d time.Duration) string {
	s := d.String() // 1h0m0s, 2m0s, 1m30s, 10s, 500ms, 0s
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	if s == "0s" {
		return "0"
	}
	return s
}

// offText writes a duration or count whose negative value means off, as
// the 0 an operator sets for it.
func offText[T ~int | ~int64](v T) string {
	if v < 0 {
		return "0"
	}
	if d, ok := any(v).(time.Duration); ok {
		return durationText(d)
	}
	return strconv.FormatInt(int64(v), 10)
}

func itoa[T ~int | ~int16 | ~int32 | ~int64](n T) string { return strconv.FormatInt(int64(n), 10) }

// mask hides a secret, saying only whether it is set.
func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "REDACTED"
}

// maskKeys describes keys without showing any: how many there are.
func maskKeys(keys []string) string {
	switch len(keys) {
	case 0:
		return ""
	case 1:
		return "REDACTED"
	}
	return fmt.Sprintf("REDACTED (%d keys)", len(keys))
}
