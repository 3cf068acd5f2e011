package deploy

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dota-data/ingestion-service/internal/httpapi"
)

func TestKustomization(t *testing.T) {
	m := readManifests(t)
	entries, err := os.ReadDir(k8sDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if filepath.Ext(name) != ".yaml" || name == "kustomization.yaml" {
			continue
		}
		listed := slices.Contains(m.kustomization.Resources, name)
		if name == secretExample && listed {
			t.Errorf("%s lists %s: applying it would overwrite the real Secret with placeholders", m.kustomizationPath, name)
		}
		if name != secretExample && !listed {
			t.Errorf("%s does not list %s", m.kustomizationPath, name)
		}
	}
	image := m.container(t).Image
	if !slices.ContainsFunc(m.kustomization.Images, func(i kustomizeImage) bool { return i.Name == image }) {
		t.Errorf("%s has no images entry for the container image %q", m.kustomizationPath, image)
	}
}

func TestDeployment(t *testing.T) {
	m := readManifests(t)
	spec := m.deployment.Spec.Template.Spec
	c := m.container(t)
	env := m.podEnv(t)
	cfg := loadConfig(t, "Deployment", env)

	t.Run("two replicas", func(t *testing.T) {
		if r := m.deployment.Spec.Replicas; r == nil || *r != 2 {
			t.Errorf("replicas = %s, want 2", intOrUnset(r))
		}
	})

	t.Run("selector matches the pods", func(t *testing.T) {
		if !selects(t, "Deployment selector", m.deployment.Spec.Selector, m.podLabels()) {
			t.Errorf("selector %v does not select the pod labels %v", m.deployment.Spec.Selector.MatchLabels, m.podLabels())
		}
	})

	t.Run("fleet mode", func(t *testing.T) {
		checkFleetSettings(t, "Deployment", env)
	})

	t.Run("probes", func(t *testing.T) {
		if len(c.Ports) == 0 || c.Ports[0].ContainerPort != cfg.API.Port || cfg.API.Port != 8000 {
			t.Errorf("container ports %+v, API_PORT %d: want 8000 for both", c.Ports, cfg.API.Port)
		}
		for _, p := range []struct {
			name  string
			probe *probe
			path  string
		}{
			{"liveness", c.LivenessProbe, "/api/v1/health"},
			{"readiness", c.ReadinessProbe, "/api/v1/ready"},
		} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("no %s httpGet probe", p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s probe path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
			}
			if port := containerPort(t, c, p.probe.HTTPGet.Port); port != cfg.API.ProbePort || port == cfg.API.Port {
				t.Errorf("%s probe port %d, want API_PROBE_PORT %d: the listener flooding clients of API_PORT %d cannot crowd", p.name, port, cfg.API.ProbePort, cfg.API.Port)
			}
		}
	})

	t.Run("probe paths are served", func(t *testing.T) {
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
			t.Fatal("no httpGet probes")
		}
		h := httpapi.NewProbeHandler(httpapi.Options{})
		if code := serve(h, "/api/v1/no-such-route"); code != http.StatusNotFound {
			t.Fatalf("an unknown path answered %d, want 404: this check cannot tell a route from none", code)
		}
		if code := serve(h, c.LivenessProbe.HTTPGet.Path); code != http.StatusOK {
			t.Errorf("GET %s (liveness) answered %d, want 200", c.LivenessProbe.HTTPGet.Path, code)
		}
		if code := serve(h, c.ReadinessProbe.HTTPGet.Path); code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("GET %s (readiness) answered %d, want 200 or 503", c.ReadinessProbe.HTTPGet.Path, code)
		}
	})

	t.Run("scrape annotations", func(t *testing.T) {
		a := m.deployment.Spec.Template.Metadata.Annotations
		if a["prometheus.io/scrape"] != "true" {
			t.Errorf("prometheus.io/scrape = %q, want \"true\"", a["prometheus.io/scrape"])
		}
		if a["prometheus.io/port"] != strconv.Itoa(cfg.API.ProbePort) {
			t.Errorf("prometheus.io/port = %q, want API_PROBE_PORT %d", a["prometheus.io/port"], cfg.API.ProbePort)
		}
		path := a["prometheus.io/path"]
		if path != "/metrics" {
			t.Errorf("prometheus.io/path = %q, want /metrics", path)
		}
		// The service serves /metrics from its registry; any registry will do.
		metrics := promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})
		if code := serve(httpapi.NewHandler(httpapi.Options{Metrics: metrics}), path); code != http.StatusOK {
			t.Errorf("GET %s answered %d, want 200", path, code)
		}
	})

	t.Run("resources", func(t *testing.T) {
		req, lim := c.Resources.Requests, c.Resources.Limits
		for _, r := range []struct {
			what string
			q    map[string]string
			name string
		}{{"requests", req, "cpu"}, {"requests", req, "memory"}, {"limits", lim, "memory"}} {
			if r.q[r.name] == "" {
				t.Errorf("no resources.%s.%s", r.what, r.name)
			}
		}
		if t.Failed() {
			return
		}
		mustQuantity(t, "cpu request", req["cpu"])
		request := mustQuantity(t, "memory request", req["memory"])
		limit := mustQuantity(t, "memory limit", lim["memory"])
		checkMemory(t, "Deployment", cfg, env, int64(request), int64(limit))
	})

	t.Run("graceful shutdown", func(t *testing.T) {
		grace := spec.TerminationGracePeriodSeconds
		if grace == nil {
			t.Fatal("no terminationGracePeriodSeconds (the default, 30s, is not above SHUTDOWN_TIMEOUT)")
		}
		if float64(*grace) <= cfg.ShutdownTimeout.Seconds() {
			t.Errorf("terminationGracePeriodSeconds %d is not above SHUTDOWN_TIMEOUT %s", *grace, cfg.ShutdownTimeout)
		}
	})

	t.Run("security", func(t *testing.T) {
		nonRoot := spec.SecurityContext.RunAsNonRoot
		if c.SecurityContext.RunAsNonRoot != nil {
			nonRoot = c.SecurityContext.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			t.Error("runAsNonRoot is not true")
		}
		// The image's user is a name (nonroot), which the kubelet cannot
		// check against runAsNonRoot without a numeric runAsUser.
		if u := spec.SecurityContext.RunAsUser; u == nil || *u == 0 {
			t.Error("no non-zero numeric runAsUser in the pod's securityContext")
		}
		if ro := c.SecurityContext.ReadOnlyRootFilesystem; ro == nil || !*ro {
			t.Error("readOnlyRootFilesystem is not true")
		}
		if ape := c.SecurityContext.AllowPrivilegeEscalation; ape == nil || *ape {
			t.Error("allowPrivilegeEscalation is not false")
		}
	})

	t.Run("spool volume", func(t *testing.T) {
		if !filepath.IsAbs(cfg.Spool.Dir) {
			t.Fatalf("SPOOL_DIR %q is relative: with a read-only root file system it must be a mounted volume", cfg.Spool.Dir)
		}
		if vols := readDockerfile(t).Volumes; !slices.Contains(vols, cfg.Spool.Dir) {
			t.Errorf("SPOOL_DIR %q is not the image's VOLUME %v", cfg.Spool.Dir, vols)
		}
		i := slices.IndexFunc(c.VolumeMounts, func(vm volumeMount) bool { return vm.MountPath == cfg.Spool.Dir })
		if i < 0 {
			t.Fatalf("nothing is mounted at SPOOL_DIR %s", cfg.Spool.Dir)
		}
		name := c.VolumeMounts[i].Name
		j := slices.IndexFunc(spec.Volumes, func(v volume) bool { return v.Name == name })
		if j < 0 {
			t.Fatalf("volume %q is mounted but not defined", name)
		}
		v := spec.Volumes[j]
		switch {
		case v.EmptyDir != nil:
			if v.EmptyDir.Medium == "Memory" {
				t.Error("the spool is on tmpfs: it would count against the memory limit")
			}
			if v.EmptyDir.SizeLimit != "" {
				size := mustQuantity(t, "emptyDir sizeLimit", v.EmptyDir.SizeLimit)
				if size <= float64(cfg.Spool.MaxBytes) {
					t.Errorf("emptyDir sizeLimit %s is not above SPOOL_MAX_BYTES (%d bytes): a full spool would get the pod evicted", v.EmptyDir.SizeLimit, cfg.Spool.MaxBytes)
				}
			}
		case v.Ephemeral != nil, v.PersistentVolumeClaim != nil:
		default:
			t.Errorf("volume %q is neither an emptyDir nor an ephemeral or persistent volume", name)
		}
	})

	t.Run("replicas on different nodes", func(t *testing.T) {
		const hostname = "kubernetes.io/hostname"
		for _, tsc := range spec.TopologySpreadConstraints {
			if tsc.TopologyKey == hostname && tsc.WhenUnsatisfiable == "DoNotSchedule" && tsc.MaxSkew == 1 &&
				selects(t, "topologySpreadConstraint", tsc.LabelSelector, m.podLabels()) {
				return
			}
		}
		for _, term := range spec.Affinity.PodAntiAffinity.Required {
			if term.TopologyKey == hostname && selects(t, "podAntiAffinity", term.LabelSelector, m.podLabels()) {
				return
			}
		}
		t.Errorf("no DoNotSchedule topologySpreadConstraint (maxSkew 1) or required podAntiAffinity on %s selecting the pods", hostname)
	})
}

