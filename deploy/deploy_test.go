package deploy

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/dota-data/ingestion-service/internal/config"
)

// repoRoot is the repository root, seen from this package's directory
// (go test runs a package's tests in its directory).
const repoRoot = ".."

// runtimeVars are read by the Go runtime, not by config.Load. The service
// sets its own soft memory limit unless GOMEMLIMIT is set.
var runtimeVars = []string{"GOMEMLIMIT"}

// knownVar reports whether the service (or its Go runtime) reads name.
func knownVar(name string) bool {
	if slices.Contains(runtimeVars, name) {
		return true
	}
	return slices.ContainsFunc(config.Vars, func(v config.Var) bool { return v.Name == name })
}

// configVar returns the config.Vars entry for name.
func configVar(name string) (config.Var, bool) {
	i := slices.IndexFunc(config.Vars, func(v config.Var) bool { return v.Name == name })
	if i < 0 {
		return config.Var{}, false
	}
	return config.Vars[i], true
}

// readDocuments parses every document of a YAML file, skipping empty ones.
// A syntax error (bad indentation, a tab, an unknown alias) fails the test;
// a duplicate key fails when the document is decoded (decode).
func readDocuments(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue
		}
		docs = append(docs, &doc)
	}
}

// decode decodes a YAML node into a T, failing the test on error.
func decode[T any](t *testing.T, what string, n *yaml.Node) T {
	t.Helper()
	var v T
	if err := n.Decode(&v); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// yamlFiles lists every YAML file in this directory and below, except a
// Helm chart's templates: they are Go templates that render to YAML, not
// YAML, and helm_test.go (go test -tags helm) checks what they render.
func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "templates" {
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), "Chart.yaml")); err == nil {
				return filepath.SkipDir
			}
		}
		if ext := filepath.Ext(path); !d.IsDir() && (ext == ".yaml" || ext == ".yml") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestEveryYAMLFileParses(t *testing.T) {
	files := yamlFiles(t)
	for _, want := range []string{
		"docker-compose.yml",
		filepath.Join("kubernetes", "kustomization.yaml"),
		filepath.Join("kubernetes", "deployment.yaml"),
		filepath.Join("kubernetes", "pdb.yaml"),
		filepath.Join("kubernetes", "configmap.yaml"),
		filepath.Join("kubernetes", "secret.example.yaml"),
		filepath.Join("kubernetes", "service.yaml"),
	} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing", want)
		}
	}
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			docs := readDocuments(t, path)
			if len(docs) == 0 {
				t.Fatal("no YAML document")
			}
			for i, doc := range docs {
				if doc.Content[0].Kind != yaml.MappingNode {
					t.Errorf("document %d is not a mapping", i+1)
				}
				if !strings.HasPrefix(path, "kubernetes"+string(filepath.Separator)) {
					continue
				}
				obj := decode[k8sObject](t, path, doc)
				if obj.APIVersion == "" || obj.Kind == "" {
					t.Errorf("document %d: apiVersion %q, kind %q: want both", i+1, obj.APIVersion, obj.Kind)
				}
				if obj.Kind != "Kustomization" && obj.Metadata.Name == "" {
					t.Errorf("document %d (%s): no metadata.name", i+1, obj.Kind)
				}
			}
		})
	}
}

// TestEnvironmentVariablesAreReadByTheService catches a misspelt or removed
// setting: the service ignores variables it does not know, so a typo would
// silently leave the default in force.
func TestEnvironmentVariablesAreReadByTheService(t *testing.T) {
	if knownVar("NOT_A_SETTING") {
		t.Fatal("knownVar accepts anything")
	}

	t.Run("docker-compose", func(t *testing.T) {
		c := readCompose(t)
		for _, name := range c.replicaNames() {
			env := c.environment(t, name)
			if len(env) == 0 {
				t.Errorf("service %s sets no environment", name)
			}
			for k := range env {
				if !knownVar(k) {
					t.Errorf("service %s sets %s, which the service does not read", name, k)
				}
			}
		}
	})

	t.Run("kubernetes", func(t *testing.T) {
		m := readManifests(t)
		names := m.envNames(t)
		if len(names) == 0 {
			t.Fatal("the Deployment sets no environment")
		}
		for _, name := range names {
			if !knownVar(name) {
				t.Errorf("%s is set, but the service does not read it", name)
			}
		}
	})
}

