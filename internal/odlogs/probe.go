package odlogs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/dota-data/ingestion-service/internal/redact"
	"github.com/dota-data/ingestion-service/internal/redirect"
)

// Probe connects once, as Run would (the api channel's own route, then
// the URL itself should that answer 404), and reads until the first data
// line or until ctx ends. It returns the URL read, redacted, and whether
// a line came; an error says why the stream is not usable. It hands
// nothing on, and must not run alongside Run.
func (s *Source) Probe(ctx context.Context) (where string, lineSeen bool, err error) {
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := s.connect(reqCtx, cancel)
	if err == nil && resp.StatusCode == http.StatusNotFound && s.url != s.cfg.URL {
		_ = resp.Body.Close()
		s.url = s.cfg.URL
		resp, err = s.connect(reqCtx, cancel)
	}
	if err != nil {
		return s.shown, false, s.hide.Error(err)
	}
	defer func() { _ = resp.Body.Close() }()
	where = redact.URL(redirect.Final(resp, s.url))
	if resp.StatusCode != http.StatusOK {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return where, false, fmt.Errorf("unexpected status %s: %q", resp.Status, bytes.TrimSpace(head))
	}
	if ct := resp.Header.Get("Content-Type"); !isEventStream(ct) {
		return where, false, fmt.Errorf("content type %q is not text/event-stream", ct)
	}
	s.stream.reset(resp.Body)
	for {
		ev, err := s.stream.next()
		if err != nil {
			if ctx.Err() != nil {
				return where, false, nil // connected, and nothing yet
			}
			return where, false, fmt.Errorf("read: %w", err)
		}
		if ev.message && len(ev.data) > 0 {
			return where, true, nil
		}
	}
}
