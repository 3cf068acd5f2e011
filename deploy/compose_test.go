package deploy

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const composePath = "docker-compose.yml"

// defaultFleetTopic is FLEET_TOPIC's default.
const defaultFleetTopic = "ingestion-service-leader"

// The parts of a compose file the tests read. Fields that the compose
// specification allows in several shapes are kept as nodes.
type (
	composeFile struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	composeService struct {
		Image       string    `yaml:"image"`
		Build       yaml.Node `yaml:"build"`
		Environment yaml.Node `yaml:"environment"`
		Healthcheck *struct {
			Test    []string `yaml:"test"`
			Disable bool     `yaml:"disable"`
		} `yaml:"healthcheck"`
		DependsOn       yaml.Node   `yaml:"depends_on"`
		Volumes         []yaml.Node `yaml:"volumes"`
		Ports           []string    `yaml:"ports"`
		StopGracePeriod string      `yaml:"stop_grace_period"`
		Entrypoint      yaml.Node   `yaml:"entrypoint"`
		Command         yaml.Node   `yaml:"command"`
		MemLimit        string      `yaml:"mem_limit"`
		Deploy          struct {
			Resources struct {
				Limits struct {
					Memory string `yaml:"memory"`
				} `yaml:"limits"`
				Reservations struct {
					Memory string `yaml:"memory"`
				} `yaml:"reservations"`
			} `yaml:"resources"`
		} `yaml:"deploy"`
	}
)

type compose struct{ composeFile }

func readCompose(t *testing.T) compose {
	t.Helper()
	docs := readDocuments(t, composePath)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", composePath, len(docs))
	}
	return compose{decode[composeFile](t, composePath, docs[0])}
}

