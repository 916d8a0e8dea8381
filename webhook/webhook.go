// Package webhook is crmsync's receiver of change events: a vendor's signed
// webhooks (TribeCRM, verified by its connector type) on
// POST /webhooks/{system}, and a generic signed hook on POST /hooks/{flow}
// for any other system or automation tool. It answers at once and queues:
// a verified event only schedules the flows it concerns, debounced, through
// a trigger the daemon gives it; the flow's normal cursor-driven run reads
// the change. An event is therefore a hint: a lost, duplicated, replayed or
// reordered one costs a run or some latency, never a record, and the cron
// schedule stays the safety net.
//
// It serves its own listener, meant to face the internet behind a TLS
// proxy; the admin endpoint never shares it.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/logkey"
)

// Defaults of Options, written once here (config documents them).
const (
	DefaultDebounce  = time.Second
	DefaultMaxBody   = 1 << 20
	DefaultQueue     = 1000
	DefaultRateLimit = 50.0 // events per second per source
	DefaultBurst     = 100
	DefaultMaxSkew   = 5 * time.Minute
	// knownRefresh is the least time between two reads of a vendor's
	// registrations when an unknown webhook id arrives.
	knownRefresh = 30 * time.Second
)

// The generic hook's headers: the time it was signed (Unix seconds) and
// "sha256=" + hex(HMAC-SHA-256(secret, timestamp + "." + body)).
const (
	HeaderTimestamp = "X-Crmsync-Timestamp"
	HeaderSignature = "X-Crmsync-Signature"
)

// Source is one configured system whose vendor pushes events.
type Source struct {
	Name   string
	Verify func(h http.Header, body, secret []byte) (connectors.WebhookEvent, error)
	Secret []byte
	// Flows are the flows that read from the system.
	Flows []string
	// Known lists the vendor's registrations, so a verified delivery from
	// a registration crmsync does not know is refused. Nil, or a list that
	// cannot be read, accepts every verified delivery.
	Known func(ctx context.Context) ([]connectors.Webhook, error)
}

