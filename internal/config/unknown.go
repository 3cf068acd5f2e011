package config

import (
	"errors"
	"io/fs"
	"sort"
	"strings"

	"github.com/joho/godotenv"
)

// Unknown is a variable that looks like one of the service's settings (it
// starts as they do, KAFKA_, STEAM_, ...) but is not one, so Load ignores
// it: most often a typo.
type Unknown struct {
	// Name is the variable as set.
	Name string
	// Where is "environment", or the .env file's path.
	Where string
	// Suggestion is the setting it most likely meant, or empty.
	Suggestion string
}

// UnknownVars returns the variables of environ ("NAME=value", as from
// os.Environ) and of the .env file Load reads (ENV_FILE, or ./.env if it
// exists) that look like settings but are none, sorted by name, each with
// the nearest setting's name when one is close.
func UnknownVars(environ []string) ([]Unknown, error) {
	names := map[string]string{} // name: where
	envFile := ""
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		names[name] = "environment"
		if name == "ENV_FILE" {
			envFile = value
		}
	}
	path := envFile
	if path == "" {
		path = ".env"
	}
	file, err := godotenv.Read(path)
	switch {
	case err == nil:
		for name := range file {
			if _, ok := names[name]; !ok {
				names[name] = path
			}
		}
	case envFile == "" && errors.Is(err, fs.ErrNotExist):
	default:
		return nil, envFileError(path, err)
	}
	known := map[string]bool{}
	prefixes := map[string]bool{}
	for _, v := range Vars {
		known[v.Name] = true
		if p, _, ok := strings.Cut(v.Name, "_"); ok {
			prefixes[p+"_"] = true
		}
	}
	var out []Unknown
	for name, where := range names {
		if known[name] || !hasPrefix(name, prefixes) {
			continue
		}
		out = append(out, Unknown{Name: name, Where: where, Suggestion: nearest(name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func hasPrefix(name string, prefixes map[string]bool) bool {
	p, _, ok := strings.Cut(name, "_")
	return ok && prefixes[p+"_"]
}

// nearest returns the setting whose name is closest to name in edit
// distance, if within a third of its length (at least 2), else "".
func nearest(name string) string {
	best, bestD := "", 0
	for _, v := range Vars {
		d := editDistance(name, v.Name)
		if best == "" || d < bestD {
			best, bestD = v.Name, d
		}
	}
	if bestD <= max(2, len(best)/3) {
		return best
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
