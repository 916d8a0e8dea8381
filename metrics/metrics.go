// Package metrics holds crmsync's Prometheus metrics (github.com/prometheus/client_golang,
// the reference Go client) on a private registry, so nothing is global.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crmsync/crmsync/buildinfo"
	"github.com/crmsync/crmsync/engine"
)

// Metrics implements engine.Metrics and an HTTP observer.
type Metrics struct {
	reg         *prometheus.Registry
	records     *prometheus.CounterVec
	runs        *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	lastAttempt *prometheus.GaugeVec
	deadLetters *prometheus.GaugeVec
	pending     *prometheus.GaugeVec
	httpReqs    *prometheus.CounterVec
	httpDur     *prometheus.HistogramVec
	webhooks    *prometheus.CounterVec
}

// New registers every metric on a fresh registry; build is what
// crmsync_build_info reports.
func New(build buildinfo.Info) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmsync_records_total",
			Help: "Records handled, by flow, system and outcome (pulled, created, updated, converted, unchanged, skipped, failed)."},
			[]string{"flow", "system", "outcome"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmsync_runs_total",
			Help: "Flow runs, by flow, mode and result (ok, error)."}, []string{"flow", "mode", "result"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crmsync_run_duration_seconds",
			Help: "Duration of flow runs.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"flow"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crmsync_last_success_timestamp_seconds",
			Help: "Unix time of the last run that ended without error."}, []string{"flow"}),
		lastAttempt: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crmsync_last_attempt_timestamp_seconds",
			Help: "Unix time of the last run that ended, with or without error (stale: the flow is not running at all)."}, []string{"flow"}),
		deadLetters: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crmsync_dead_letters",
			Help: "Dead letters a flow holds after its last run (alert when it grows)."}, []string{"flow"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crmsync_pending_writes",
			Help: "Writes a flow still owes a target after its last run (retried by every run; alert when it stays above 0)."}, []string{"flow", "target"}),
		httpReqs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmsync_http_requests_total",
			Help: "HTTP attempts to CRM APIs, by system, method and status code (0: no response)."}, []string{"system", "method", "code"}),
		httpDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "crmsync_http_request_duration_seconds",
			Help: "Duration of HTTP attempts to CRM APIs.", Buckets: prometheus.DefBuckets}, []string{"system"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crmsync_webhook_requests_total",
			Help: "Webhook requests received, by source (a system, or hook:<flow>) and outcome (accepted, bad_signature, unknown, too_large, rate_limited, queue_full, bad_request)."},
			[]string{"source", "outcome"}),
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "crmsync_build_info",
		Help: "Always 1; its labels say which build of crmsync runs."}, []string{"version", "revision", "go"})
	info.WithLabelValues(build.Version, build.ShortRevision(), build.Go).Set(1)
	m.reg.MustRegister(info, m.records, m.runs, m.runDuration, m.lastSuccess, m.lastAttempt, m.deadLetters, m.pending, m.httpReqs, m.httpDur, m.webhooks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		// go_build_info{path,version,checksum}: which build is running.
		collectors.NewBuildInfoCollector())
	return m
}

// Flow is what a process knows of a flow when it starts, from its state.
type Flow struct {
	Name, Source string
	Targets      []string
	// LastSuccess is when its last sync without error ended (zero: never).
	LastSuccess time.Time
	// LastAttempt is when its last run of any result ended (zero: never;
	// Prime then uses the start-up time, so "has not run for too long"
	// fires for a daemon that never gets to run a flow).
	LastAttempt time.Time
	DeadLetters int
	Pending     map[string]int // per target
}

// Prime gives every series an alert reads a value at start-up, before the
// first run ends: every counter of runs and records at 0 for every flow,
// mode, result, system and outcome (so "increase(...) > 0" sees the first
// failure after a restart), the run-duration histogram empty, the last
// success and last attempt from the state file (so "no success for too
// long" holds across a restart that fails from its first run), and the
// owed writes the state file holds.
func (m *Metrics) Prime(flows []Flow) {
	now := time.Now()
	for _, f := range flows {
		for _, mode := range []engine.Mode{engine.ModeSync, engine.ModeBackfill} {
			for _, r := range []string{"ok", "error"} {
				m.runs.WithLabelValues(f.Name, string(mode), r).Add(0)
			}
		}
		for _, sys := range append([]string{f.Source}, f.Targets...) {
			for _, o := range engine.Outcomes() {
				m.records.WithLabelValues(f.Name, sys, o).Add(0)
			}
		}
		m.runDuration.WithLabelValues(f.Name)
		if !f.LastSuccess.IsZero() {
			m.lastSuccess.WithLabelValues(f.Name).Set(float64(f.LastSuccess.UnixNano()) / 1e9)
		}
		attempt := f.LastAttempt
		if attempt.IsZero() {
			attempt = now
		}
		m.lastAttempt.WithLabelValues(f.Name).Set(float64(attempt.UnixNano()) / 1e9)
		m.deadLetters.WithLabelValues(f.Name).Set(float64(f.DeadLetters))
		for _, t := range f.Targets {
			m.pending.WithLabelValues(f.Name, t).Set(float64(f.Pending[t]))
		}
	}
}

// Records implements engine.Metrics.
func (m *Metrics) Records(flow, system, outcome string, n int) {
	m.records.WithLabelValues(flow, system, outcome).Add(float64(n))
}

// RunDone implements engine.Metrics.
func (m *Metrics) RunDone(flow string, mode engine.Mode, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	} else {
		m.lastSuccess.WithLabelValues(flow).SetToCurrentTime()
	}
	m.lastAttempt.WithLabelValues(flow).SetToCurrentTime()
	m.runs.WithLabelValues(flow, string(mode), result).Inc()
	m.runDuration.WithLabelValues(flow).Observe(d.Seconds())
}

// DeadLetters implements engine.Metrics.
func (m *Metrics) DeadLetters(flow string, n int) {
	m.deadLetters.WithLabelValues(flow).Set(float64(n))
}

// PendingWrites implements engine.Metrics.
func (m *Metrics) PendingWrites(flow, target string, n int) {
	m.pending.WithLabelValues(flow, target).Set(float64(n))
}

// HTTP records one HTTP attempt.
func (m *Metrics) HTTP(system, method string, status int, d time.Duration) {
	m.httpReqs.WithLabelValues(system, method, strconv.Itoa(status)).Inc()
	m.httpDur.WithLabelValues(system).Observe(d.Seconds())
}

// Webhook counts one webhook request by source and outcome.
func (m *Metrics) Webhook(source, outcome string) {
	m.webhooks.WithLabelValues(source, outcome).Inc()
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var _ engine.Metrics = (*Metrics)(nil)