// loadConfig runs the service's own configuration loader on env, as the
// process would see it, so that a value the service would refuse at start
// (exit status 2), or a setting its source would ignore, fails here.
func loadConfig(t *testing.T, where string, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("%s: the service would refuse this configuration: %v", where, err)
	}
	// The Secret's keys are optional and there for a change of source: the
	// service names one its source ignores at start, and that is all.
	ignored := slices.DeleteFunc(slices.Clone(cfg.Ignored), func(name string) bool {
		return slices.ContainsFunc(config.Vars, func(v config.Var) bool { return v.Name == name && v.Secret })
	})
	if len(ignored) > 0 {
		t.Errorf("%s: sets %v, which SOURCE=%s does not read (the service would warn at start)", where, ignored, cfg.Source)
	}
	return cfg
}

// checkFleetSettings checks the fleet-mode variables, which config.Load
// may not validate yet.
func checkFleetSettings(t *testing.T, where string, env map[string]string) {
	t.Helper()
	if env["FLEET_GROUP"] == "" {
		t.Errorf("%s: FLEET_GROUP is not set: every replica would write to Kafka", where)
	}
	if v, ok := env["FLEET_TOPIC"]; ok && strings.TrimSpace(v) == "" {
		t.Errorf("%s: FLEET_TOPIC is set but empty", where)
	}
	for _, name := range []string{"STANDBY_WINDOW", "FLEET_SESSION_TIMEOUT"} {
		v, ok := env[name]
		if !ok {
			continue
		}
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			t.Errorf("%s: %s=%q: want a positive duration such as 30s", where, name, v)
		}
	}
}

// checkMemory checks a memory request and limit against the soft memory
// limit the service sets for the Go runtime (or GOMEMLIMIT, when set).
// The benchmark's peak RSS at full speed is about 1.5 times that limit
// (31.7 MiB against 21 MiB with the defaults), so the request must cover
// that and the limit must leave room above it.
func checkMemory(t *testing.T, where string, cfg config.Config, env map[string]string, request, limit int64) {
	t.Helper()
	soft := cfg.MemoryLimit()
	if v := env["GOMEMLIMIT"]; v != "" {
		n, err := parseGoMemLimit(v)
		if err != nil {
			t.Fatalf("%s: GOMEMLIMIT=%q: %v", where, v, err)
		}
		soft = n
	}
	if request > 0 && request*2 < soft*3 {
		t.Errorf("%s: memory request %d MiB is under 1.5 times the service's soft memory limit (%d MiB)", where, request>>20, soft>>20)
	}
	if limit < 2*soft {
		t.Errorf("%s: memory limit %d MiB is under twice the service's soft memory limit (%d MiB)", where, limit>>20, soft>>20)
	}
	if request > limit {
		t.Errorf("%s: memory request %d exceeds limit %d", where, request, limit)
	}
}

// parseGoMemLimit reads GOMEMLIMIT's syntax: bytes with an optional B,
// KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(num, 10, 64)
			return n * u.mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// dockerfile holds the instructions of the repository's Dockerfile that
// the deployment files depend on.
type dockerfile struct {
	// Entrypoint is the exec form's first element.
	Entrypoint string
	// Volumes are the VOLUME paths.
	Volumes []string
}

var execForm = regexp.MustCompile(`^\[\s*"([^"]+)"`)

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerfile
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		instr, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		arg = strings.TrimSpace(arg)
		switch strings.ToUpper(instr) {
		case "ENTRYPOINT":
			if m := execForm.FindStringSubmatch(arg); m != nil {
				d.Entrypoint = m[1]
			}
		case "VOLUME":
			d.Volumes = append(d.Volumes, strings.Fields(strings.NewReplacer("[", " ", "]", " ", `"`, " ", ",", " ").Replace(arg))...)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if d.Entrypoint == "" || len(d.Volumes) == 0 {
		t.Fatalf("Dockerfile: no exec-form ENTRYPOINT or no VOLUME (got %+v)", d)
	}
	return d
}
