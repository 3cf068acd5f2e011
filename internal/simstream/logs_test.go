package simstream

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dota-data/ingestion-service/internal/odlogs"
)

// TestLogsFeedsTheLogSource: the simulated feed speaks OpenDota's route
// and line shapes, so the real parser takes its inserts: /logs carries
// every channel, /logs/api the inserts alone, other paths are not found.
func TestLogsFeedsTheLogSource(t *testing.T) {
	feed := NewLogs(Options{Rate: 500, BadEvery: 10})
	srv := httptest.NewServer(feed)
	defer srv.Close()
	ids := map[string][]int64{} // the IDs announced, by path
	read := func(path string, n int) (kinds map[odlogs.Kind]int, missing int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
			t.Fatalf("%s: %s, %q", path, resp.Status, ct)
		}
		kinds = map[odlogs.Kind]int{}
		sc := bufio.NewScanner(resp.Body)
		for seen := 0; seen < n && sc.Scan(); {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				if sc.Text() != "" {
					t.Fatalf("%s: %q is neither a data line nor an event's end", path, sc.Text())
				}
				continue
			}
			seen++
			kind, id, err := odlogs.ParseLine([]byte(line))
			if err != nil {
				missing++
			} else if kind == odlogs.Insert {
				ids[path] = append(ids[path], id.ID)
			}
			kinds[kind]++
		}
		return kinds, missing
	}
	all, _ := read("/logs", 400)
	if all[odlogs.Insert] == 0 || all[odlogs.Parsed] == 0 || all[odlogs.Other] == 0 {
		t.Fatalf("/logs: %v; want inserts, parsed lines and others", all)
	}
	api, missing := read("/logs/api", 200)
	if api[odlogs.Insert] != 200 || missing == 0 || missing > 40 {
		t.Fatalf("/logs/api: %v with %d lacking an ID; want only inserts, one in ten without an ID", api, missing)
	}
	// As on OpenDota, an insert is not always a new match: some announce
	// the previous one again, some an old one far behind the newest.
	var again, behind int
	newest := int64(0)
	for i, id := range ids["/logs/api"] {
		if i > 0 && id == ids["/logs/api"][i-1] {
			again++
		}
		if id < newest-10_000 {
			behind++
		}
		newest = max(newest, id)
	}
	if again == 0 || behind == 0 {
		t.Fatalf("/logs/api: %d inserts announced the previous match again and %d an old one; want some of each", again, behind)
	}
	// What the feed counts adds up to what a client that remembers every
	// ID saw: new ones, ones seen before, old ones never seen.
	seen := map[int64]bool{}
	var fresh, seenAgain, older, top int64
	for _, id := range ids["/logs/api"] {
		switch {
		case seen[id]:
			seenAgain++
		case id < top:
			older++
		default:
			fresh++
		}
		seen[id], top = true, max(top, id)
	}
	gotAgain, gotOlder := feed.Repeated()
	if matches, _ := feed.Sent(); matches < fresh || gotAgain < seenAgain || gotOlder < older || gotAgain == 0 || gotOlder == 0 {
		t.Fatalf("the feed counts %d new, %d again, %d older; the client saw %d, %d, %d", matches, gotAgain, gotOlder, fresh, seenAgain, older)
	}
	resp, err := http.Get(srv.URL + "/matches")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/matches: %s, want 404", resp.Status)
	}
	if matches, lines := feed.Sent(); matches == 0 || lines <= matches {
		t.Fatalf("sent %d matches in %d lines", matches, lines)
	}
}