// replicaNames returns the services built from the repository: the
// service's replicas.
func (c compose) replicaNames() []string {
	var names []string
	for name, s := range c.Services {
		if !s.Build.IsZero() {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// brokerName returns the Kafka broker: an apache/kafka service that runs
// KRaft roles.
func (c compose) brokerName(t *testing.T) string {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		if strings.HasPrefix(c.Services[name].Image, "apache/kafka:") && c.environment(t, name)["KAFKA_PROCESS_ROLES"] != "" {
			return name
		}
	}
	t.Fatalf("%s: no apache/kafka service with KAFKA_PROCESS_ROLES", composePath)
	return ""
}

var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$\$`)

// interpolate applies compose's variable syntax as if the shell set no
// variable: ${X:-default} and ${X-default} become the default, ${X}
// becomes empty, $$ a dollar sign.
func interpolate(s string) string {
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		return interpolation.FindStringSubmatch(m)[2]
	})
}

// environment returns a service's environment, merge keys resolved and
// values interpolated. Both the mapping and the list forms are read.
func (c compose) environment(t *testing.T, name string) map[string]string {
	t.Helper()
	n := c.Services[name].Environment
	env := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.MappingNode:
		var m map[string]any
		if err := n.Decode(&m); err != nil {
			t.Fatalf("%s: environment: %v", name, err)
		}
		for k, v := range m {
			switch v := v.(type) {
			case nil:
				env[k] = ""
			case string:
				env[k] = interpolate(v)
			default:
				b, err := yaml.Marshal(v)
				if err != nil {
					t.Fatal(err)
				}
				env[k] = strings.TrimSpace(string(b))
			}
		}
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			t.Fatalf("%s: environment: %v", name, err)
		}
		for _, kv := range list {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = interpolate(v)
		}
	default:
		t.Fatalf("%s: environment is neither a mapping nor a list", name)
	}
	return env
}

// dependsOn returns a service's dependencies and their conditions.
func (c compose) dependsOn(t *testing.T, name string) map[string]string {
	t.Helper()
	n := c.Services[name].DependsOn
	deps := map[string]string{}
	switch n.Kind {
	case 0:
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			t.Fatalf("%s: depends_on: %v", name, err)
		}
		for _, d := range list {
			deps[d] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := n.Decode(&m); err != nil {
			t.Fatalf("%s: depends_on: %v", name, err)
		}
		for d, v := range m {
			deps[d] = orDefault(v.Condition, "service_started")
		}
	}
	return deps
}

// mount is one of a service's volumes.
type mount struct{ Source, Target string }

// mounts returns a service's volumes, short or long syntax.
func (c compose) mounts(t *testing.T, name string) []mount {
	t.Helper()
	var out []mount
	for _, n := range c.Services[name].Volumes {
		switch n.Kind {
		case yaml.ScalarNode:
			parts := strings.Split(n.Value, ":")
			if len(parts) < 2 {
				out = append(out, mount{Target: parts[0]})
				continue
			}
			out = append(out, mount{Source: parts[0], Target: parts[1]})
		case yaml.MappingNode:
			var m struct {
				Source string `yaml:"source"`
				Target string `yaml:"target"`
			}
			if err := n.Decode(&m); err != nil {
				t.Fatalf("%s: volumes: %v", name, err)
			}
			out = append(out, mount(m))
		}
	}
	return out
}

// commandText returns a service's entrypoint and command as one string.
func (c compose) commandText(t *testing.T, name string) string {
	t.Helper()
	var parts []string
	for _, n := range []yaml.Node{c.Services[name].Entrypoint, c.Services[name].Command} {
		switch n.Kind {
		case yaml.ScalarNode:
			parts = append(parts, n.Value)
		case yaml.SequenceNode:
			var list []string
			if err := n.Decode(&list); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			parts = append(parts, list...)
		}
	}
	return strings.Join(parts, "\n")
}

// buildContext returns a service's build context and Dockerfile.
func (c compose) buildContext(t *testing.T, name string) (context, dockerfile string) {
	t.Helper()
	n := c.Services[name].Build
	if n.Kind == yaml.ScalarNode {
		return n.Value, "Dockerfile"
	}
	var b struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	}
	if err := n.Decode(&b); err != nil {
		t.Fatalf("%s: build: %v", name, err)
	}
	return orDefault(b.Context, "."), orDefault(b.Dockerfile, "Dockerfile")
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parseComposeBytes reads a compose byte value: 64M, 128m, 1g, 512mb.
func parseComposeBytes(s string) (int64, error) {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "b")
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult = 1 << 10
	case strings.HasSuffix(s, "m"):
		mult = 1 << 20
	case strings.HasSuffix(s, "g"):
		mult = 1 << 30
	}
	if mult > 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func TestComposeKafka(t *testing.T) {
	c := readCompose(t)
	name := c.brokerName(t)
	kafka := c.Services[name]
	env := c.environment(t, name)

	tag := strings.TrimPrefix(kafka.Image, "apache/kafka:")
	m := regexp.MustCompile(`^(\d+)\.(\d+)\.\d+$`).FindStringSubmatch(tag)
	if m == nil {
		t.Fatalf("image %s: pin a release such as apache/kafka:4.1.0, not a moving tag", kafka.Image)
	}
	if major, _ := strconv.Atoi(m[1]); major < 4 {
		t.Errorf("image %s: want Apache Kafka 4.1 or newer", kafka.Image)
	} else if minor, _ := strconv.Atoi(m[2]); major == 4 && minor < 1 {
		t.Errorf("image %s: want Apache Kafka 4.1 or newer", kafka.Image)
	}

	roles := strings.Split(env["KAFKA_PROCESS_ROLES"], ",")
	if !slices.Contains(roles, "broker") || !slices.Contains(roles, "controller") {
		t.Errorf("KAFKA_PROCESS_ROLES %q: want broker,controller on the one KRaft node", env["KAFKA_PROCESS_ROLES"])
	}
	// One node: the internal topics behind consumer groups (the fleet's
	// election) and transactions (the leader's producer) must fit on it,
	// or joining the group and starting a transaction fail forever.
	for _, k := range []string{
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
	} {
		if env[k] != "1" {
			t.Errorf("%s = %q, want 1 on a one-node cluster", k, env[k])
		}
	}
	if kafka.Healthcheck == nil || len(kafka.Healthcheck.Test) == 0 {
		t.Error("the broker has no healthcheck, so service_healthy cannot be waited for")
	}
}

func TestComposeTopics(t *testing.T) {
	c := readCompose(t)
	broker := c.brokerName(t)
	replicas := c.replicaNames()
	if len(replicas) == 0 {
		t.Fatal("no replicas")
	}
	cfg := loadConfig(t, replicas[0], c.environment(t, replicas[0]))
	fleetTopic := orDefault(c.environment(t, replicas[0])["FLEET_TOPIC"], defaultFleetTopic)

	createLine := regexp.MustCompile(`kafka-topics\.sh[^\n]*--create[^\n]*`)
	topicArg := regexp.MustCompile(`--topic[ =](\S+)`)
	partitionsArg := regexp.MustCompile(`--partitions[ =](\d+)`)
	created := map[string]int{}
	var init string
	for _, name := range slices.Sorted(maps.Keys(c.Services)) {
		lines := createLine.FindAllString(c.commandText(t, name), -1)
		if len(lines) == 0 {
			continue
		}
		init = name
		for _, line := range lines {
			topic, parts := topicArg.FindStringSubmatch(line), partitionsArg.FindStringSubmatch(line)
			if topic == nil || parts == nil {
				t.Errorf("%s: %q: want --topic and --partitions", name, line)
				continue
			}
			created[topic[1]], _ = strconv.Atoi(parts[1])
		}
	}
	if init == "" {
		t.Fatal("no service creates the topics with kafka-topics.sh --create")
	}
	if c.dependsOn(t, init)[broker] != "service_healthy" {
		t.Errorf("%s does not wait for %s to be healthy", init, broker)
	}
	if n, ok := created[cfg.Kafka.Topic]; !ok || n < 1 {
		t.Errorf("KAFKA_PUBLISH_TOPIC %s is not created (created: %v)", cfg.Kafka.Topic, created)
	}
	if n, ok := created[fleetTopic]; !ok || n != 1 {
		t.Errorf("FLEET_TOPIC %s: created with %d partitions (created: %v), want exactly 1", fleetTopic, n, created)
	}
	for _, name := range replicas {
		if c.dependsOn(t, name)[init] != "service_completed_successfully" {
			t.Errorf("%s does not wait for %s to complete successfully", name, init)
		}
	}
}

func TestComposeReplicas(t *testing.T) {
	c := readCompose(t)
	broker := c.brokerName(t)
	df := readDockerfile(t)
	replicas := c.replicaNames()
	if len(replicas) != 2 {
		t.Fatalf("services built from the repository: %v, want two replicas", replicas)
	}

	groups, topics, clientIDs, hostPorts, spools := map[string]bool{}, map[string]bool{}, map[string]string{}, map[string]string{}, map[string]string{}
	for _, name := range replicas {
		t.Run(name, func(t *testing.T) {
			s := c.Services[name]
			env := c.environment(t, name)
			cfg := loadConfig(t, name, env)
			checkFleetSettings(t, name, env)
			groups[env["FLEET_GROUP"]] = true
			topics[orDefault(env["FLEET_TOPIC"], defaultFleetTopic)] = true
			if id := env["KAFKA_CLIENT_ID"]; id != "" {
				if other, dup := clientIDs[id]; dup {
					t.Errorf("KAFKA_CLIENT_ID %s is also %s's", id, other)
				}
				clientIDs[id] = name
			}

			ctx, dockerfile := c.buildContext(t, name)
			if filepath.Clean(ctx) != repoRoot {
				t.Errorf("build context %q, want %q (the repository root)", ctx, repoRoot)
			}
			if _, err := os.Stat(filepath.Join(ctx, dockerfile)); err != nil {
				t.Errorf("build: %v", err)
			}

			// The image has no shell: CMD-SHELL would fail, only the exec
			// form of the binary's own healthcheck subcommand works.
			hc := s.Healthcheck
			if hc == nil || hc.Disable || len(hc.Test) != 3 || hc.Test[0] != "CMD" || hc.Test[1] != df.Entrypoint || hc.Test[2] != "healthcheck" {
				t.Errorf("healthcheck %+v, want test [CMD %s healthcheck]", hc, df.Entrypoint)
			}

			deps := c.dependsOn(t, name)
			if deps[broker] != "service_healthy" {
				t.Errorf("depends_on %v: want %s with condition service_healthy", deps, broker)
			}

			grace, err := time.ParseDuration(s.StopGracePeriod)
			if err != nil || grace <= cfg.ShutdownTimeout {
				t.Errorf("stop_grace_period %q is not above SHUTDOWN_TIMEOUT %s", s.StopGracePeriod, cfg.ShutdownTimeout)
			}

			limit := orDefault(s.Deploy.Resources.Limits.Memory, s.MemLimit)
			if limit == "" {
				t.Error("no memory limit (deploy.resources.limits.memory or mem_limit)")
			} else {
				lim, err := parseComposeBytes(limit)
				if err != nil {
					t.Fatalf("memory limit %q: %v", limit, err)
				}
				var req int64
				if r := s.Deploy.Resources.Reservations.Memory; r != "" {
					if req, err = parseComposeBytes(r); err != nil {
						t.Fatalf("memory reservation %q: %v", r, err)
					}
				}
				checkMemory(t, name, cfg, env, req, lim)
			}

			if !slices.Contains(df.Volumes, cfg.Spool.Dir) {
				t.Errorf("SPOOL_DIR %s is not the image's VOLUME %v", cfg.Spool.Dir, df.Volumes)
			}
			i := slices.IndexFunc(c.mounts(t, name), func(m mount) bool { return m.Target == cfg.Spool.Dir })
			if i < 0 {
				t.Fatalf("no volume mounted at SPOOL_DIR %s", cfg.Spool.Dir)
			}
			src := c.mounts(t, name)[i].Source
			if _, declared := c.Volumes[src]; !declared {
				t.Errorf("the spool is on %q, not a named volume declared under volumes:", src)
			}
			if other, dup := spools[src]; dup {
				t.Errorf("spool volume %s is also %s's: the spool directory is locked against a second process", src, other)
			}
			spools[src] = name

			for _, p := range s.Ports {
				parts := strings.Split(p, ":")
				if len(parts) < 2 {
					continue
				}
				if parts[len(parts)-1] != strconv.Itoa(cfg.API.Port) {
					t.Errorf("port %q does not publish API_PORT %d", p, cfg.API.Port)
				}
				host := strings.Join(parts[:len(parts)-1], ":")
				if other, dup := hostPorts[host]; dup {
					t.Errorf("host port %s is also %s's", host, other)
				}
				hostPorts[host] = name
			}
		})
	}
	if len(groups) != 1 || len(topics) != 1 {
		t.Errorf("FLEET_GROUP %v, FLEET_TOPIC %v: the replicas must share one group and one topic", slices.Collect(maps.Keys(groups)), slices.Collect(maps.Keys(topics)))
	}
}