func TestPodDisruptionBudget(t *testing.T) {
	m := readManifests(t)
	if !selects(t, "PodDisruptionBudget selector", m.pdb.Spec.Selector, m.podLabels()) {
		t.Errorf("selector %v does not select the pod labels %v", m.pdb.Spec.Selector.MatchLabels, m.podLabels())
	}
	if m.pdb.Spec.MinAvailable != "1" || m.pdb.Spec.MaxUnavailable != "" {
		t.Errorf("minAvailable %q, maxUnavailable %q: want minAvailable 1 only", m.pdb.Spec.MinAvailable, m.pdb.Spec.MaxUnavailable)
	}
	if r := m.deployment.Spec.Replicas; r != nil && *r <= 1 {
		t.Errorf("with %d replica(s) and minAvailable 1, no node could ever be drained", *r)
	}
}

func TestService(t *testing.T) {
	m := readManifests(t)
	c := m.container(t)
	s := m.service.Spec
	if s.Type != "" && s.Type != "ClusterIP" {
		t.Errorf("type %q, want ClusterIP", s.Type)
	}
	if len(s.Selector) == 0 || !matches(s.Selector, m.podLabels()) {
		t.Errorf("selector %v does not select the pod labels %v", s.Selector, m.podLabels())
	}
	if len(s.Ports) == 0 {
		t.Fatal("no ports")
	}
	for _, p := range s.Ports {
		target := p.TargetPort
		if target == "" {
			target = strconv.Itoa(p.Port)
		}
		if port := containerPort(t, c, target); port != 8000 {
			t.Errorf("port %d targets container port %d, want 8000", p.Port, port)
		}
	}
}

func TestConfigMapAndSecret(t *testing.T) {
	m := readManifests(t)
	for k := range m.configMap.Data {
		if v, ok := configVar(k); ok && v.Secret {
			t.Errorf("ConfigMap holds %s, a secret: put it in the Secret", k)
		}
	}
	values := m.secretValues(t)
	if len(values) == 0 {
		t.Fatalf("%s holds no keys", secretExample)
	}
	for k, v := range values {
		if cv, ok := configVar(k); !ok || !cv.Secret {
			t.Errorf("%s holds %s, which is not one of the service's secrets", secretExample, k)
		}
		if !strings.Contains(v, "REPLACE") {
			t.Errorf("%s: %s = %q does not look like a placeholder (want REPLACE in it)", secretExample, k, v)
		}
	}
}
