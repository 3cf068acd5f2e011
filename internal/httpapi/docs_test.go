package httpapi

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestDocPagesAreOffline(t *testing.T) {
	attr := regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*["']([^"']*)["']`)
	// minSize is the least size that shows an asset is the real file.
	minSize := map[string]int{"text/javascript": 100_000, "text/css": 10_000, "image/png": 100}

	tests := []struct {
		page       string
		wantAssets []string
	}{
		{"/docs", []string{"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"}},
		{"/redoc", []string{"/redoc/redoc.standalone.js"}},
	}
	srv := newServer(t, Options{})
	for _, tt := range tests {
		t.Run(tt.page, func(t *testing.T) {
			resp, body := do(t, srv, http.MethodGet, tt.page, nil)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("got %d %q, want 200 HTML", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			html := string(body)
			for _, remote := range []string{"http://", "https://", "fonts.googleapis"} {
				if strings.Contains(html, remote) {
					t.Errorf("page contains %q", remote)
				}
			}
			if !strings.Contains(html, "/openapi.json") {
				t.Error("page does not reference /openapi.json")
			}

			var refs []string
			for _, m := range attr.FindAllStringSubmatch(html, -1) {
				refs = append(refs, m[1])
			}
			for _, want := range tt.wantAssets {
				if !strings.Contains(strings.Join(refs, " "), want) {
					t.Errorf("page references %q, want %s among them", refs, want)
				}
			}
			for _, ref := range refs {
				if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
					t.Errorf("reference %q is not a local absolute path", ref)
					continue
				}
				resp, body := do(t, srv, http.MethodGet, ref, nil)
				ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
				least, known := minSize[ct]
				if resp.StatusCode != http.StatusOK || !known || len(body) < least {
					t.Errorf("GET %s = %d %q with %d bytes, want 200 JS, CSS or PNG of at least %d bytes",
						ref, resp.StatusCode, ct, len(body), least)
				}
			}
		})
	}
}
