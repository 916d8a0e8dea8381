package httpx

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

// A server that answers the first n requests 200 with an error object, then
// 200 with a record.
func flakyBodies(t *testing.T, n int64) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if seen.Add(1) <= n {
			_, _ = w.Write([]byte(`{"error":{"code":"InternalServerError","message":"database busy"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"r1"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestErrorObjectIn200IsRetriedForIdempotentRequests(t *testing.T) {
	t.Parallel()
	srv, seen := flakyBodies(t, 2)
	c := New(Options{System: "x", RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	resp, err := c.Do(context.Background(), Request{Method: http.MethodGet, URL: srv.URL + "/r/1", ErrorObjects: true})
	if err != nil || string(resp.Body) != `{"id":"r1"}` || seen.Load() != 3 {
		t.Fatalf("GET answered 200 {error} twice: %v, %d requests; want the record after 3", err, seen.Load())
	}
}

func TestErrorObjectIn200ToPOSTIsOutcomeUnknownAndNotResent(t *testing.T) {
	t.Parallel()
	srv, seen := flakyBodies(t, 1)
	c := New(Options{System: "x", RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	_, err := c.Do(context.Background(), Request{Method: http.MethodPost, URL: srv.URL + "/r", JSON: map[string]any{}, ErrorObjects: true})
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.OutcomeUnknown || ce.Status != 200 || seen.Load() != 1 {
		t.Fatalf("POST answered 200 {error}: %v after %d requests; want outcome unknown after 1", err, seen.Load())
	}
}

func TestCheckFailureIsRetriedThenReported(t *testing.T) {
	t.Parallel()
	srv, seen := flakyBodies(t, 0)
	c := New(Options{System: "x", RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	bad := &connectors.Error{System: "x", Op: "GET /r", Kind: connectors.Retryable, Message: `reply has no "data" array`}
	_, err := c.Do(context.Background(), Request{Method: http.MethodGet, URL: srv.URL + "/r", Check: func(*Response) error { return bad }})
	if !errors.Is(err, bad) || seen.Load() != 3 {
		t.Fatalf("check failing every time: %v after %d requests; want its error after 1 + 2 retries", err, seen.Load())
	}
	// A check error that is not retryable is reported at once.
	seen.Store(0)
	rej := &connectors.Error{System: "x", Kind: connectors.Rejected, Message: "no"}
	_, err = c.Do(context.Background(), Request{Method: http.MethodGet, URL: srv.URL + "/r", Check: func(*Response) error { return rej }})
	if !errors.Is(err, rej) || seen.Load() != 1 {
		t.Fatalf("rejecting check: %v after %d requests", err, seen.Load())
	}
}

func TestErrorInBodyLeavesRecordsAlone(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{"id":"p1","error":{"message":"a field called error"}}`, `{"ID":"x","error":{}}`, `{"value":[]}`, `[]`, ``, `{"error":"text"}`} {
		if err := ErrorInBody("x", http.MethodGet, "GET /", &Response{Status: 200, Body: []byte(body)}); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
}
