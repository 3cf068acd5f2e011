//go:build helm

package deploy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The tests of the Helm chart run helm: go test -tags helm ./deploy.
const (
	// helmModule is the helm that runs, with go run, when HELM names no
	// binary.
	helmModule = "helm.sh/helm/v4/cmd/helm@v4.3.2"
	// chartRelease is the release name for which the chart's defaults name
	// every object as deploy/kubernetes does.
	chartRelease = "ingestion-service"
	// podSelector stands in for a label selector that is the Deployment's
	// own: the chart's add app.kubernetes.io/instance to the manifests'
	// app.kubernetes.io/name.
	podSelector = "<the Deployment's selector>"
)

var chartDir = filepath.Join("helm", "ingestion-service")

// helmCmd is the command line that runs helm, settled once.
var helmCmd struct {
	once sync.Once
	argv []string
	err  error
}

// helmArgv returns the command line that runs helm: $HELM, else go run of
// helmModule, whose first run compiles helm (minutes) and caches it; that
// run happens here, once, so that parallel tests do not compile it side by
// side.
func helmArgv(t *testing.T) []string {
	t.Helper()
	helmCmd.once.Do(func() {
		if h := os.Getenv("HELM"); h != "" {
			helmCmd.argv = []string{h}
			return
		}
		argv := []string{"go", "run", helmModule}
		out, err := exec.Command(argv[0], append(argv[1:], "version")...).CombinedOutput()
		if err != nil {
			helmCmd.err = fmt.Errorf("%s version: %w\n%s", strings.Join(argv, " "), err, out)
			return
		}
		helmCmd.argv = argv
	})
	if helmCmd.err != nil {
		t.Fatal(helmCmd.err)
	}
	return helmCmd.argv
}

