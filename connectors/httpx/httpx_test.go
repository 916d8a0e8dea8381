package httpx

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
)

func newClient(o Options) *Client {
	o.System = "test"
	o.RetryWaitMin = time.Millisecond
	o.RetryWaitMax = 5 * time.Millisecond
	o.Logger = zerolog.Nop()
	return New(o)
}

func TestGetRetriedOn503ThenSucceeds(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	c := newClient(Options{})
	resp, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/x"})
	if err != nil {
		t.Fatalf("GET after two 503s: %v", err)
	}
	if n.Load() != 3 || resp.Status != 200 {
		t.Fatalf("attempts=%d status=%d, want 3 attempts and 200", n.Load(), resp.Status)
	}
}

func TestPostNotRetriedOn500AndOutcomeUnknown(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	c := newClient(Options{})
	_, err := c.Do(t.Context(), Request{Method: "POST", URL: srv.URL, JSON: map[string]string{"a": "b"}})
	if n.Load() != 1 {
		t.Fatalf("POST sent %d times after a 500, want exactly 1", n.Load())
	}
	if !connectors.IsOutcomeUnknown(err) {
		t.Fatalf("err = %v, want outcome-unknown", err)
	}
}

func TestPostRetriedOn429WithCappedRetryAfter(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c := newClient(Options{RetryAfterMax: 20 * time.Millisecond})
	start := time.Now()
	resp, err := c.Do(t.Context(), Request{Method: "POST", URL: srv.URL, JSON: map[string]int{}})
	if err != nil || resp.Status != 201 {
		t.Fatalf("POST after 429: resp=%v err=%v", resp, err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("did not wait for Retry-After (capped at 20ms): waited %s", waited)
	}
}

func TestErrorKindsAndRedaction(t *testing.T) {
	t.Parallel()
	secret := "s3cr3t-token-value"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/401":
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"message":"bad token ` + secret + `"}`))
		case "/422":
			w.WriteHeader(422)
			_, _ = w.Write([]byte(`{"message":"The name field is required."}`))
		case "/404":
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	c := newClient(Options{ErrorMessage: func(status int, body []byte) string { return string(body) }})
	c.AddSecret(secret)
	for path, want := range map[string]connectors.Kind{"/401": connectors.Auth, "/422": connectors.Rejected, "/404": connectors.NotFound} {
		_, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + path, Header: http.Header{"Authorization": {"Bearer " + secret}}})
		if connectors.KindOf(err) != want {
			t.Errorf("%s: kind %v, want %v (%v)", path, connectors.KindOf(err), want, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: secret leaked in error: %v", path, err)
		}
	}
	_, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL + "/422"})
	if !strings.Contains(err.Error(), "The name field is required.") {
		t.Errorf("API message missing from error: %v", err)
	}
}

func TestCancelledContextIsReported(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	c := newClient(Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Do(ctx, Request{Method: "GET", URL: srv.URL})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded in chain", err)
	}
}

func TestRateLimitPacesRequests(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	defer srv.Close()
	c := newClient(Options{RateLimit: 50, Burst: 1})
	start := time.Now()
	for i := 0; i < 6; i++ {
		if _, err := c.Do(t.Context(), Request{Method: "GET", URL: srv.URL}); err != nil {
			t.Fatal(err)
		}
	}
	// 6 requests at 50/s with burst 1 need at least 5 intervals of 20ms.
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Fatalf("6 requests at 50 rps took %s; the limiter did not pace them", el)
	}
}
