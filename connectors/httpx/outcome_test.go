package httpx

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

// blockingServer answers nothing until the test ends (or the client goes
// away); n counts the requests it received.
func blockingServer(t *testing.T) (srv *httptest.Server, n *atomic.Int32) {
	t.Helper()
	release := make(chan struct{})
	n = new(atomic.Int32)
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv, n
}

// A request cut by its context after it was sent: a POST may have been acted
// on (OutcomeUnknown), an idempotent request is simply Retryable; the
// context's error stays in the chain either way.
func TestCancelledAfterSendingOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		method   string
		deadline bool
		want     connectors.Kind
		wantErr  error
	}{
		{"POST cancelled", http.MethodPost, false, connectors.OutcomeUnknown, context.Canceled},
		{"POST deadline", http.MethodPost, true, connectors.OutcomeUnknown, context.DeadlineExceeded},
		{"GET cancelled", http.MethodGet, false, connectors.Retryable, context.Canceled},
		{"PUT cancelled", http.MethodPut, false, connectors.Retryable, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // a server and a client of its own
			srv, n := blockingServer(t)
			c := newClient(Options{})
			var ctx context.Context
			var cancel context.CancelFunc
			if tc.deadline {
				ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
			} else {
				ctx, cancel = context.WithCancel(t.Context())
				timer := time.AfterFunc(100*time.Millisecond, cancel)
				defer timer.Stop()
			}
			defer cancel()
			_, err := c.Do(ctx, Request{Method: tc.method, URL: srv.URL + "/create", JSON: map[string]string{"name": "x"}})
			if got := connectors.KindOf(err); got != tc.want {
				t.Errorf("kind %v, want %v (%v)", got, tc.want, err)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v in chain", err, tc.wantErr)
			}
			if n.Load() != 1 {
				t.Errorf("server saw %d requests, want 1", n.Load())
			}
		})
	}
}

// A POST cancelled while it waits for a rate-limiter token was never sent:
// Retryable.
func TestPostCancelledWaitingForRateLimitIsRetryable(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	c := newClient(Options{RateLimit: 0.2, Burst: 1})
	// The limiter is per Client: a call elsewhere takes the one token.
	if _, err := c.Do(t.Context(), Request{Method: "GET", URL: other.URL}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	timer := time.AfterFunc(100*time.Millisecond, cancel)
	defer timer.Stop()
	_, err := c.Do(ctx, Request{Method: "POST", URL: srv.URL, JSON: map[string]string{"name": "x"}})
	if !connectors.IsRetryable(err) {
		t.Errorf("kind %v, want retryable: nothing was sent (%v)", connectors.KindOf(err), err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled in chain", err)
	}
	if n.Load() != 0 {
		t.Errorf("server saw %d requests, want 0", n.Load())
	}
}

// A POST whose attempt ran out of its per-attempt Timeout while waiting out a
// pause was never sent: Retryable, although the caller's context is alive.
func TestPostTimedOutBeforeSendingIsRetryable(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	c := newClient(Options{RetryMax: -1, Timeout: 300 * time.Millisecond, RetryAfterMax: 10 * time.Second})
	if _, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/first"}); !connectors.IsRetryable(err) {
		t.Fatalf("first call: err = %v, want a retryable 429", err)
	}
	_, err := c.Do(t.Context(), Request{Method: "POST", URL: srv.URL + "/create", JSON: map[string]string{"name": "x"}})
	if !connectors.IsRetryable(err) {
		t.Errorf("kind %v, want retryable: nothing was sent (%v)", connectors.KindOf(err), err)
	}
	if n.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", n.Load())
	}
}

// A 429 is a definite "not processed": a POST cancelled while it waits to
// retry one was not acted on.
func TestPostCancelledAfter429IsRetryable(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	c := newClient(Options{RetryAfterMax: 10 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	timer := time.AfterFunc(200*time.Millisecond, cancel)
	defer timer.Stop()
	_, err := c.Do(ctx, Request{Method: "POST", URL: srv.URL, JSON: map[string]string{"name": "x"}})
	if !connectors.IsRetryable(err) {
		t.Errorf("kind %v, want retryable: the only attempt was answered 429 (%v)", connectors.KindOf(err), err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled in chain", err)
	}
	if n.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", n.Load())
	}
}

// A POST answered 429, retried, and cut by its context while the retry is
// in flight may have been acted on by the retry.
func TestPostCancelledDuringRetryAfter429IsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "0.05")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(Options{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		select {
		case <-arrived:
			time.Sleep(20 * time.Millisecond)
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := c.Do(ctx, Request{Method: "POST", URL: srv.URL, JSON: map[string]string{"name": "x"}})
	if !connectors.IsOutcomeUnknown(err) {
		t.Errorf("kind %v, want outcome unknown: the retry was sent (%v)", connectors.KindOf(err), err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled in chain", err)
	}
	if n.Load() != 2 {
		t.Errorf("server saw %d requests, want 2", n.Load())
	}
}

// A POST answered 201 whose context ends before the answer is handed back
// was acted on: not Retryable.
func TestPostCancelledAfter2xxIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":1}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Observe runs after the attempt returns, before the retry policy looks
	// at the context: the shutdown lands between the answer and the caller.
	c := newClient(Options{Observe: func(_ string, status int, _ time.Duration) {
		if status == http.StatusCreated {
			cancel()
		}
	}})
	_, err := c.Do(ctx, Request{Method: "POST", URL: srv.URL, JSON: map[string]string{"name": "x"}})
	if err == nil {
		t.Fatal("no error: the cancellation did not reach the call")
	}
	if !connectors.IsOutcomeUnknown(err) {
		t.Errorf("kind %v, want outcome unknown: the server answered 201 (%v)", connectors.KindOf(err), err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled in chain", err)
	}
}

// Without a cancellation the classification is as before: a POST whose
// connection could not be opened is Retryable, one cut after it was sent is
// OutcomeUnknown.
func TestPostTransportErrors(t *testing.T) {
	t.Parallel()
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		c := newClient(Options{RetryMax: -1})
		_, err = c.Do(t.Context(), Request{Method: "POST", URL: "http://" + addr + "/create", JSON: map[string]string{"name": "x"}})
		if !connectors.IsRetryable(err) {
			t.Errorf("kind %v, want retryable (%v)", connectors.KindOf(err), err)
		}
	})
	t.Run("reset after the request was read", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}))
		defer srv.Close()
		c := newClient(Options{})
		_, err := c.Do(t.Context(), Request{Method: "POST", URL: srv.URL + "/create", JSON: map[string]string{"name": "x"}})
		if !connectors.IsOutcomeUnknown(err) {
			t.Errorf("kind %v, want outcome unknown (%v)", connectors.KindOf(err), err)
		}
		if n.Load() != 1 {
			t.Errorf("server saw %d requests, want 1: a POST cut after sending is not retried", n.Load())
		}
	})
}

// TestClassifyTells401From403: a 401 refuses the credentials (the whole
// system), a 403 one resource (that record is refused, the run goes on).
func TestClassifyTells401From403(t *testing.T) {
	if k := Classify(http.StatusUnauthorized, true); k != connectors.Auth {
		t.Errorf("401: %v, want auth", k)
	}
	if k := Classify(http.StatusForbidden, false); k != connectors.Forbidden {
		t.Errorf("403: %v, want forbidden", k)
	}
}