// runHelm runs helm with args, with its cache, configuration and data in
// a temporary directory, and returns its standard output and error.
func runHelm(t *testing.T, args ...string) (stdout []byte, stderr string, err error) {
	t.Helper()
	argv := helmArgv(t)
	cmd := exec.CommandContext(t.Context(), argv[0], append(slices.Clone(argv[1:]), args...)...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.String(), err
}

// objects are Kubernetes objects parsed into maps, by kind (one of each).
type objects map[string]map[string]any

// add files obj under its kind, failing the test on a second of a kind.
func (o objects) add(t *testing.T, where string, obj map[string]any) {
	t.Helper()
	kind, _ := obj["kind"].(string)
	if kind == "" {
		t.Fatalf("%s: an object without kind", where)
	}
	if _, dup := o[kind]; dup {
		t.Fatalf("%s: a second %s", where, kind)
	}
	o[kind] = obj
}

// rendered is what helm template printed, and the objects in it.
type rendered struct {
	raw  []byte
	objs objects
}

// renderChart runs helm template for release with the extra arguments
// (--set and the like) and parses what it prints.
func renderChart(t *testing.T, release string, args ...string) rendered {
	t.Helper()
	out, stderr, err := runHelm(t, append([]string{"template", release, chartDir}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	objs := objects{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for i := 1; ; i++ {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("helm template: document %d: %v", i, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue
		}
		objs.add(t, "helm template", decode[map[string]any](t, "helm template", &doc))
	}
	return rendered{raw: out, objs: objs}
}

// kustomizeImageRef is an entry of a kustomization's images.
type kustomizeImageRef struct {
	Name    string `yaml:"name"`
	NewName string `yaml:"newName"`
	NewTag  string `yaml:"newTag"`
}

// kustomizeObjects reads the resources kustomization.yaml lists and
// applies its images, as kubectl kustomize does.
func kustomizeObjects(t *testing.T) objects {
	t.Helper()
	path := filepath.Join(k8sDir, "kustomization.yaml")
	k := decode[struct {
		Resources []string            `yaml:"resources"`
		Images    []kustomizeImageRef `yaml:"images"`
	}](t, path, readDocuments(t, path)[0])
	objs := objects{}
	for _, file := range k.Resources {
		p := filepath.Join(k8sDir, file)
		for _, doc := range readDocuments(t, p) {
			objs.add(t, p, decode[map[string]any](t, p, doc))
		}
	}
	containers, _ := lookup(objs["Deployment"], "spec.template.spec.containers")
	for _, c := range asList(containers) {
		c := asMap(c)
		for _, img := range k.Images {
			if c["image"] == img.Name {
				c["image"] = img.NewName + ":" + img.NewTag
			}
		}
	}
	return objs
}

// lookup returns the value at path in v: keys separated by dots, list
// indexes in brackets, as in spec.template.spec.containers[0].env.
func lookup(v any, path string) (any, bool) {
	for seg := range strings.SplitSeq(path, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		if key != "" {
			next, ok := asMap(v)[key]
			if !ok {
				return nil, false
			}
			v = next
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			list := asList(v)
			if err != nil || i < 0 || i >= len(list) {
				return nil, false
			}
			v, rest = list[i], strings.TrimPrefix(after, "[")
		}
	}
	return v, true
}

// lookupString returns the string at path in v, or "".
func lookupString(v any, path string) string {
	s, _ := lookup(v, path)
	str, _ := s.(string)
	return str
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }

func asList(v any) []any { l, _ := v.([]any); return l }

// show prints a value of a difference.
func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%v", v)
}

// diff lists the differences between the manifests' value (want) and the
// chart's (got) at path and below, one line each, naming its path.
func diff(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: the manifests have a mapping, the chart %s", path, show(got))}
		}
		var out []string
		keys := slices.Sorted(maps.Keys(w))
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				out = append(out, fmt.Sprintf("%s.%s: only in the manifests (%s)", path, k, show(wv)))
			case !inW:
				out = append(out, fmt.Sprintf("%s.%s: only in the chart (%s)", path, k, show(gv)))
			default:
				out = append(out, diff(path+"."+k, wv, gv)...)
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: the manifests have a list, the chart %s", path, show(got))}
		}
		var out []string
		for i := range max(len(w), len(g)) {
			p := fmt.Sprintf("%s[%d]", path, i)
			switch {
			case i >= len(g):
				out = append(out, fmt.Sprintf("%s: only in the manifests (%s)", p, show(w[i])))
			case i >= len(w):
				out = append(out, fmt.Sprintf("%s: only in the chart (%s)", p, show(g[i])))
			default:
				out = append(out, diff(p, w[i], g[i])...)
			}
		}
		return out
	}
	if !reflect.DeepEqual(want, got) {
		return []string{fmt.Sprintf("%s: the manifests %s, the chart %s", path, show(want), show(got))}
	}
	return nil
}

// replaceSelectors checks that the topology spread constraints and the
// PodDisruptionBudget select the Deployment's pods with the Deployment's
// own selector, and replaces those selectors with podSelector, so that the
// rest of them can be compared across label schemes.
func replaceSelectors(t *testing.T, source string, objs objects) {
	t.Helper()
	d := objs["Deployment"]
	sel := asMap(must(lookup(d, "spec.selector.matchLabels")))
	pods := asMap(must(lookup(d, "spec.template.metadata.labels")))
	if len(sel) == 0 {
		t.Fatalf("%s: the Deployment has no spec.selector.matchLabels", source)
	}
	for k, v := range sel {
		if pods[k] != v {
			t.Errorf("%s: the Deployment's selector %v does not select its pods %v", source, sel, pods)
		}
	}
	replace := func(where string, m map[string]any, key string) {
		if want := map[string]any{"matchLabels": sel}; !reflect.DeepEqual(m[key], want) {
			t.Errorf("%s %s: %v, want the Deployment's selector %v", source, where, m[key], want)
		}
		m[key] = podSelector
	}
	tscs, _ := lookup(d, "spec.template.spec.topologySpreadConstraints")
	for i, c := range asList(tscs) {
		replace(fmt.Sprintf("topologySpreadConstraints[%d].labelSelector", i), asMap(c), "labelSelector")
	}
	if pdb, ok := objs["PodDisruptionBudget"]; ok {
		replace("PodDisruptionBudget spec.selector", asMap(pdb["spec"]), "selector")
	}
}

