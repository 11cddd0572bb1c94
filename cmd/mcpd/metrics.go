package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds mcpd's Prometheus collectors in their own registry, served
// on the opt-in --metrics-listen address.
type metrics struct {
	reg           *prometheus.Registry
	tokensIssued  *prometheus.CounterVec
	verifications *prometheus.CounterVec
	registrations *prometheus.CounterVec
	latency       *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpd_tokens_issued_total", Help: "Tokens issued by the token endpoint, by grant type.",
		}, []string{"grant_type"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpd_token_verifications_total", Help: "Bearer token verifications on /mcp, by outcome (valid, unknown, expired, wrong_audience, error).",
		}, []string{"outcome"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpd_client_registrations_total", Help: "Clients registered, by source.",
		}, []string{"source"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mcpd_http_request_duration_seconds", Help: "HTTP request latency by route, method and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method", "code"}),
	}
	m.reg.MustRegister(m.tokensIssued, m.verifications, m.registrations, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchWrites exports whether the database takes writes, as
// mcpd_store_writes_failing: 1 while its disk is full (or over quota, or
// read-only; on PostgreSQL also while the database is a read-only standby
// or does not answer), else 0.
func (m *metrics) watchWrites(writable func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mcpd_store_writes_failing",
		Help: "1 while the database takes no writes (its disk full, over quota or read-only, a read-only standby, the database away), else 0.",
	}, func() float64 {
		if writable() {
			return 0
		}
		return 1
	}))
}

// TokenIssued implements authz.Observer.
func (m *metrics) TokenIssued(grantType string) { m.tokensIssued.WithLabelValues(grantType).Inc() }

// TokenVerified implements authz.Observer.
func (m *metrics) TokenVerified(outcome string) { m.verifications.WithLabelValues(outcome).Inc() }

// ClientRegistered implements authz.Observer.
func (m *metrics) ClientRegistered(source string) { m.registrations.WithLabelValues(source).Inc() }

// instrument is router middleware recording request latency by route
// template, so paths with ids do not explode the label set.
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, req)
		route := "other"
		if cr := mux.CurrentRoute(req); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			} else if p, err := cr.GetPathRegexp(); err == nil {
				route = p
			}
		}
		code := rec.status
		if code == 0 {
			code = http.StatusOK
		}
		m.latency.WithLabelValues(route, req.Method, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	})
}

func (m *metrics) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return mux
}
