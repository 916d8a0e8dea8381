package tribecrm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
)

// Issue 9 finding 1: a relative @odata.nextLink. OData JSON Format v4.01
// §4.6: URLs in a payload may be relative, resolved against the context
// URL, which is relative to the service root. This server is not our
// emulator: it answers as an OData server that pages with relative links
// would, and counts requests that miss.
func TestNextLinkResolvedAsODataSays(t *testing.T) {
	t.Parallel()
	const first = `{"ID":"9f1c3a70-5c1e-4d8e-9a1b-000000000001","Name":"A"}`
	const second = `{"ID":"9f1c3a70-5c1e-4d8e-9a1b-000000000002","Name":"B"}`
	for _, c := range []struct {
		name, context, link string
		ok                  bool
	}{
		{"relative to the context URL", `"@odata.context":"$metadata#Relation_Organization",`, "Relation_Organization?$skiptoken=2", true},
		{"relative, no context URL", ``, "Relation_Organization?$skiptoken=2", true},
		{"absolute context URL", `"@odata.context":"BASE/v1/odata/$metadata#Relation_Organization",`, "Relation_Organization?$skiptoken=2", true},
		{"root-relative", `"@odata.context":"$metadata#Relation_Organization",`, "/v1/odata/Relation_Organization?$skiptoken=2", true},
		{"absolute, same host", ``, "BASE/v1/odata/Relation_Organization?$skiptoken=2", true},
		{"another host", ``, "http://evil.example/v1/odata/Relation_Organization?$skiptoken=2", false},
		{"another scheme", ``, "BASE_HTTPS/v1/odata/Relation_Organization?$skiptoken=2", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var missed atomic.Int32
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path != "/v1/odata/Relation_Organization" {
					missed.Add(1)
					w.WriteHeader(http.StatusNotFound)
					_, _ = w.Write([]byte(`{"error":{"code":"NotFound","message":"no such resource"}}`))
					return
				}
				if r.URL.Query().Get("$skiptoken") == "2" {
					_, _ = w.Write([]byte(`{"value":[` + second + `]}`))
					return
				}
				fill := strings.NewReplacer("BASE_HTTPS", strings.Replace(srv.URL, "http:", "https:", 1), "BASE", srv.URL)
				_, _ = w.Write([]byte(`{` + fill.Replace(c.context) + `"value":[` + first + `],"@odata.nextLink":"` + fill.Replace(c.link) + `"}`))
			}))
			defer srv.Close()
			cl, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(t), Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := cl.getAll(context.Background(), cl.root+"/Relation_Organization", "find Relation_Organization")
			if !c.ok {
				if err == nil || !strings.Contains(err.Error(), "points elsewhere") {
					t.Fatalf("a nextLink to %s was followed (%v, %d rows): the token would go there", c.link, err, len(rows))
				}
				return
			}
			if err != nil || len(rows) != 2 || missed.Load() != 0 {
				t.Fatalf("got %d rows, %v, %d requests to a wrong path; want both pages", len(rows), err, missed.Load())
			}
		})
	}
}