// Options configures a Receiver. Zero values take the defaults above.
type Options struct {
	Sources []Source
	// HookSecret enables POST /hooks/{flow} for HookFlows ("" leaves it off).
	HookSecret []byte
	HookFlows  []string
	MaxBody    int64
	Queue      int
	RateLimit  float64
	Burst      int
	Debounce   time.Duration
	MaxSkew    time.Duration
	Logger     zerolog.Logger
	// Observe, when set, counts every request by source and outcome
	// (accepted, bad_signature, unknown, too_large, rate_limited,
	// queue_full, bad_request, dropped).
	Observe func(source, outcome string)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Receiver is the HTTP handler and its queue.
type Receiver struct {
	o       Options
	sources map[string]*source
	hooks   map[string]*rate.Limiter
	queue   chan []string
}

type source struct {
	Source
	limit *rate.Limiter
	mu    sync.Mutex
	known map[string]bool // nil until read
	read  time.Time
}

// New builds a Receiver.
func New(o Options) *Receiver {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.RateLimit <= 0 {
		o.RateLimit = DefaultRateLimit
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	if o.MaxSkew <= 0 {
		o.MaxSkew = DefaultMaxSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	r := &Receiver{o: o, sources: map[string]*source{}, hooks: map[string]*rate.Limiter{}, queue: make(chan []string, o.Queue)}
	for _, s := range o.Sources {
		r.sources[s.Name] = &source{Source: s, limit: rate.NewLimiter(rate.Limit(o.RateLimit), o.Burst)}
	}
	if len(o.HookSecret) > 0 {
		for _, f := range o.HookFlows {
			r.hooks[f] = rate.NewLimiter(rate.Limit(o.RateLimit), o.Burst)
		}
	}
	return r
}

// Handler serves POST /webhooks/{system}, POST /hooks/{flow} and GET
// /healthz (for a proxy's health check).
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{system}", r.vendor)
	mux.HandleFunc("POST /hooks/{flow}", r.generic)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	return mux
}

// answer writes a short plain-text reply; it never holds a secret.
func (r *Receiver) answer(w http.ResponseWriter, src, outcome string, status int, msg string) {
	if r.o.Observe != nil {
		r.o.Observe(src, outcome)
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
	if status >= 400 {
		r.o.Logger.Warn().Str(logkey.System, src).Str("outcome", outcome).Int("status", status).Msg("webhook refused: " + msg)
	}
}

// body reads the request body up to MaxBody; false when it answered.
func (r *Receiver) body(w http.ResponseWriter, req *http.Request, src string) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.o.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		r.answer(w, src, "too_large", http.StatusRequestEntityTooLarge, "body larger than "+strconv.FormatInt(r.o.MaxBody, 10)+" bytes")
		return nil, false
	case err != nil:
		r.answer(w, src, "bad_request", http.StatusBadRequest, "could not read the body")
		return nil, false
	}
	return b, true
}

func (r *Receiver) vendor(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("system")
	s, ok := r.sources[name]
	if !ok {
		r.answer(w, name, "unknown", http.StatusNotFound, "no webhook source "+strconv.Quote(name))
		return
	}
	if !s.limit.Allow() {
		r.answer(w, name, "rate_limited", http.StatusTooManyRequests, "too many events: slow down")
		return
	}
	b, ok := r.body(w, req, name)
	if !ok {
		return
	}
	ev, err := s.Verify(req.Header, b, s.Secret)
	switch {
	case errors.Is(err, connectors.ErrBadSignature):
		r.answer(w, name, "bad_signature", http.StatusUnauthorized, "signature missing or wrong")
		return
	case err != nil:
		r.answer(w, name, "bad_request", http.StatusBadRequest, "not a webhook event: "+err.Error())
		return
	}
	if !r.knows(req.Context(), s, ev.WebhookID) {
		r.answer(w, name, "unknown", http.StatusNotFound, "unknown webhook "+strconv.Quote(ev.WebhookID))
		return
	}
	r.enqueue(w, name, s.Flows)
}

// knows reports whether id is one of the source's registrations, reading
// them again (at most every knownRefresh) when it is not.
func (r *Receiver) knows(ctx context.Context, s *source, id string) bool {
	if s.Known == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known[id] {
		return true
	}
	if now := r.o.Now(); s.known == nil || now.Sub(s.read) >= knownRefresh {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		hooks, err := s.Known(ctx)
		if err != nil {
			r.o.Logger.Warn().Str(logkey.System, s.Name).Err(err).Msg("cannot read the webhook registrations: accepting the verified delivery")
			return true
		}
		s.read = now
		s.known = map[string]bool{}
		for _, h := range hooks {
			s.known[h.ID] = true
		}
	}
	return s.known[id]
}

func (r *Receiver) generic(w http.ResponseWriter, req *http.Request) {
	flow := req.PathValue("flow")
	limit, ok := r.hooks[flow]
	src := "hook:" + flow
	if !ok {
		r.answer(w, src, "unknown", http.StatusNotFound, "no hook for flow "+strconv.Quote(flow))
		return
	}
	if !limit.Allow() {
		r.answer(w, src, "rate_limited", http.StatusTooManyRequests, "too many events: slow down")
		return
	}
	b, ok := r.body(w, req, src)
	if !ok {
		return
	}
	if msg := r.checkHook(req.Header, b); msg != "" {
		r.answer(w, src, "bad_signature", http.StatusUnauthorized, msg)
		return
	}
	r.enqueue(w, src, []string{flow})
}

// checkHook verifies the generic hook's signature and timestamp, or a
// Frappe webhook's signature; "" when they hold.
func (r *Receiver) checkHook(h http.Header, body []byte) string {
	if fs := h.Get(HeaderFrappeSignature); fs != "" {
		// Frappe signs the body alone: a replay is possible and harmless
		// (it only runs the flow once more, which changes nothing).
		if !hmac.Equal([]byte(fs), []byte(SignFrappe(r.o.HookSecret, body))) {
			return "signature missing or wrong"
		}
		return ""
	}
	ts, sig := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if ts == "" || sig == "" {
		return "headers " + HeaderTimestamp + " and " + HeaderSignature + " are required"
	}
	if !hmac.Equal([]byte(sig), []byte(SignHook(r.o.HookSecret, ts, body))) {
		return "signature missing or wrong"
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return HeaderTimestamp + " is not Unix seconds"
	}
	if skew := r.o.Now().Sub(time.Unix(secs, 0)); skew > r.o.MaxSkew || skew < -r.o.MaxSkew {
		return "timestamp outside the allowed skew (a replayed request, or a clock that is off)"
	}
	return ""
}

// HeaderFrappeSignature is the header of a Frappe (ERPNext, Overplane)
// webhook with "Enable Security": base64(HMAC-SHA-256(secret, body))
// (frappe/frappe, frappe/integrations/doctype/webhook/webhook.py,
// get_webhook_headers).
const HeaderFrappeSignature = "X-Frappe-Webhook-Signature"

// SignFrappe is a Frappe webhook's signature header value.
func SignFrappe(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// SignHook is the generic hook's signature header value.
func SignHook(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (r *Receiver) enqueue(w http.ResponseWriter, src string, flows []string) {
	select {
	case r.queue <- flows:
		r.answer(w, src, "accepted", http.StatusAccepted, "queued")
	default:
		r.answer(w, src, "queue_full", http.StatusServiceUnavailable, "queue full: the next scheduled run picks the change up")
	}
}
