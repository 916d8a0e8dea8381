package httpx

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
)

// arrivals records, on the server side, when each request came in.
type arrivals struct {
	mu    sync.Mutex
	times []time.Time
	paths []string
}

func (a *arrivals) add(r *http.Request) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.times = append(a.times, time.Now())
	a.paths = append(a.paths, r.Method+" "+r.URL.Path)
	return len(a.times)
}

func (a *arrivals) snapshot() ([]time.Time, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times...), append([]string(nil), a.paths...)
}

// limitedOnce is a server that answers its first request 429 with
// Retry-After: 1 and every later one 200 {}, recording when each arrived.
func limitedOnce(t *testing.T) (*arrivals, *httptest.Server) {
	t.Helper()
	arr := &arrivals{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if arr.add(r) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return arr, srv
}

// A 429 with Retry-After seen by one request holds every goroutine using the
// same Client, whichever method got it and whichever method the others send.
func TestRetryAfterPausesWholeClient(t *testing.T) {
	t.Parallel()
	for _, first := range []string{http.MethodGet, http.MethodPost} {
		t.Run("429 on "+first, func(t *testing.T) {
			t.Parallel() // a server and a client of its own
			arr, srv := limitedOnce(t)

			// The workers start once the client has the 429 in hand, so
			// none of their requests was already on its way when it came.
			got429 := make(chan struct{})
			var once sync.Once
			c := newClient(Options{RetryAfterMax: 5 * time.Second, Observe: func(_ string, status int, _ time.Duration) {
				if status == http.StatusTooManyRequests {
					once.Do(func() { close(got429) })
				}
			}})
			req := func(method, path string) Request {
				r := Request{Method: method, URL: srv.URL + path}
				if method == http.MethodPost {
					r.JSON = map[string]string{"a": "b"}
				}
				return r
			}

			const workers, each = 8, 3
			errs := make(chan error, workers*each+1)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.Do(t.Context(), req(first, "/first"))
				errs <- err
			}()
			select {
			case <-got429:
			case <-time.After(10 * time.Second):
				t.Fatal("the first request never got its 429")
			}
			for i := range workers {
				method := http.MethodGet
				if i%2 == 1 {
					method = http.MethodPost
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range each {
						_, err := c.Do(t.Context(), req(method, "/worker"))
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("request failed: %v", err)
				}
			}

			times, paths := arr.snapshot()
			if want := 1 + 1 + workers*each; len(times) != want {
				t.Fatalf("server saw %d requests, want %d (the 429, its retry, %d worker requests)", len(times), want, workers*each)
			}
			t429 := times[0]
			for i := 1; i < len(times); i++ {
				if d := times[i].Sub(t429); d < 900*time.Millisecond {
					t.Errorf("%s arrived %s after the 429 with Retry-After: 1; the client was not paused", paths[i], d.Round(time.Millisecond))
				}
			}
		})
	}
}

// Which answers pause the Client and for how long: the gap, seen by the
// server, between the answer and the next request of another call.
func TestPauseTriggers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		status     int
		retryAfter string
		opts       Options
		minGap     time.Duration // 0: no pause expected
		maxGap     time.Duration // 0: no upper bound checked
	}{
		{name: "429 Retry-After 1", status: 429, retryAfter: "1", minGap: 900 * time.Millisecond},
		{name: "503 Retry-After 1", status: 503, retryAfter: "1", minGap: 900 * time.Millisecond},
		{name: "429 Retry-After capped", status: 429, retryAfter: "3600", opts: Options{RetryAfterMax: 300 * time.Millisecond},
			minGap: 250 * time.Millisecond, maxGap: 3 * time.Second},
		{name: "429 without Retry-After waits RetryWaitMin", status: 429, opts: Options{RetryWaitMin: 300 * time.Millisecond},
			minGap: 250 * time.Millisecond, maxGap: 3 * time.Second},
		{name: "503 without Retry-After", status: 503, maxGap: 900 * time.Millisecond},
		{name: "500 with Retry-After", status: 500, retryAfter: "1", maxGap: 900 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // a server and a client of its own
			var arr arrivals
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arr.add(r)
				if r.URL.Path == "/fail" {
					if tc.retryAfter != "" {
						w.Header().Set("Retry-After", tc.retryAfter)
					}
					w.WriteHeader(tc.status)
					return
				}
				_, _ = w.Write([]byte(`{}`))
			}))
			defer srv.Close()
			o := tc.opts
			o.System = "test"
			o.RetryMax = -1 // the failing call returns at once; only the pause can hold the next one
			o.Logger = zerolog.Nop()
			c := New(o)
			if _, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/fail"}); connectors.KindOf(err) == 0 {
				t.Fatalf("the failing call: err = %v, want a typed error", err)
			}
			if _, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/ok"}); err != nil {
				t.Fatalf("the next call: %v", err)
			}
			times, _ := arr.snapshot()
			if len(times) != 2 {
				t.Fatalf("server saw %d requests, want 2", len(times))
			}
			gap := times[1].Sub(times[0])
			if tc.minGap > 0 && gap < tc.minGap {
				t.Errorf("next request %s after the %d, want at least %s", gap.Round(time.Millisecond), tc.status, tc.minGap)
			}
			if tc.maxGap > 0 && gap > tc.maxGap {
				t.Errorf("next request %s after the %d, want at most %s", gap.Round(time.Millisecond), tc.status, tc.maxGap)
			}
		})
	}
}

