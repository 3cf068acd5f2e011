package deploy

import (
	"encoding/base64"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The parts of the Kubernetes objects the tests read.
type (
	k8sObject struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Metadata   metadata `yaml:"metadata"`
	}
	metadata struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	labelSelector struct {
		MatchLabels      map[string]string `yaml:"matchLabels"`
		MatchExpressions []yaml.Node       `yaml:"matchExpressions"`
	}
	deployment struct {
		Spec struct {
			Replicas *int          `yaml:"replicas"`
			Selector labelSelector `yaml:"selector"`
			Template struct {
				Metadata metadata `yaml:"metadata"`
				Spec     podSpec  `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	podSpec struct {
		TerminationGracePeriodSeconds *int64 `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               struct {
			RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
			RunAsUser    *int64 `yaml:"runAsUser"`
		} `yaml:"securityContext"`
		TopologySpreadConstraints []struct {
			MaxSkew           int           `yaml:"maxSkew"`
			TopologyKey       string        `yaml:"topologyKey"`
			WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
			LabelSelector     labelSelector `yaml:"labelSelector"`
		} `yaml:"topologySpreadConstraints"`
		Affinity struct {
			PodAntiAffinity struct {
				Required []struct {
					TopologyKey   string        `yaml:"topologyKey"`
					LabelSelector labelSelector `yaml:"labelSelector"`
				} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
			} `yaml:"podAntiAffinity"`
		} `yaml:"affinity"`
		Containers []container `yaml:"containers"`
		Volumes    []volume    `yaml:"volumes"`
	}
	volume struct {
		Name     string `yaml:"name"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
		Ephemeral             *yaml.Node `yaml:"ephemeral"`
		PersistentVolumeClaim *yaml.Node `yaml:"persistentVolumeClaim"`
	}
	volumeMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}
	container struct {
		Name  string `yaml:"name"`
		Image string `yaml:"image"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		EnvFrom []struct {
			ConfigMapRef *struct {
				Name string `yaml:"name"`
			} `yaml:"configMapRef"`
			SecretRef *struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		Env []struct {
			Name      string  `yaml:"name"`
			Value     *string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef    *keyRef    `yaml:"secretKeyRef"`
				ConfigMapKeyRef *keyRef    `yaml:"configMapKeyRef"`
				FieldRef        *yaml.Node `yaml:"fieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext struct {
			RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
			ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
		VolumeMounts []volumeMount `yaml:"volumeMounts"`
	}
	keyRef struct {
		Name     string `yaml:"name"`
		Key      string `yaml:"key"`
		Optional bool   `yaml:"optional"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	keyValues struct {
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
	}
	service struct {
		Spec struct {
			Type     string            `yaml:"type"`
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	podDisruptionBudget struct {
		Spec struct {
			MinAvailable   string        `yaml:"minAvailable"`
			MaxUnavailable string        `yaml:"maxUnavailable"`
			Selector       labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}
	kustomization struct {
		Resources []string         `yaml:"resources"`
		Images    []kustomizeImage `yaml:"images"`
	}
	kustomizeImage struct {
		Name string `yaml:"name"`
	}
)

// manifests are the Kubernetes objects of deploy/kubernetes, one of each.
type manifests struct {
	kustomization     kustomization
	deployment        deployment
	deploymentName    string
	configMap         keyValues
	configMapName     string
	secret            keyValues
	secretName        string
	service           service
	pdb               podDisruptionBudget
	kustomizationPath string
}

const (
	k8sDir        = "kubernetes"
	secretExample = "secret.example.yaml"
)

// readManifests reads the resources kustomization.yaml lists, and the
// example Secret, which it deliberately does not.
func readManifests(t *testing.T) manifests {
	t.Helper()
	m := manifests{kustomizationPath: filepath.Join(k8sDir, "kustomization.yaml")}
	docs := readDocuments(t, m.kustomizationPath)
	if len(docs) != 1 {
		t.Fatalf("%s: %d documents, want 1", m.kustomizationPath, len(docs))
	}
	m.kustomization = decode[kustomization](t, m.kustomizationPath, docs[0])
	seen := map[string]string{}
	files := slices.Clone(m.kustomization.Resources)
	if !slices.Contains(files, secretExample) {
		files = append(files, secretExample) // TestKustomization reports it otherwise
	}
	for _, file := range files {
		path := filepath.Join(k8sDir, file)
		for _, doc := range readDocuments(t, path) {
			obj := decode[k8sObject](t, path, doc)
			if prev, dup := seen[obj.Kind]; dup {
				t.Fatalf("%s: a second %s (the first is in %s)", path, obj.Kind, prev)
			}
			seen[obj.Kind] = path
			switch obj.Kind {
			case "Deployment":
				m.deployment, m.deploymentName = decode[deployment](t, path, doc), obj.Metadata.Name
			case "ConfigMap":
				m.configMap, m.configMapName = decode[keyValues](t, path, doc), obj.Metadata.Name
			case "Secret":
				m.secret, m.secretName = decode[keyValues](t, path, doc), obj.Metadata.Name
			case "Service":
				m.service = decode[service](t, path, doc)
			case "PodDisruptionBudget":
				m.pdb = decode[podDisruptionBudget](t, path, doc)
			}
		}
	}
	for _, kind := range []string{"Deployment", "ConfigMap", "Secret", "Service", "PodDisruptionBudget"} {
		if _, ok := seen[kind]; !ok {
			t.Fatalf("no %s in %s", kind, k8sDir)
		}
	}
	return m
}

// container returns the Deployment's one container.
func (m manifests) container(t *testing.T) container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(cs))
	}
	return cs[0]
}

// secretValues returns the Secret's keys and values, decoding data.
func (m manifests) secretValues(t *testing.T) map[string]string {
	t.Helper()
	out := maps.Clone(m.secret.StringData)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range m.secret.Data {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatalf("Secret data %s: %v", k, err)
		}
		out[k] = string(b)
	}
	return out
}

// envNames returns every variable name the Deployment's container gets:
// its env entries and the keys of what envFrom imports.
func (m manifests) envNames(t *testing.T) []string {
	t.Helper()
	c := m.container(t)
	var names []string
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			names = append(names, slices.Collect(maps.Keys(m.configMap.Data))...)
		case from.SecretRef != nil:
			names = append(names, slices.Collect(maps.Keys(m.secretValues(t)))...)
		}
	}
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	return names
}

// podEnv returns the environment the container would see, with the example
// Secret's placeholders standing in for the real values, and checks that
// every reference resolves.
func (m manifests) podEnv(t *testing.T) map[string]string {
	t.Helper()
	c := m.container(t)
	secrets := m.secretValues(t)
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			if from.ConfigMapRef.Name != m.configMapName {
				t.Errorf("envFrom names ConfigMap %q; configmap.yaml defines %q", from.ConfigMapRef.Name, m.configMapName)
			}
			maps.Copy(env, m.configMap.Data)
		case from.SecretRef != nil:
			if from.SecretRef.Name != m.secretName {
				t.Errorf("envFrom names Secret %q; %s defines %q", from.SecretRef.Name, secretExample, m.secretName)
			}
			maps.Copy(env, secrets)
		}
	}
	// env entries win over envFrom, as in Kubernetes.
	for _, e := range c.Env {
		switch {
		case e.Value != nil:
			env[e.Name] = *e.Value
		case e.ValueFrom == nil:
			env[e.Name] = ""
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := secrets[ref.Key]
			if ref.Name != m.secretName || !ok {
				t.Errorf("%s: secretKeyRef %s/%s is not in %s", e.Name, ref.Name, ref.Key, secretExample)
			}
			env[e.Name] = v
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := m.configMap.Data[ref.Key]
			if ref.Name != m.configMapName || !ok {
				t.Errorf("%s: configMapKeyRef %s/%s is not in configmap.yaml", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			env[e.Name] = "ingestion-service-7d9c5b6f4-x2x9q" // a pod name
		}
	}
	return env
}

// intOrUnset prints an optional integer.
func intOrUnset(p *int) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(*p)
}

// podLabels returns the Deployment's pod template labels.
func (m manifests) podLabels() map[string]string { return m.deployment.Spec.Template.Metadata.Labels }

// selects reports whether a label selector with matchLabels only selects
// pods with these labels.
func selects(t *testing.T, what string, sel labelSelector, labels map[string]string) bool {
	t.Helper()
	if len(sel.MatchExpressions) > 0 {
		t.Fatalf("%s: matchExpressions are not supported by this test", what)
	}
	return len(sel.MatchLabels) > 0 && matches(sel.MatchLabels, labels)
}

// matches reports whether every key of want is in labels with its value.
func matches(want, labels map[string]string) bool {
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// containerPort resolves a probe's or a Service's port, a number or a
// container port's name, to the container port's number.
func containerPort(t *testing.T, c container, port string) int {
	t.Helper()
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return p.ContainerPort
		}
	}
	t.Fatalf("port %q is not a container port of %s", port, c.Name)
	return 0
}

// parseQuantity reads a Kubernetes resource quantity: 50m, 64Mi, 1Gi, 2.
func parseQuantity(s string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"m", 1e-3},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseFloat(num, 64)
			return n * u.mult, err
		}
	}
	return strconv.ParseFloat(s, 64)
}

func mustQuantity(t *testing.T, what, s string) float64 {
	t.Helper()
	q, err := parseQuantity(s)
	if err != nil || q <= 0 {
		t.Fatalf("%s: %q is not a positive quantity", what, s)
	}
	return q
}

// serve answers one GET on the service's real HTTP handler.
func serve(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}
