// Package emukit holds what the three API emulators share: fault injection
// (latency, 5xx share, 429 rate limiting with Retry-After, connection
// resets, 401s, 200s with an error body, hangs, and answers lost or replaced
// by a 504 after the request was carried out), bearer-token checks, a deterministic random source and a
// controllable clock. Each emulator keeps its own API's bodies and status
// codes; emukit only decides *when* a fault happens.
package emukit

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Faults configures fault injection. The zero value injects nothing.
type Faults struct {
	// Latency is added before every answer.
	Latency time.Duration
	// ErrorRate is the share (0..1) of requests answered with a 5xx.
	ErrorRate float64
	// RateLimit, when > 0, answers 429 with Retry-After once more than this
	// many requests arrive within one second.
	RateLimit int
	// RetryAfter is the Retry-After sent with 429s (default 1s).
	RetryAfter time.Duration
	// ResetRate is the share (0..1) of requests whose connection is cut
	// without an answer.
	ResetRate float64
	// AuthErrorRate is the share (0..1) of requests refused with 401, as
	// when a token is revoked or an identity provider hiccups.
	AuthErrorRate float64
	// BodyErrorRate is the share (0..1) of requests answered 200 with the
	// API's error body instead of the resource or page (a gateway or an
	// application that reports failures in the body), without acting.
	BodyErrorRate float64
	// HangRate is the share (0..1) of requests that get no answer until the
	// client gives up (or HangFor passes, then the connection is cut).
	HangRate float64
	// HangFor bounds a hang (default 30s).
	HangFor time.Duration
	// ActedResetRate is the share (0..1) of requests the server carries
	// out, then cuts the connection before the answer: the client cannot
	// know the write happened (a lost answer).
	ActedResetRate float64
	// ActedErrorRate is the share (0..1) of requests the server carries
	// out, then answers 504 as a gateway that timed out would.
	ActedErrorRate float64
	// Seed makes the fault sequence reproducible.
	Seed uint64
}

// ErrorWriter writes an API-specific error body with the given status.
type ErrorWriter func(w http.ResponseWriter, status int, message string)

// Injector applies Faults in front of a handler. It is safe for concurrent use.
type Injector struct {
	mu      sync.Mutex
	f       Faults
	rnd     *rand.Rand
	window  time.Time
	count   int
	now     func() time.Time
	errBody ErrorWriter
	// Stats
	injected map[string]int
}

// NewInjector builds an injector; now may be nil (time.Now).
func NewInjector(f Faults, now func() time.Time, ew ErrorWriter) *Injector {
	if now == nil {
		now = time.Now
	}
	return &Injector{f: f, rnd: rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15)), now: now, errBody: ew, injected: map[string]int{}}
}

// Set replaces the fault configuration (tests change faults mid-run).
func (in *Injector) Set(f Faults) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.f = f
}

// Injected returns how many faults of each kind ("5xx", "429", "reset",
// "auth", "body200", "hang", "acted-reset", "acted-5xx") were injected.
func (in *Injector) Injected() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := map[string]int{}
	for k, v := range in.injected {
		out[k] = v
	}
	return out
}

// Wrap returns next behind the fault injector.
func (in *Injector) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.mu.Lock()
		f := in.f
		var fault string
		now := in.now()
		if f.RateLimit > 0 {
			if now.Sub(in.window) >= time.Second {
				in.window, in.count = now, 0
			}
			in.count++
			if in.count > f.RateLimit {
				fault = "429"
			}
		}
		if fault == "" && f.ResetRate > 0 && in.rnd.Float64() < f.ResetRate {
			fault = "reset"
		}
		if fault == "" && f.ErrorRate > 0 && in.rnd.Float64() < f.ErrorRate {
			fault = "5xx"
		}
		// The kinds below draw only when set, so the sequences of the kinds
		// above stay what seeded tests expect.
		for _, k := range []struct {
			name string
			rate float64
		}{{"auth", f.AuthErrorRate}, {"body200", f.BodyErrorRate}, {"hang", f.HangRate},
			{"acted-reset", f.ActedResetRate}, {"acted-5xx", f.ActedErrorRate}} {
			if fault == "" && k.rate > 0 && in.rnd.Float64() < k.rate {
				fault = k.name
			}
		}
		if fault != "" {
			in.injected[fault]++
		}
		in.mu.Unlock()
		if f.Latency > 0 {
			select {
			case <-time.After(f.Latency):
			case <-r.Context().Done():
				return
			}
		}
		switch fault {
		case "429":
			ra := f.RetryAfter
			if ra <= 0 {
				ra = time.Second
			}
			secs := int((ra + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", itoa(secs))
			in.errBody(w, http.StatusTooManyRequests, "Too Many Attempts.")
			return
		case "reset":
			cut(w)
			return
		case "5xx":
			in.errBody(w, http.StatusServiceUnavailable, "Service temporarily unavailable (injected fault)")
			return
		case "auth":
			in.errBody(w, http.StatusUnauthorized, "Unauthenticated.")
			return
		case "body200":
			in.errBody(w, http.StatusOK, "Internal error (injected fault, reported in a 200 body)")
			return
		case "hang":
			d := f.HangFor
			if d <= 0 {
				d = 30 * time.Second
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
			cut(w)
			return
		case "acted-reset", "acted-5xx":
			// Carry the request out, then lose or replace its answer.
			next.ServeHTTP(&discard{h: http.Header{}}, r)
			if fault == "acted-reset" {
				cut(w)
				return
			}
			in.errBody(w, http.StatusGatewayTimeout, "Gateway timeout (injected fault, after the request was carried out)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cut closes the connection without an answer (a 502 where the server
// cannot hijack it).
func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	w.WriteHeader(http.StatusBadGateway)
}

// discard is the ResponseWriter of a request whose answer is lost.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// BearerToken returns the token of an "Authorization: Bearer <token>"
// header, or "".
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Clock is a monotonic server clock for emulators: every call returns a time
// strictly after the previous one at the given precision, unless Freeze is
// set, which makes many records share one timestamp (the ties knob).
// Advance moves it forward without waiting (tests expire tokens or step past
// a timestamp that way).
type Clock struct {
	mu        sync.Mutex
	now       func() time.Time
	precision time.Duration
	last      time.Time
	frozen    time.Time
	offset    time.Duration // added to now by Advance
}

// NewClock returns a clock ticking at precision (e.g. time.Millisecond).
func NewClock(now func() time.Time, precision time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now, precision: precision}
}

// Freeze makes Now return t (truncated) until Unfreeze. A zero t unfreezes.
func (c *Clock) Freeze(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = t.UTC().Truncate(c.precision)
}

// Advance moves the clock forward by d at once (d <= 0 does nothing): from
// now on it runs d ahead of its time source. A frozen clock stays frozen, at
// the frozen instant plus d, and runs d ahead once unfrozen.
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	if !c.frozen.IsZero() {
		c.frozen = c.frozen.Add(d).Truncate(c.precision)
	}
}

// Now returns the next server timestamp in UTC.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen
	}
	t := c.now().Add(c.offset).UTC().Truncate(c.precision)
	if !t.After(c.last) {
		t = c.last.Add(c.precision)
	}
	c.last = t
	return t
}

// Rand returns a deterministic random source for seeding data.
func Rand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed*2654435761+1)) }

// ManualClock is a time source a test moves by hand (an emulator's
// Options.Now): Now returns the same instant until Add moves it.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a ManualClock showing t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{now: t} }

// Now returns the clock's instant.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock by d.
func (c *ManualClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
