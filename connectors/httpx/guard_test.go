package httpx

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/crmsync/crmsync/connectors"
)

// A write whose context's guard refuses is never sent, by any method but
// GET and HEAD, nor retried; reads go through; a guard that turns
// between two attempts stops the retry.
func TestWriteGuardStopsWritesBeforeTheyAreSent(t *testing.T) {
	t.Parallel()
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if r.Method == http.MethodPatch {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c := newClient(Options{})
	lost := errors.New("lease lost")
	ctx := connectors.WithWriteGuard(context.Background(), func() error { return lost })
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		_, err := c.Do(ctx, Request{Method: m, URL: srv.URL + "/x", JSON: map[string]int{"a": 1}})
		if !errors.Is(err, connectors.ErrWriteRefused) || !errors.Is(err, lost) {
			t.Errorf("%s under a refusing guard = %v, want ErrWriteRefused and the guard's reason", m, err)
		}
	}
	if n := got.Load(); n != 0 {
		t.Fatalf("the server received %d writes under a refusing guard", n)
	}
	if _, err := c.Do(ctx, Request{Method: "GET", URL: srv.URL + "/x"}); err != nil {
		t.Fatalf("GET under a refusing guard: %v", err)
	}
	// The guard turns after the first attempt: the 503's retry is not sent.
	got.Store(0)
	var calls atomic.Int32
	ctx = connectors.WithWriteGuard(context.Background(), func() error {
		if calls.Add(1) > 1 {
			return lost
		}
		return nil
	})
	if _, err := c.Do(ctx, Request{Method: "PATCH", URL: srv.URL + "/x", JSON: map[string]int{"a": 1}}); !errors.Is(err, lost) {
		t.Fatalf("PATCH whose guard turned = %v", err)
	}
	if n := got.Load(); n != 1 {
		t.Fatalf("PATCH sent %d times; want 1 (the retry refused by the guard)", n)
	}
}