// must returns v, ignoring whether lookup found it (a nil v then fails
// the comparison that follows).
func must(v any, _ bool) any { return v }

// TestHelmChartMatchesManifests renders the chart with its defaults and
// compares what it deploys with deploy/kubernetes, so that the two cannot
// drift apart: a setting changed in one must be changed in the other.
func TestHelmChartMatchesManifests(t *testing.T) {
	chart := renderChart(t, chartRelease).objs
	manifests := kustomizeObjects(t)
	if got, want := slices.Sorted(maps.Keys(chart)), slices.Sorted(maps.Keys(manifests)); !slices.Equal(got, want) {
		t.Errorf("the chart renders %v, the manifests hold %v", got, want)
	}
	replaceSelectors(t, "chart", chart)
	replaceSelectors(t, "manifests", manifests)

	const (
		pod       = "spec.template.spec."
		container = pod + "containers[0]."
	)
	for _, c := range []struct{ kind, path string }{
		{"Deployment", "metadata.name"},
		{"Deployment", "spec.replicas"},
		{"Deployment", "spec.revisionHistoryLimit"},
		{"Deployment", "spec.minReadySeconds"},
		{"Deployment", "spec.strategy"},
		{"Deployment", pod + "terminationGracePeriodSeconds"},
		{"Deployment", pod + "enableServiceLinks"},
		{"Deployment", pod + "automountServiceAccountToken"},
		{"Deployment", pod + "securityContext"},
		{"Deployment", pod + "topologySpreadConstraints"},
		{"Deployment", pod + "volumes"},
		{"Deployment", container + "name"},
		{"Deployment", container + "image"},
		{"Deployment", container + "imagePullPolicy"},
		{"Deployment", container + "ports"},
		{"Deployment", container + "envFrom"},
		{"Deployment", container + "env"},
		{"Deployment", container + "livenessProbe"},
		{"Deployment", container + "readinessProbe"},
		{"Deployment", container + "resources"},
		{"Deployment", container + "securityContext"},
		{"Deployment", container + "volumeMounts"},
		{"ConfigMap", "metadata.name"},
		{"ConfigMap", "data"},
		{"PodDisruptionBudget", "metadata.name"},
		{"PodDisruptionBudget", "spec"},
		{"Service", "metadata.name"},
		{"Service", "spec.type"},
		{"Service", "spec.ports"},
		{"Service", "spec.publishNotReadyAddresses"},
	} {
		t.Run(c.kind+" "+c.path, func(t *testing.T) {
			want, inManifests := lookup(manifests[c.kind], c.path)
			got, inChart := lookup(chart[c.kind], c.path)
			if !inManifests || !inChart {
				t.Fatalf("in the manifests: %t, in the chart: %t", inManifests, inChart)
			}
			for _, d := range diff(c.kind+" "+c.path, want, got) {
				t.Error(d)
			}
		})
	}

	t.Run("Deployment pod annotations", func(t *testing.T) {
		want := asMap(must(lookup(manifests["Deployment"], "spec.template.metadata.annotations")))
		got := maps.Clone(asMap(must(lookup(chart["Deployment"], "spec.template.metadata.annotations"))))
		if sum := show(got["checksum/config"]); !regexp.MustCompile(`^"[0-9a-f]{64}"$`).MatchString(sum) {
			t.Errorf("checksum/config = %s, want the ConfigMap's SHA-256, so that a change of settings rolls the pods", sum)
		}
		delete(got, "checksum/config")
		for _, d := range diff("Deployment spec.template.metadata.annotations", want, got) {
			t.Error(d)
		}
	})
}

