package config

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dota-data/ingestion-service/internal/spool"
)

// reader reads settings by name, each value from the environment or the
// .env file, else from the setting's Default in Vars: no default is
// written anywhere else. It keeps every variable's first error.
type reader struct {
	get  func(string) string
	has  func(string) bool // set, if only to the empty string
	errs Errors
}

// required fails name when it is set to nothing but blanks: unset, it has
// a default; set empty, it is a mistake that the default would hide.
func (r *reader) required(name string) {
	if r.has(name) && strings.TrimSpace(r.get(name)) == "" {
		r.fail(name, r.get(name), "set but empty: unset it for the default, or give a value")
	}
}

func (r *reader) fail(name, value, reason string) {
	for _, e := range r.errs {
		if e.Var == name {
			return
		}
	}
	r.errs = append(r.errs, &Error{Var: name, Value: value, Reason: reason})
}

// set returns the value name is set to, trimmed, or "" when it is not.
func (r *reader) set(name string) string { return strings.TrimSpace(r.get(name)) }

// str returns the value of name, else its default.
func (r *reader) str(name string) string {
	if v := r.set(name); v != "" {
		return v
	}
	return defaultOf(name)
}

// parsed reads name with parse; a value set that parse refuses fails with
// want, and the default stands in for it. A default parse refuses is a
// mistake in Vars, which the package's tests catch.
func parsed[T any](r *reader, name, want string, parse func(string) (T, bool)) T {
	def, ok := parse(defaultOf(name))
	if !ok {
		panic(fmt.Sprintf("config: the default of %s, %q, does not parse", name, defaultOf(name)))
	}
	raw := r.set(name)
	if raw == "" {
		return def
	}
	v, ok := parse(raw)
	if !ok {
		r.fail(name, raw, want)
		return def
	}
	return v
}

// duration reads a duration: 0, or at least min.
func (r *reader) duration(name string, min time.Duration) time.Duration {
	return parsed(r, name, fmt.Sprintf("want a duration such as 500ms, 10s or 2m: 0 or at least %s", min), func(s string) (time.Duration, bool) {
		if s == "0" {
			return 0, true
		}
		d, err := time.ParseDuration(s)
		return d, err == nil && d >= min
	})
}

// positiveDuration reads a duration of at least min that cannot be 0.
func (r *reader) positiveDuration(name string, min time.Duration) time.Duration {
	d := r.duration(name, min)
	if d == 0 {
		r.fail(name, "0", "want a positive duration")
	}
	return d
}

// integer reads an integer from min to max.
func (r *reader) integer(name string, min, max int) int {
	return parsed(r, name, fmt.Sprintf("want an integer from %d to %d", min, max), func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= min && n <= max
	})
}

// boolean reads true or false.
func (r *reader) boolean(name string) bool {
	return parsed(r, name, "want true or false", func(s string) (bool, bool) {
		b, err := strconv.ParseBool(s)
		return b, err == nil
	})
}

// bytes reads a size: a plain number of bytes, or one with a KiB, MiB or
// GiB suffix (KB, MB, GB are read as the same powers of two).
func (r *reader) bytes(name string) int64 {
	return parsed(r, name, "want a size such as 536870912, 512MiB or 1GiB", parseBytes)
}

func parseBytes(raw string) (int64, bool) {
	num, mult := raw, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(strings.ToUpper(num), u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, false
	}
	return n * mult, true
}

// syncPolicy reads always, never (or 0), or an interval.
func (r *reader) syncPolicy(name string) spool.SyncPolicy {
	return parsed(r, name, "want always, never or an interval such as 100ms or 1s", func(s string) (spool.SyncPolicy, bool) {
		switch strings.ToLower(s) {
		case "always":
			return spool.SyncPolicy{Always: true}, true
		case "never", "0":
			return spool.SyncPolicy{}, true
		}
		d, err := time.ParseDuration(s)
		return spool.SyncPolicy{Interval: d}, err == nil && d > 0
	})
}

// oneOf reads a value, lower-cased (or upper-cased, with upper), that
// must be one of allowed.
func (r *reader) oneOf(name string, upper bool, allowed ...string) string {
	v := strings.ToLower(r.str(name))
	if upper {
		v = strings.ToUpper(v)
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, v, "want "+orList(allowed))
	return v
}

// orList writes a, b or c.
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// list reads a comma-separated list, trimmed and lower-cased, without
// empty items.
func (r *reader) list(name string) []string {
	var out []string
	for _, v := range strings.Split(r.str(name), ",") {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// keys reads a comma-separated list of secrets, trimmed, without empty
// items. An error names a key by its position, never by its value.
func (r *reader) keys(name string) []string {
	var out []string
	seen := map[string]int{}
	for _, v := range strings.Split(r.get(name), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if at, ok := seen[v]; ok {
			r.fail(name, "", fmt.Sprintf("key %d repeats key %d", len(out)+1, at))
		}
		out = append(out, v)
		seen[v] = len(out)
	}
	return out
}

// file returns the named path, failing if it is set but cannot be read.
func (r *reader) file(name string) string {
	path := r.set(name)
	if path == "" {
		return ""
	}
	if _, err := os.Stat(path); err != nil {
		r.fail(name, path, "cannot read the file: "+err.Error())
	}
	return path
}

// orOff turns a setting's 0, which means "off" (or "no limit") to an
// operator, into the -1 by which the components say so: their 0 means
// "the default".
func orOff[T ~int | ~int64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
