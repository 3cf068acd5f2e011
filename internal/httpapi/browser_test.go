//go:build unix

package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/health"
)

// browserRequiredEnv names the variable that turns a missing browser from a
// skip into a failure; CI sets it to 1.
const browserRequiredEnv = "BROWSER_TEST_REQUIRED"

// pageTimeout bounds one browser run; a page renders in a few seconds.
const pageTimeout = 30 * time.Second

// TestDocsRenderInABrowser loads /docs and /redoc in headless Chromium with
// every host but the loopback test server unresolvable, and checks the DOM
// left by the pages' scripts: it shows the API's title and the version
// given to the handler, and one operation for each method and path of
// /openapi.json. It also checks, from Chromium's network log, that the page
// requested /openapi.json and nothing outside the test server.
//
// The browser is $CHROMIUM, else chromium, chromium-browser or
// google-chrome on PATH. Without one the test is skipped, or fails when
// BROWSER_TEST_REQUIRED=1.
func TestDocsRenderInABrowser(t *testing.T) {
	browser := findBrowser(t)
	const version = "test"
	srv := newServer(t, Options{
		ServiceName: "ingestion-service",
		Version:     version,
		Checks:      []Check{{Name: "stream", Status: health.NewState("connecting").Status}},
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			_, _ = w.Write([]byte("ingestion_frames_received_total 0\n"))
		}),
	})
	title, want := specOperations(t, srv)

	tests := []struct {
		page string
		// heading captures the rendered title and version.
		heading *regexp.Regexp
		// operation captures the method and path of each rendered
		// operation.
		operation *regexp.Regexp
	}{
		{
			page:      "/docs",
			heading:   regexp.MustCompile(`<h2 class="title">([^<]*)<span><small><pre class="version">([^<]*)</pre>`),
			operation: regexp.MustCompile(`(?s)<div class="opblock opblock-(\w+)[ "].*?<span class="opblock-summary-path" data-path="([^"]*)"`),
		},
		{
			page:      "/redoc",
			heading:   regexp.MustCompile(`<h1[^>]*>([^<]*)<span>\(([^<]*)\)</span></h1>`),
			operation: regexp.MustCompile(`<span type="\w+" class="[^"]*\bhttp-verb (\w+)">\w+</span><span[^>]*>([^<]*)</span>`),
		},
	}
	for _, tt := range tests {
		t.Run(strings.TrimPrefix(tt.page, "/"), func(t *testing.T) {
			start := time.Now()
			run := renderPage(t, browser, srv.URL, tt.page)
			t.Logf("%s rendered in %v, DOM of %d bytes", tt.page, time.Since(start).Round(time.Millisecond), len(run.dom))
			defer func() {
				if t.Failed() {
					t.Logf("page text: %.600s", run.visibleText())
					t.Logf("browser output:\n%s", run.stderrTail())
				}
			}()

			m := tt.heading.FindStringSubmatch(run.dom)
			if m == nil {
				t.Errorf("no rendered title matching %s in the DOM", tt.heading)
			} else if got := [2]string{text(m[1]), text(m[2])}; got != [2]string{title, version} {
				t.Errorf("rendered title and version = %q, want %q", got, [2]string{title, version})
			}

			var got []string
			for _, m := range tt.operation.FindAllStringSubmatch(run.dom, -1) {
				got = append(got, strings.ToUpper(m[1])+" "+text(m[2]))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("rendered operations = %q, want those of /openapi.json %q", got, want)
			}

			if !slices.Contains(run.requests, srv.URL+"/openapi.json") {
				t.Errorf("page requested %q, want %s among them", run.requests, srv.URL+"/openapi.json")
			}
			for _, u := range run.requests {
				if !strings.HasPrefix(u, srv.URL+"/") {
					t.Errorf("page requested %s, outside the test server", u)
				}
			}
		})
	}
}

// findBrowser returns the path of a Chromium-based browser: $CHROMIUM if
// set, else the first of chromium, chromium-browser and google-chrome on
// PATH. When there is none it skips the test, or fails it if
// BROWSER_TEST_REQUIRED=1.
func findBrowser(t *testing.T) string {
	t.Helper()
	if path := os.Getenv("CHROMIUM"); path != "" {
		full, err := exec.LookPath(path)
		if err != nil {
			t.Fatalf("CHROMIUM=%s: %v", path, err)
		}
		return full
	}
	names := []string{"chromium", "chromium-browser", "google-chrome"}
	for _, name := range names {
		if full, err := exec.LookPath(name); err == nil {
			return full
		}
	}
	msg := fmt.Sprintf("no browser: set CHROMIUM or put one of %s on PATH (Debian: apt-get install chromium)",
		strings.Join(names, ", "))
	if os.Getenv(browserRequiredEnv) == "1" {
		t.Fatalf("%s=1 but %s", browserRequiredEnv, msg)
	}
	t.Skip(msg)
	return ""
}

