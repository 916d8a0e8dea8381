package httpx

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/crmsync/crmsync/connectors"
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
//
// When the request's context carries a *call (Do attaches one to every
// POST), the gate records each attempt on it: whether it got past the waits
// to the base transport, whether its request was written (httptrace), and
// the status of its answer.
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
	cl, _ := ctx.Value(callKey{}).(*call)
	var a *attempt
	if cl != nil {
		a = cl.begin()
	}
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
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		// Asked last, after any pause or rate-limit wait: the write goes
		// out now or not at all.
		if err := connectors.CheckWriteGuard(ctx); err != nil {
			return nil, err
		}
	}
	if a != nil {
		a.sent.Store(true)
		r = r.WithContext(httptrace.WithClientTrace(ctx, a.trace()))
	}
	resp, err := g.next.RoundTrip(r)
	if err == nil && resp != nil {
		g.observe(resp)
		if a != nil {
			a.status.Store(int32(resp.StatusCode))
		}
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

type callKey struct{}

// call follows one Do of a POST through its attempts, so that Do can tell a
// request that may have been acted on from one that never reached the
// server.
type call struct {
	mu       sync.Mutex
	attempts []*attempt
}

// attempt is one try of a call. Its fields are written by the transport's
// goroutines (the trace hooks run on the connection's write loop).
type attempt struct {
	sent    atomic.Bool  // got past the pause and the limiter to the base transport
	written atomic.Bool  // the request was written, at least its headers
	status  atomic.Int32 // status of the answer; 0: none
}

func (c *call) begin() *attempt {
	a := &attempt{}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts = append(c.attempts, a)
	return a
}

// trace marks the attempt written as soon as its headers are: WroteRequest
// fires only once the body is in the connection's buffer too, and for a
// large body the last bytes can leave before it does; before WroteHeaders no
// complete request can have left. Only net/http's own transports call these
// hooks.
func (a *attempt) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		WroteHeaders: func() { a.written.Store(true) },
		WroteRequest: func(httptrace.WroteRequestInfo) { a.written.Store(true) },
	}
}

// mayHaveActed reports whether the attempt may have been acted on: it was
// written (or answered) and got no answer that says it was not processed.
// A 4xx (429 above all) is such an answer; a 2xx means it was done, a 5xx
// may mean it was (Classify makes a POST's 5xx OutcomeUnknown), and so may a
// 3xx (a redirect after a create).
func (a *attempt) mayHaveActed() bool {
	st := a.status.Load()
	if st >= 400 && st < 500 {
		return false
	}
	return st != 0 || a.written.Load()
}

// mayHaveActed reports whether any attempt of the call may have been acted
// on (nil: no call was followed).
func (c *call) mayHaveActed() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.attempts {
		if a.mayHaveActed() {
			return true
		}
	}
	return false
}

// lastSent reports whether the call's last attempt got past the pause and
// the limiter to the base transport.
func (c *call) lastSent() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.attempts) > 0 && c.attempts[len(c.attempts)-1].sent.Load()
}
