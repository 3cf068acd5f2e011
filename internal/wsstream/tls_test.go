package wsstream

import (
	"context"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

func TestWSSWithCustomCA(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := c.CloseRead(r.Context())
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"match_id":5}`))
		<-ctx.Done()
	}))
	defer srv.Close()
	url := "wss" + strings.TrimPrefix(srv.URL, "https")

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("trusted through STREAM_TLS_CA_FILE", func(t *testing.T) {
		rec := newRecorder()
		start(t, Config{URL: url, TLSCAFile: caFile}, rec)
		rec.wait(t, 1)
		if frames, _ := rec.snapshot(); frames[0] != `{"match_id":5}` {
			t.Fatalf("frame = %q", frames[0])
		}
	})
	t.Run("untrusted with the system roots alone", func(t *testing.T) {
		r := start(t, Config{URL: url}, newRecorder())
		waitFor(t, "a certificate error", func() bool {
			st := r.src.Status()
			return !st.Up && strings.Contains(st.Detail, "certificate")
		})
	})
	t.Run("Probe dials as Run does", func(t *testing.T) {
		// check's probe of the stream: with the CA file it succeeds, as
		// the service would; with the system roots alone it fails.
		for _, tt := range []struct {
			ca string
			ok bool
		}{{caFile, true}, {"", false}} {
			src, err := New(Config{URL: url, TLSCAFile: tt.ca}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			where, err := src.Probe(context.Background())
			if (err == nil) != tt.ok || where != url {
				t.Errorf("CA file %q: Probe = %q, %v; want success %v", tt.ca, where, err, tt.ok)
			}
		}
	})
	t.Run("a CA file that holds no certificate", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.pem")
		if err := os.WriteFile(bad, []byte("nope"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(Config{URL: url, TLSCAFile: bad}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
			t.Fatalf("New = %v", err)
		}
	})
}
