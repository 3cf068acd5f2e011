// Package docs holds the documentation's pages; its test checks that
// they hold together.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	heading = regexp.MustCompile(`(?m)^#+ (.*)$`)
	link    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	nonWord = regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
)

// anchor is the fragment GitHub gives a heading.
func anchor(h string) string {
	return strings.ReplaceAll(nonWord.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), ""), " ", "-")
}

// TestLinksResolve: every relative link of README.md and docs/*.md names
// a file that exists, and a fragment names a heading of that file; the
// README stays short (its details live here).
func TestLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../README.md", "../CHANGELOG.md")
	anchors := map[string]map[string]bool{}
	text := map[string]string{}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text[p] = string(b)
		key := absPath(t, p)
		anchors[key] = map[string]bool{}
		for _, m := range heading.FindAllStringSubmatch(string(b), -1) {
			anchors[key][anchor(m[1])] = true
		}
	}
	for _, p := range pages {
		for _, m := range link.FindAllStringSubmatch(text[p], -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, frag, _ := strings.Cut(target, "#")
			path := absPath(t, p)
			if file != "" {
				path = absPath(t, filepath.Join(filepath.Dir(p), file))
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %q: no such file", p, target)
					continue
				}
			}
			if frag != "" {
				as, ok := anchors[path]
				if !ok {
					t.Errorf("%s: link %q: a fragment into a file that is not a page", p, target)
				} else if !as[frag] {
					t.Errorf("%s: link %q: no such heading", p, target)
				}
			}
		}
	}
	if n := strings.Count(text["../README.md"], "\n"); n > 150 {
		t.Errorf("README.md has %d lines; keep it to about 150 and move details to docs/", n)
	}
}

// absPath is p made absolute, so that a page has one name whichever page
// links to it.
func absPath(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