// TestHelmChartRenders renders the chart with other values and checks what
// they change.
func TestHelmChartRenders(t *testing.T) {
	defaults := renderChart(t, chartRelease)
	bigBuffer := filepath.Join(t.TempDir(), "values.yaml")
	// From a values file numbers arrive as floats, which a careless
	// template prints as 2e+05.
	if err := os.WriteFile(bigBuffer, []byte("env:\n  BUFFER_MAX_RECORDS: 200000\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name    string
		release string
		args    []string
		check   func(t *testing.T, r rendered)
	}{
		{
			name: "a fleet with a ServiceMonitor",
			args: []string{"--set", "serviceMonitor.enabled=true", "--set", "serviceMonitor.labels.release=prometheus"},
			check: func(t *testing.T, r rendered) {
				sm, ok := r.objs["ServiceMonitor"]
				if !ok {
					t.Fatal("no ServiceMonitor")
				}
				if v := sm["apiVersion"]; v != "monitoring.coreos.com/v1" {
					t.Errorf("ServiceMonitor apiVersion %v, want monitoring.coreos.com/v1", v)
				}
				for path, want := range map[string]string{
					"spec.endpoints[0].port":     "probe",
					"spec.endpoints[0].path":     "/metrics",
					"spec.endpoints[0].interval": "30s",
					"metadata.labels.release":    "prometheus",
				} {
					if got := lookupString(sm, path); got != want {
						t.Errorf("ServiceMonitor %s = %q, want %q", path, got, want)
					}
				}
				svc := r.objs["Service"]
				sel := asMap(must(lookup(sm, "spec.selector.matchLabels")))
				labels := asMap(must(lookup(svc, "metadata.labels")))
				if len(sel) == 0 {
					t.Error("the ServiceMonitor selects no Service")
				}
				for k, v := range sel {
					if labels[k] != v {
						t.Errorf("the ServiceMonitor's selector %v does not select the Service, labelled %v", sel, labels)
						break
					}
				}
				ports, _ := lookup(svc, "spec.ports")
				want := map[string]any{"name": "probe", "port": 8001, "targetPort": "probe", "protocol": "TCP"}
				if !slices.ContainsFunc(asList(ports), func(p any) bool { return reflect.DeepEqual(p, want) }) {
					t.Errorf("the Service's ports %v lack %v", ports, want)
				}
				if !hasContainerPort(r.objs, "probe", 8001) {
					t.Error("the container has no port probe 8001")
				}
				if lookupString(r.objs["ConfigMap"], "data.FLEET_GROUP") == "" {
					t.Error("no FLEET_GROUP: not a fleet")
				}
				loadConfig(t, "chart", chartEnv(t, r.objs))
			},
		},
		{
			name: "one replica, no fleet",
			args: []string{"--set", "fleet.enabled=false", "--set", "replicaCount=1"},
			check: func(t *testing.T, r rendered) {
				if n, _ := lookup(r.objs["Deployment"], "spec.replicas"); n != 1 {
					t.Errorf("replicas %v, want 1", n)
				}
				if _, ok := r.objs["PodDisruptionBudget"]; ok {
					t.Error("a PodDisruptionBudget with one replica: minAvailable 1 would block every drain")
				}
				for _, k := range []string{"FLEET_GROUP", "FLEET_TOPIC", "STANDBY_WINDOW", "FLEET_SESSION_TIMEOUT"} {
					if _, ok := lookup(r.objs["ConfigMap"], "data."+k); ok {
						t.Errorf("ConfigMap sets %s without fleet mode", k)
					}
				}
				if ports, _ := lookup(r.objs["Service"], "spec.ports"); len(asList(ports)) != 1 {
					t.Errorf("Service ports %v, want http only", ports)
				}
				loadConfig(t, "chart", chartEnv(t, r.objs))
			},
		},
		{
			name: "a Secret made by the chart, SASL",
			args: []string{
				"--set", "secret.create=true", "--set", "secret.kafkaSaslPassword=s3cret-pw",
				"--set", "kafka.securityProtocol=SASL_SSL", "--set", "kafka.sasl.username=ingest",
			},
			check: func(t *testing.T, r rendered) {
				if bytes.Contains(r.raw, []byte("s3cret-pw")) {
					t.Error("the password is in the rendered objects in clear")
				}
				secret, ok := r.objs["Secret"]
				if !ok {
					t.Fatal("no Secret")
				}
				if name := lookupString(secret, "metadata.name"); name != chartRelease {
					t.Errorf("Secret %q, want %q", name, chartRelease)
				}
				if keys := slices.Sorted(maps.Keys(asMap(secret["data"]))); !slices.Equal(keys, []string{"KAFKA_SASL_PASSWORD"}) {
					t.Errorf("Secret keys %v, want KAFKA_SASL_PASSWORD alone (no STEAM_API_KEY was given)", keys)
				}
				checkSecretRefs(t, r.objs, chartRelease)
				env := chartEnv(t, r.objs)
				if env["KAFKA_SASL_PASSWORD"] != "s3cret-pw" || env["KAFKA_SASL_USERNAME"] != "ingest" || env["KAFKA_SASL_MECHANISM"] != "SCRAM-SHA-512" {
					t.Errorf("SASL settings: username %q, mechanism %q, password set %t", env["KAFKA_SASL_USERNAME"], env["KAFKA_SASL_MECHANISM"], env["KAFKA_SASL_PASSWORD"] != "")
				}
				loadConfig(t, "chart", env)
			},
		},
		{
			name: "an existing Secret",
			args: []string{"--set", "existingSecret=kafka-credentials"},
			check: func(t *testing.T, r rendered) {
				if _, ok := r.objs["Secret"]; ok {
					t.Error("a Secret is rendered")
				}
				checkSecretRefs(t, r.objs, "kafka-credentials")
			},
		},
		{
			name:    "another release",
			release: "prod",
			check: func(t *testing.T, r rendered) {
				const full = "prod-ingestion-service"
				for _, kind := range []string{"Deployment", "ConfigMap", "Service", "PodDisruptionBudget"} {
					if name := lookupString(r.objs[kind], "metadata.name"); name != full {
						t.Errorf("%s %q, want %q", kind, name, full)
					}
				}
				// Two releases on one Kafka cluster must not share a fleet.
				for k, want := range map[string]string{"FLEET_GROUP": full, "FLEET_TOPIC": full + "-leader"} {
					if got := lookupString(r.objs["ConfigMap"], "data."+k); got != want {
						t.Errorf("%s = %q, want %q", k, got, want)
					}
				}
				if sel := asMap(must(lookup(r.objs["Deployment"], "spec.selector.matchLabels"))); sel["app.kubernetes.io/instance"] != "prod" {
					t.Errorf("selector %v, want app.kubernetes.io/instance prod", sel)
				}
				checkSecretRefs(t, r.objs, full)
			},
		},
		{
			name: "extra settings, a websocket source",
			args: []string{"-f", bigBuffer, "--set", "source=websocket", "--set", "env.OPENDOTA_STREAM_URL=wss://stream.example.com/matches"},
			check: func(t *testing.T, r rendered) {
				data := asMap(r.objs["ConfigMap"]["data"])
				for k, want := range map[string]string{
					"BUFFER_MAX_RECORDS":  "200000",
					"SOURCE":              "websocket",
					"OPENDOTA_STREAM_URL": "wss://stream.example.com/matches",
				} {
					if data[k] != want {
						t.Errorf("ConfigMap %s = %s, want %q", k, show(data[k]), want)
					}
				}
				const sum = "spec.template.metadata.annotations"
				before := asMap(must(lookup(defaults.objs["Deployment"], sum)))["checksum/config"]
				after := asMap(must(lookup(r.objs["Deployment"], sum)))["checksum/config"]
				if before == after {
					t.Errorf("checksum/config %v did not change with the settings: the pods would not roll", after)
				}
				loadConfig(t, "chart", chartEnv(t, r.objs))
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			release := c.release
			if release == "" {
				release = chartRelease
			}
			c.check(t, renderChart(t, release, c.args...))
		})
	}
}

// hasContainerPort reports whether the Deployment's container has the
// named port.
func hasContainerPort(objs objects, name string, port int) bool {
	ports, _ := lookup(objs["Deployment"], "spec.template.spec.containers[0].ports")
	return slices.ContainsFunc(asList(ports), func(p any) bool {
		return asMap(p)["name"] == name && asMap(p)["containerPort"] == port
	})
}

// checkSecretRefs checks that the container reads both secrets, optional,
// from the Secret named name.
func checkSecretRefs(t *testing.T, objs objects, name string) {
	t.Helper()
	env, _ := lookup(objs["Deployment"], "spec.template.spec.containers[0].env")
	for _, key := range []string{"STEAM_API_KEY", "KAFKA_SASL_PASSWORD"} {
		i := slices.IndexFunc(asList(env), func(e any) bool { return asMap(e)["name"] == key })
		if i < 0 {
			t.Errorf("no %s in env", key)
			continue
		}
		ref := asMap(must(lookup(asList(env)[i], "valueFrom.secretKeyRef")))
		want := map[string]any{"name": name, "key": key, "optional": true}
		if !reflect.DeepEqual(ref, want) {
			t.Errorf("%s: secretKeyRef %v, want %v", key, ref, want)
		}
	}
}

// chartEnv returns the environment the chart's container would see: the
// ConfigMap, the Secret's keys when the chart makes it, and a pod's name as
// KAFKA_CLIENT_ID.
func chartEnv(t *testing.T, objs objects) map[string]string {
	t.Helper()
	env := map[string]string{}
	for k, v := range asMap(objs["ConfigMap"]["data"]) {
		s, ok := v.(string)
		if !ok {
			t.Errorf("ConfigMap %s = %v, not a string", k, v)
		}
		env[k] = s
	}
	if secret, ok := objs["Secret"]; ok {
		for k, v := range asMap(secret["data"]) {
			s, _ := v.(string)
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatalf("Secret %s: %v", k, err)
			}
			env[k] = string(b)
		}
	}
	env["KAFKA_CLIENT_ID"] = chartRelease + "-7d9c5b6f4-x2x9q"
	return env
}

