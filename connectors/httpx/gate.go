package httpx

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// pause is the instant before which a Client sends nothing: a server that
// answers 429 (or 503 with Retry-After) is over its limit for every caller,
// not only for the request that heard it.
type pause struct {
	mu    sync.Mutex
	until time.Time
}

// extend makes the pause last at least until now+d. A shorter pause than the
// one in force changes nothing; it reports whether the pause grew.
func (p *pause) extend(d time.Duration) bool {
	u := time.Now().Add(d)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !u.After(p.until) {
		return false
	}
	p.until = u
	return true
}

// remaining is how long the pause still lasts (<= 0 when none is in force).
func (p *pause) remaining() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Until(p.until)
}

// wait returns when no pause is in force, or with ctx's error when ctx ends
// first. A pause extended while waiting is waited out too.
func (p *pause) wait(ctx context.Context) error {
	for {
		d := p.remaining()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// gateTransport is the layer between both retryablehttp clients of a Client
// and the base transport. Every attempt, of any method, passes it:
//
//   - it waits out the Client's pause, then takes a rate-limiter token (when
//     a limit is set), then checks the pause again, so that nothing is sent
//     while paused: a token taken while a pause began is dropped and the
//     attempt waits the pause out and queues for a fresh one, so the limiter,
//     not a burst of token holders, paces the requests after a pause;
//   - it starts or extends the pause on a 429 (Retry-After, or RetryWaitMin
//     without one) and on a 503 with Retry-After, capped at RetryAfterMax.
//
// All waits honour the request's context (the caller's context and the
// per-attempt Timeout): a cancelled call returns at once, unsent.
type gateTransport struct {
	next         http.RoundTripper
	lim          *rate.Limiter // nil: no rate limit
	pause        *pause
	retryWaitMin time.Duration
	maxPause     time.Duration
	log          zerolog.Logger
}

func (g *gateTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	for {
		if err := g.pause.wait(ctx); err != nil {
			return nil, err
		}
		if g.lim == nil {
			break
		}
		if err := g.lim.Wait(ctx); err != nil {
			return nil, err
		}
		if g.pause.remaining() <= 0 {
			break
		}
	}
	resp, err := g.next.RoundTrip(r)
	if err == nil && resp != nil {
		g.observe(resp)
	}
	return resp, err
}

// observe starts or extends the pause when resp asks the client to back off.
func (g *gateTransport) observe(resp *http.Response) {
	var d time.Duration
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		d = retryAfter(resp, time.Now())
		if d <= 0 {
			d = g.retryWaitMin
		}
	case http.StatusServiceUnavailable:
		d = retryAfter(resp, time.Now())
	}
	if d <= 0 {
		return
	}
	if d > g.maxPause {
		d = g.maxPause
	}
	if g.pause.extend(d) {
		g.log.Debug().Int("status", resp.StatusCode).Dur("pause", d).Msg("server asked to back off; holding every request of this client")
	}
}
