package wsstream

import (
	"context"

	"github.com/coder/websocket"

	"github.com/dota-data/ingestion-service/internal/redact"
	"github.com/dota-data/ingestion-service/internal/redirect"
)

// Probe dials the stream once, as Run does (the same client, so the same
// CAs, redirects and ConnectTimeout), completes the opening handshake and
// closes. It returns where the stream was found, its URL's secrets
// hidden, and the dial's error, likewise hidden.
func (s *Source) Probe(ctx context.Context) (where string, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, s.cfg.URL, &websocket.DialOptions{
		HTTPClient: s.cfg.HTTPClient,
		HTTPHeader: s.cfg.Header,
	})
	if err != nil {
		return s.shown, s.hide.Error(err)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "probe")
	return redact.URL(redirect.Final(resp, s.cfg.URL)), nil
}