// TestHelmChartRefusesValues renders the chart with values that cannot
// work and checks that helm refuses each, naming the problem: the schema
// (values.schema.json) refuses wrong types, names and shapes, the templates
// combinations of values.
func TestHelmChartRefusesValues(t *testing.T) {
	helmArgv(t) // compile helm before the parallel subtests
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"no replicas", []string{"--set", "replicaCount=0"}, []string{"/replicaCount", "minimum"}},
		{"an unknown source", []string{"--set", "source=kafka"}, []string{"/source", "'opendota-logs'"}},
		{"logs in XML", []string{"--set", "logFormat=xml"}, []string{"/logFormat", "'json', 'text'"}},
		{"an unknown log level", []string{"--set", "logLevel=TRACE"}, []string{"/logLevel", "must be one of"}},
		{"an unknown top-level key", []string{"--set", "replicas=3"}, []string{"additional properties 'replicas' not allowed"}},
		{"an unknown fleet key", []string{"--set", "fleet.group_id=x"}, []string{"/fleet", "'group_id'"}},
		{"an unknown security protocol", []string{"--set", "kafka.securityProtocol=TLS"}, []string{"/kafka/securityProtocol", "SASL_SSL"}},
		{"an unknown SASL mechanism", []string{"--set", "kafka.sasl.mechanism=GSSAPI"}, []string{"/kafka/sasl/mechanism", "SCRAM-SHA-512"}},
		{"a duration in words", []string{"--set", "fleet.standbyWindow=30 seconds"}, []string{"/fleet/standbyWindow", "does not match pattern"}},
		{"a duration without unit", []string{"--set", "shutdownTimeout=30"}, []string{"/shutdownTimeout", "want string"}},
		{"a lower-case setting", []string{"--set", "env.log_level=debug"}, []string{"/env", "'log_level'"}},
		{"a relative spool", []string{"--set", "spool.dir=spool"}, []string{"/spool/dir", "does not match pattern"}},
		{"two replicas without a fleet", []string{"--set", "fleet.enabled=false"}, []string{"fleet.enabled is false", "replicaCount must be 1"}},
		{"a grace period under the shutdown timeout", []string{"--set", "terminationGracePeriodSeconds=20"}, []string{"terminationGracePeriodSeconds (20)", "shutdownTimeout (30s)"}},
		{"a grace period equal to the shutdown timeout", []string{"--set", "shutdownTimeout=1m30s", "--set", "terminationGracePeriodSeconds=90"}, []string{"terminationGracePeriodSeconds (90)", "shutdownTimeout (1m30s)"}},
		{"a standby window within the session timeout", []string{"--set", "fleet.standbyWindow=10s"}, []string{"fleet.standbyWindow (10s)", "fleet.sessionTimeout (10s)"}},
		{"a spool as large as its volume", []string{"--set", "spool.maxBytes=1GiB"}, []string{"spool.maxBytes (1GiB)", "spool.sizeLimit (1Gi)"}},
		{"the probe port on the API port", []string{"--set", "api.probePort=8000"}, []string{"api.probePort (8000)", "api.port"}},
		{"a setting the values own", []string{"--set", "env.API_PORT=9000"}, []string{"env.API_PORT", "api.port"}},
		{"a secret in the ConfigMap", []string{"--set", "env.KAFKA_SASL_PASSWORD=pw"}, []string{"env.KAFKA_SASL_PASSWORD", "secret.kafkaSaslPassword"}},
		{"SASL without a user name", []string{"--set", "kafka.securityProtocol=SASL_SSL"}, []string{"kafka.sasl.username is required"}},
		{"a websocket source without a stream", []string{"--set", "source=websocket"}, []string{"env.OPENDOTA_STREAM_URL"}},
		{"two Secrets", []string{"--set", "existingSecret=x", "--set", "secret.create=true", "--set", "secret.steamApiKey=k"}, []string{"existingSecret", "secret.create"}},
		{"a budget that blocks drains", []string{"--set", "podDisruptionBudget.minAvailable=2"}, []string{"podDisruptionBudget.minAvailable (2)", "replicaCount (2)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := runHelm(t, append([]string{"template", chartRelease, chartDir}, c.args...)...)
			if err == nil {
				t.Fatalf("helm template %s succeeded:\n%s", strings.Join(c.args, " "), out)
			}
			for _, w := range c.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("helm template %s: the error does not say %q:\n%s", strings.Join(c.args, " "), w, stderr)
				}
			}
		})
	}
}

// TestHelmLint runs helm lint on the chart: with its defaults, strictly
// (warnings fail), and with a value the schema refuses, which must fail.
func TestHelmLint(t *testing.T) {
	helmArgv(t)
	for _, c := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", nil, true},
		{"strict", []string{"--strict"}, true},
		{"strict, a ServiceMonitor, a Secret", []string{"--strict", "--set", "serviceMonitor.enabled=true", "--set", "secret.create=true", "--set", "secret.steamApiKey=k"}, true},
		{"strict, no replicas", []string{"--strict", "--set", "replicaCount=0"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := runHelm(t, append([]string{"lint", chartDir}, c.args...)...)
			if (err == nil) != c.ok {
				t.Errorf("helm lint %s: error %v, want success %t\n%s%s", strings.Join(c.args, " "), err, c.ok, out, stderr)
			}
			if c.ok && !bytes.Contains(out, []byte("0 chart(s) failed")) {
				t.Errorf("helm lint %s:\n%s%s", strings.Join(c.args, " "), out, stderr)
			}
		})
	}
}
