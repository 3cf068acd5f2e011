package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dota-data/ingestion-service/internal/httpapi"
)

// listener is one HTTP server on its own socket.
type listener struct {
	name string
	srv  *httpapi.Server
	ln   net.Listener
	done chan error // Serve's result
}

// listen serves h on addr within limits. what names the setting the
// address comes from, for the error. failed is called if Serve ends for
// any reason but a shutdown.
func listen(what, addr string, h http.Handler, limits httpapi.Limits, log *slog.Logger, reg prometheus.Registerer, failed func()) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s %s: %w", what, addr, err)
	}
	srv, err := httpapi.NewServer(h, limits, log, reg)
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	l := &listener{name: limits.Listener, srv: srv, ln: ln, done: make(chan error, 1)}
	go func() {
		err := srv.Serve(ln)
		if !errors.Is(err, http.ErrServerClosed) {
			failed()
		}
		l.done <- err
	}()
	return l, nil
}

// shutdown stops the server: it waits up to 5 s for requests in progress,
// then closes what is left (a client keeping a connection busy must not
// fail the exit). It returns Serve's error, if it was not the shutdown.
func (l *listener) shutdown(log *slog.Logger) error {
	if l == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("HTTP connections still busy 5 s into the shutdown; closing them", "listener", l.name)
		err = l.srv.Close()
	}
	if serveErr := <-l.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, fmt.Errorf("http server (%s): %w", l.name, serveErr))
	}
	return err
}
