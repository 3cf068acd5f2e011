package deploy

import (
	"bufio"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

var dashboardPath = filepath.Join("grafana", "ingestion-service.json")

// runtimeMetrics are the Go runtime and process metrics the dashboard may
// use, with their types. TestRuntimeMetricsAllowList checks each against
// the collectors the service registers (cmd/ingestion-service/serve.go).
var runtimeMetrics = map[string]string{
	"process_resident_memory_bytes": "gauge",
	"process_virtual_memory_bytes":  "gauge",
	"process_cpu_seconds_total":     "counter",
	"process_open_fds":              "gauge",
	"process_max_fds":               "gauge",
	"process_start_time_seconds":    "gauge",
	"go_goroutines":                 "gauge",
	"go_threads":                    "gauge",
	"go_gc_duration_seconds":        "summary",
	"go_memstats_heap_inuse_bytes":  "gauge",
	"go_memstats_heap_alloc_bytes":  "gauge",
	"go_gc_gomemlimit_bytes":        "gauge",
	"go_gc_gogc_percent":            "gauge",
}

// requiredMetrics must each be queried by some panel: the dashboard's
// reason to exist.
var requiredMetrics = []string{
	"ingestion_frames_received_total",
	"ingestion_matches_accepted_total",
	"ingestion_matches_published_total",
	"ingestion_frames_rejected_total",
	"ingestion_publish_errors_total",
	"ingestion_buffer_records",
	"ingestion_inflight_records",
	"ingestion_spool_records",
	"ingestion_oldest_unacked_seconds",
	"ingestion_produce_latency_seconds_bucket",
	"ingestion_kafka_ready",
	"ingestion_stream_connected",
	"ingestion_stream_reconnects_total",
	"ingestion_fleet_leader",
	"ingestion_fleet_promotions_total",
	"ingestion_standby_window_records",
	"ingestion_steam_position",
	"ingestion_steam_lag",
	"process_resident_memory_bytes",
	"process_cpu_seconds_total",
}

// The parts of a Grafana dashboard the tests read.
type (
	grafanaDashboard struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []grafanaPanel
		Templating    struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Query      json.RawMessage `json:"query"`
				Definition string          `json:"definition"`
				Datasource *datasourceRef  `json:"datasource"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name       string         `json:"name"`
				BuiltIn    int            `json:"builtIn"`
				Expr       string         `json:"expr"`
				Datasource *datasourceRef `json:"datasource"`
			} `json:"list"`
		} `json:"annotations"`
	}
	grafanaPanel struct {
		ID         *int           `json:"id"`
		Type       string         `json:"type"`
		Title      string         `json:"title"`
		Datasource *datasourceRef `json:"datasource"`
		GridPos    struct {
			H, W, X, Y int
		} `json:"gridPos"`
		Targets []struct {
			RefID      string         `json:"refId"`
			Expr       string         `json:"expr"`
			Datasource *datasourceRef `json:"datasource"`
		} `json:"targets"`
		// Panels are those of a collapsed row.
		Panels []grafanaPanel `json:"panels"`
	}
	datasourceRef struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
)

// query is one PromQL expression of the dashboard and where it is.
type query struct{ where, expr string }

func readDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) {
		t.Fatalf("%s is not valid JSON", dashboardPath)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// allPanels returns every panel, rows and the panels of collapsed rows
// included.
func (d grafanaDashboard) allPanels() []grafanaPanel {
	var out []grafanaPanel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// queries returns every PromQL expression: panel targets, annotation
// queries and template variable queries.
func (d grafanaDashboard) queries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, query{"panel " + p.Title + " " + tg.RefID, tg.Expr})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out = append(out, query{"annotation " + a.Name, a.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q.Query); err != nil {
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Fatalf("variable %s: query is neither a string nor an object: %v", v.Name, err)
			}
		}
		out = append(out, query{"variable " + v.Name, q.Query})
	}
	return out
}

// readmeMetrics parses docs/operations.md's Metrics table: the rows that start with
// "| `ingestion_", name (labels cut off) and type.
func readmeMetrics(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `ingestion_") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		name, _, _ = strings.Cut(name, "{")
		out[name] = strings.TrimSpace(cells[2])
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("docs/operations.md: only %d metrics found in the Metrics table; has its format changed?", len(out))
	}
	return out
}

var metricName = regexp.MustCompile(`\b(?:ingestion|process|go)_[a-z0-9_]+`)

// knownMetric reports whether name is a series the service exports: a
// documented metric, a fleet metric, an allowed runtime metric, or a
// histogram's _bucket, _sum or _count series (a summary's _sum or _count).
func knownMetric(name string, types map[string]string) bool {
	if _, ok := types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch types[base] {
		case "histogram":
			return true
		case "summary":
			return suffix != "_bucket"
		}
	}
	return false
}

// balanced reports whether the brackets of a PromQL expression pair up,
// outside string literals.
func balanced(expr string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inString := false
	for i, r := range expr {
		switch {
		case r == '"' && (i == 0 || expr[i-1] != '\\'):
			inString = !inString
		case inString:
		case r == '(' || r == '[' || r == '{':
			stack = append(stack, r)
		case pairs[r] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0 && !inString
}

var variableRef = regexp.MustCompile(`\$(?:\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|([A-Za-z0-9_]+))`)

func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	types := readmeMetrics(t)
	maps.Copy(types, runtimeMetrics)
	queries := d.queries(t)

	t.Run("identity", func(t *testing.T) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
		}
		if d.SchemaVersion < 36 {
			t.Errorf("schemaVersion %d: want 36 or later", d.SchemaVersion)
		}
	})

	t.Run("panel ids are unique", func(t *testing.T) {
		seen := map[int]string{}
		for _, p := range d.allPanels() {
			if p.ID == nil {
				t.Errorf("panel %q has no id", p.Title)
				continue
			}
			if other, dup := seen[*p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", other, p.Title, *p.ID)
			}
			seen[*p.ID] = p.Title
		}
	})

	t.Run("every panel has a query", func(t *testing.T) {
		n := 0
		for _, p := range d.allPanels() {
			if p.Type == "row" {
				continue
			}
			n++
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no target", p.Title)
			}
			refIDs := map[string]bool{}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" || refIDs[tg.RefID] {
					t.Errorf("panel %q: target %q: want a non-empty expr and a refId of its own", p.Title, tg.RefID)
				}
				refIDs[tg.RefID] = true
			}
		}
		if n == 0 {
			t.Fatal("no panels")
		}
	})

	t.Run("datasource is a variable", func(t *testing.T) {
		var dsVar string
		for _, v := range d.Templating.List {
			if v.Type == "datasource" && strings.Contains(string(v.Query), "prometheus") {
				dsVar = v.Name
			}
		}
		if dsVar == "" {
			t.Fatal("no Prometheus datasource variable")
		}
		want := map[string]bool{"${" + dsVar + "}": true, "$" + dsVar: true}
		check := func(where string, ds *datasourceRef) {
			if ds == nil || !want[ds.UID] {
				t.Errorf("%s: datasource %+v, want uid ${%s}", where, ds, dsVar)
			}
		}
		for _, p := range d.allPanels() {
			if p.Type == "row" {
				continue
			}
			check("panel "+p.Title, p.Datasource)
			for _, tg := range p.Targets {
				check("panel "+p.Title+" target "+tg.RefID, tg.Datasource)
			}
		}
		for _, a := range d.Annotations.List {
			if a.BuiltIn == 0 {
				check("annotation "+a.Name, a.Datasource)
			}
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				check("variable "+v.Name, v.Datasource)
			}
		}
	})

	t.Run("variables are defined", func(t *testing.T) {
		defined := map[string]bool{"__rate_interval": true, "__interval": true, "__range": true}
		for _, v := range d.Templating.List {
			defined[v.Name] = true
		}
		for _, q := range queries {
			for _, m := range variableRef.FindAllStringSubmatch(q.expr, -1) {
				if name := m[1] + m[2]; !defined[name] {
					t.Errorf("%s: $%s is not a dashboard variable", q.where, name)
				}
			}
		}
	})

	t.Run("brackets pair up", func(t *testing.T) {
		for _, q := range queries {
			if !balanced(q.expr) {
				t.Errorf("%s: unbalanced brackets in %s", q.where, q.expr)
			}
		}
	})

	t.Run("metrics exist", func(t *testing.T) {
		for _, q := range queries {
			names := metricName.FindAllString(q.expr, -1)
			if len(names) == 0 {
				t.Errorf("%s: no metric in %s", q.where, q.expr)
			}
			for _, name := range names {
				if !knownMetric(name, types) {
					t.Errorf("%s: %s is neither in docs/operations.md's Metrics table, a fleet metric, nor an allowed go_/process_ metric", q.where, name)
				}
			}
		}
	})

	t.Run("key metrics are shown", func(t *testing.T) {
		used := map[string]bool{}
		quantile := false
		for _, q := range queries {
			for _, name := range metricName.FindAllString(q.expr, -1) {
				used[name] = true
			}
			if strings.Contains(q.expr, "histogram_quantile(") && strings.Contains(q.expr, "ingestion_produce_latency_seconds_bucket") {
				quantile = true
			}
		}
		for _, name := range requiredMetrics {
			if !used[name] {
				t.Errorf("no panel queries %s", name)
			}
		}
		if !quantile {
			t.Error("no histogram_quantile over ingestion_produce_latency_seconds_bucket")
		}
	})

	t.Run("layout", func(t *testing.T) {
		type rect struct {
			title      string
			x, y, w, h int
		}
		var placed []rect
		for _, p := range d.Panels {
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v is outside the 24-column grid", p.Title, g)
			}
			for _, o := range placed {
				if g.X < o.x+o.w && o.x < g.X+g.W && g.Y < o.y+o.h && o.y < g.Y+g.H {
					t.Errorf("panels %q and %q overlap", o.title, p.Title)
				}
			}
			placed = append(placed, rect{p.Title, g.X, g.Y, g.W, g.H})
		}
	})
}

// TestRuntimeMetricsAllowList checks that every go_ and process_ metric the
// dashboard may use is exported by the collectors the service registers,
// with the type the allow-list says.
func TestRuntimeMetricsAllowList(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range families {
		got[f.GetName()] = f.GetType().String()
	}
	for _, name := range slices.Sorted(maps.Keys(runtimeMetrics)) {
		if strings.HasPrefix(name, "process_") && runtime.GOOS != "linux" {
			continue // the process collector's set depends on the platform
		}
		typ, ok := got[name]
		if !ok {
			t.Errorf("%s is not exported by the Go and process collectors", name)
			continue
		}
		if want := runtimeMetrics[name]; !strings.EqualFold(typ, want) {
			t.Errorf("%s is a %s, not a %s", name, strings.ToLower(typ), want)
		}
	}
}
