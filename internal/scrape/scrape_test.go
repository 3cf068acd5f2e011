package scrape

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestSums reads a real registry's page: labelled samples summed, a
// histogram's series by their own names, comments left out.
func TestSums(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."}, []string{"kind"})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "test_seconds", Help: "Time.", Buckets: []float64{1}})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_level", Help: "A level."})
	reg.MustRegister(c, h, g)
	c.WithLabelValues("a b").Add(2)
	c.WithLabelValues("c").Add(3)
	h.Observe(0.5)
	h.Observe(4)
	g.Set(-1.5)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	got, err := Get(srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"test_things_total": 5, "test_seconds_count": 2, "test_seconds_sum": 4.5, "test_level": -1.5,
		"test_seconds_bucket": 1 + 2, // le="1" and le="+Inf"
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if _, ok := got["# HELP test_level A level."]; ok || len(got) != 5 {
		t.Errorf("names %v, want the five series", got)
	}

	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	if _, err := Get(notFound.Client(), notFound.URL); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Get of a 404 = %v, want an error naming it", err)
	}
}