// A call waiting out a pause returns as soon as its context is cancelled,
// without sending anything; a POST so cancelled was not sent, so it is
// Retryable.
func TestCancelDuringPauseReturnsPromptly(t *testing.T) {
	t.Parallel()
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			t.Parallel() // a server and a client of its own
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", "5")
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				_, _ = w.Write([]byte(`{}`))
			}))
			defer srv.Close()
			c := newClient(Options{RetryMax: -1, RetryAfterMax: 10 * time.Second})
			if _, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/first"}); !connectors.IsRetryable(err) {
				t.Fatalf("first call: err = %v, want a retryable 429", err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			timer := time.AfterFunc(100*time.Millisecond, cancel)
			defer timer.Stop()
			start := time.Now()
			_, err := c.Do(ctx, Request{Method: method, URL: srv.URL + "/second", JSON: map[string]int{"x": 1}})
			el := time.Since(start)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled in chain", err)
			}
			if el > 4*time.Second {
				t.Errorf("cancelled call returned after %s; the pause (5s) should not hold a cancelled call", el)
			}
			if !connectors.IsRetryable(err) {
				t.Errorf("kind %v, want retryable: nothing was sent (%v)", connectors.KindOf(err), err)
			}
			if got := n.Load(); got != 1 {
				t.Errorf("server saw %d requests, want 1: the cancelled call must not be sent", got)
			}
		})
	}
}

// After a pause the rate limiter, not a burst of callers that queued during
// the pause, paces what is sent.
func TestRateLimitPacesRequestsAfterPause(t *testing.T) {
	t.Parallel()
	arr, srv := limitedOnce(t)
	c := newClient(Options{RetryMax: -1, RateLimit: 20, Burst: 1})
	if _, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/first"}); !connectors.IsRetryable(err) {
		t.Fatalf("first call: err = %v, want a retryable 429", err)
	}
	const workers = 8
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/worker"}); err != nil {
				t.Errorf("worker: %v", err)
			}
		}()
	}
	wg.Wait()
	times, _ := arr.snapshot()
	if len(times) != 1+workers {
		t.Fatalf("server saw %d requests, want %d", len(times), 1+workers)
	}
	first, last := times[1], times[1]
	for _, at := range times[1:] {
		if at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		if d := at.Sub(times[0]); d < 900*time.Millisecond {
			t.Errorf("worker request %s after the 429 with Retry-After: 1", d.Round(time.Millisecond))
		}
	}
	// 8 requests at 20/s with burst 1 need 7 intervals of 50ms (350ms).
	if span := last.Sub(first); span < 175*time.Millisecond {
		t.Errorf("the %d requests after the pause arrived within %s; the limiter did not pace them", workers, span.Round(time.Millisecond))
	}
}

func TestPauseExtendsNeverShortens(t *testing.T) {
	t.Parallel()
	var p pause
	if p.remaining() > 0 {
		t.Fatal("a new pause is in force")
	}
	if !p.extend(time.Hour) {
		t.Fatal("extend(1h) on no pause did not start one")
	}
	if p.extend(time.Minute) {
		t.Error("a shorter pause reported as extending a longer one")
	}
	if r := p.remaining(); r < 59*time.Minute {
		t.Errorf("a shorter pause shortened it: %s left", r)
	}
	if !p.extend(2*time.Hour) || p.remaining() < 119*time.Minute {
		t.Errorf("a longer pause did not extend it: %s left", p.remaining())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("wait with a cancelled context: %v", err)
	}
	var none pause
	if err := none.wait(ctx); err != nil {
		t.Errorf("wait with no pause in force: %v", err)
	}
}
