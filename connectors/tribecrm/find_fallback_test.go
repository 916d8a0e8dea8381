package tribecrm

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// Tribe documents contains/startswith/endswith but not tolower. If the real
// server refuses tolower() in $filter, Find must still work: it narrows
// with contains() and compares on the client.
func TestFindFallsBackWhenTolowerIsRefused(t *testing.T) {
	t.Parallel()
	em := emulator.New(emulator.Options{Records: 40})
	var refused atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "tolower") {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":null,"message":"The function 'tolower' is not supported."}}`))
			return
		}
		em.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	set := FunnelSet("Organization", "Lead")
	created, err := c.Create(t.Context(), connectors.Record{Entity: set, Fields: map[string]any{
		"Organization": map[string]any{"Name": "Fallback Works BV", "EmailAddress": "Info@Fallback.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	found, err := c.Find(t.Context(), set, []connectors.Match{{Field: "Organization.EmailAddress", Value: "info@fallback.example"}})
	if err != nil {
		t.Fatalf("Find after the server refused tolower: %v", err)
	}
	if len(found) != 1 || found[0].ID != created.ID {
		t.Fatalf("found %v, want the created record %s", found, created.ID)
	}
	if refused.Load() != 1 {
		t.Fatalf("tolower sent %d times, want once (then remembered)", refused.Load())
	}
	if _, err := c.Find(t.Context(), set, []connectors.Match{{Field: "Organization.EmailAddress", Value: "INFO@fallback.example"}}); err != nil || refused.Load() != 1 {
		t.Fatalf("second Find: err=%v, tolower sent %d times in all", err, refused.Load())
	}
}