// specOperations returns the title of srv's /openapi.json and its
// operations as sorted "METHOD /path" strings.
func specOperations(t *testing.T, srv *httptest.Server) (string, []string) {
	t.Helper()
	_, body := do(t, srv, http.MethodGet, "/openapi.json", nil)
	var doc struct {
		Info struct {
			Title string `json:"title"`
		} `json:"info"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("decode /openapi.json: %v", err)
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	var ops []string
	for path, item := range doc.Paths {
		for key := range item {
			if slices.Contains(methods, key) {
				ops = append(ops, strings.ToUpper(key)+" "+path)
			}
		}
	}
	if doc.Info.Title == "" || len(ops) == 0 {
		t.Fatalf("/openapi.json has title %q and %d operations, want a title and some", doc.Info.Title, len(ops))
	}
	slices.Sort(ops)
	return doc.Info.Title, ops
}

// browserRun is what one headless page load left behind.
type browserRun struct {
	// dom is the document serialized after the page's scripts ran.
	dom string
	// requests are the URLs the page itself asked for, in order; the
	// browser's own traffic is left out.
	requests []string
	stderr   []byte
}

// stderrTail returns the last lines the browser wrote to stderr, less its
// complaints about the missing D-Bus, which containers lack.
func (r browserRun) stderrTail() string {
	var lines []string
	for line := range strings.Lines(string(r.stderr)) {
		if !strings.Contains(line, "dbus") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines[max(0, len(lines)-20):], "")
}

// markup matches the scripts, styles and tags of serialized HTML.
var markup = regexp.MustCompile(`(?is)<script\b.*?</script>|<style\b.*?</style>|<[^>]*>`)

// visibleText returns the page's text, with runs of spaces collapsed, to
// show what a broken page displayed.
func (r browserRun) visibleText() string {
	return strings.Join(strings.Fields(html.UnescapeString(markup.ReplaceAllString(r.dom, " "))), " ")
}

// text returns the text of serialized HTML character data, unescaped and
// trimmed.
func text(s string) string {
	return strings.TrimSpace(html.UnescapeString(s))
}

// renderPage loads origin+page in headless Chromium and returns the DOM
// once the page's network and timers are idle (virtual time lets the
// browser skip the waiting), and the URLs the page requested, read from
// Chromium's network log. Every host but 127.0.0.1 fails to resolve. The
// browser runs in its own process group, killed when the run ends or after
// pageTimeout.
func renderPage(t *testing.T, browser, origin, page string) browserRun {
	t.Helper()
	url := origin + page
	dir := t.TempDir()
	netLog := filepath.Join(dir, "netlog.json")
	ctx, cancel := context.WithTimeout(t.Context(), pageTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, browser,
		"--headless=new",
		"--no-sandbox", // Chromium will not run as root, as CI does, with its sandbox
		"--disable-gpu",
		"--disable-dev-shm-usage",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-extensions",
		"--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--log-net-log="+netLog,
		"--virtual-time-budget=15000",
		"--dump-dom",
		url,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		// Helpers the browser left behind share its process group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	run := browserRun{dom: stdout.String(), stderr: stderr.Bytes()}
	if err != nil {
		t.Fatalf("%s %s: %v (context: %v)\n%s", filepath.Base(browser), url, err, ctx.Err(), run.stderrTail())
	}
	if run.requests, err = pageRequests(netLog, origin); err != nil {
		t.Fatalf("%v\n%s", err, run.stderrTail())
	}
	return run
}

// pageRequests returns the URLs of the requests in the Chromium network log
// at path that a document from origin started: the page's subresources,
// fetches and workers, but not the navigation itself nor the browser's own
// traffic (update checks and the like).
func pageRequests(path, origin string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read network log: %w", err)
	}
	var netLog struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL       string `json:"url"`
				Initiator string `json:"initiator"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &netLog); err != nil {
		return nil, fmt.Errorf("decode network log %s: %w", path, err)
	}
	start, ok := netLog.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		return nil, errors.New("network log has no URL_REQUEST_START_JOB event type")
	}
	var urls []string
	for _, e := range netLog.Events {
		if e.Type == start && e.Params.URL != "" && e.Params.Initiator == origin {
			urls = append(urls, e.Params.URL)
		}
	}
	return urls, nil
}
