package bluerocktel

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
	"github.com/crmsync/crmsync/connectors/httpx"
)

// Issue finding 5: a 200 that is not a page must not be read as an empty
// page. Laravel's paginator JSON carries the page's records in "data".

// badDataReplies are 200 bodies that are not a paginator page, with the
// text the error message must carry.
var badDataReplies = []struct{ name, body, msg string }{
	{"error object", `{"error":{"message":"x"}}`, `no "data" array`},
	{"data null", `{"current_page":1,"data":null,"last_page":1,"per_page":100,"total":0}`, `"data" is null`},
	{"data missing", `{"current_page":1,"last_page":1,"per_page":100,"total":0}`, `no "data" array`},
	{"data object", `{"current_page":1,"data":{"id":1},"last_page":1,"per_page":100,"total":1}`, `"data" is not an array`},
	{"data twice", `{"current_page":1,"data":[{"id":1,"created_at":"2026-01-01T00:00:00.000000Z","updated_at":"2026-01-01T00:00:00.000000Z"}],"data":[],"last_page":1,"per_page":100,"total":1}`, `"data" appears twice`},
	{"top-level array", `[]`, `not a JSON object`},
}

// corruptEnv is an emulator behind a loopback server that answers every
// request for which bad returns true with 200 and body.
func corruptEnv(t *testing.T, eo brtemu.Options, bad func(*http.Request) bool, body string, tweak func(*Options)) *Client {
	t.Helper()
	emu := brtemu.New(eo)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bad(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(body))
			return
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o := Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(), Logger: zerolog.Nop()}
	if tweak != nil {
		tweak(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listGet(path string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == path }
}

func wantListError(t *testing.T, err error, op, msg string) {
	t.Helper()
	if err == nil {
		t.Fatal("a 200 reply without its \"data\" array was accepted as a page")
	}
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error is not a *connectors.Error: %v", err)
	}
	if !connectors.IsRetryable(err) || ce.System != System || ce.Op != op || !strings.Contains(ce.Message, msg) {
		t.Fatalf("error = %v (kind %v, system %q, op %q, message %q); want retryable, system %q, op %q, message with %q",
			err, ce.Kind, ce.System, ce.Op, ce.Message, System, op, msg)
	}
}

// Pull (the full scan the engine rebuilds its match index from after a
// state loss) and Find refuse prospects and customers pages without "data".
func TestListRepliesWithoutDataAreRetryable(t *testing.T) {
	t.Parallel()
	pull := func(ctx context.Context, c *Client) (int, bool, error) {
		p, err := c.Pull(ctx, nil, connectors.PullOptions{})
		return len(p.Records), p.Done, err
	}
	find := func(entity string) func(context.Context, *Client) (int, bool, error) {
		return func(ctx context.Context, c *Client) (int, bool, error) {
			recs, err := c.Find(ctx, entity, []connectors.Match{{Field: "email_address", Value: "nobody@example.com"}})
			return len(recs), false, err
		}
	}
	cases := []struct {
		name, entity string
		run          func(context.Context, *Client) (int, bool, error)
	}{
		{"pull prospects", EntityProspects, pull},
		{"pull customers", EntityCustomers, pull},
		{"find prospects", EntityProspects, find(EntityProspects)},
		{"find customers", EntityCustomers, find(EntityCustomers)},
	}
	for _, tc := range cases {
		for _, br := range badDataReplies {
			t.Run(tc.name+"/"+br.name, func(t *testing.T) {
				t.Parallel()
				c := corruptEnv(t, brtemu.Options{Records: 5, Customers: 5}, listGet(entityPath(tc.entity)), br.body,
					func(o *Options) { o.Entities = []string{tc.entity} })
				n, done, err := tc.run(t.Context(), c)
				wantListError(t, err, "GET "+entityPath(tc.entity), br.msg)
				if n != 0 || done {
					t.Errorf("%d records (done=%v) returned with the error", n, done)
				}
			})
		}
	}
}

// A later page without "data" fails Find: it does not return what the
// first page matched as if the list ended there.
func TestFindLaterPageWithoutData(t *testing.T) {
	t.Parallel()
	for _, br := range badDataReplies {
		t.Run(br.name, func(t *testing.T) {
			t.Parallel()
			var on atomic.Bool
			c := corruptEnv(t, brtemu.Options{Records: 6}, func(r *http.Request) bool {
				return on.Load() && listGet(entityPath(EntityProspects))(r) && r.URL.Query().Get("page") == "2"
			}, br.body, func(o *Options) { o.PageSize = 2 })
			ctx := t.Context()
			first, err := c.Get(ctx, EntityProspects, "1")
			if err != nil {
				t.Fatal(err)
			}
			// main_address_country has no API filter: Find reads every page.
			m := []connectors.Match{{Field: "main_address_country", Value: first.Fields["main_address_country"].(string)}}
			if recs, err := c.Find(ctx, EntityProspects, m); err != nil || len(recs) == 0 {
				t.Fatalf("Find before the fault: %d records, %v", len(recs), err)
			}
			on.Store(true)
			recs, err := c.Find(ctx, EntityProspects, m)
			wantListError(t, err, "GET "+entityPath(EntityProspects), br.msg)
			if len(recs) != 0 {
				t.Errorf("%d records returned with the error", len(recs))
			}
		})
	}
}

// decodePage itself refuses every body without a "data" array.
func TestDecodePageWithoutData(t *testing.T) {
	t.Parallel()
	c, err := New(Options{BaseURL: "http://127.0.0.1:1", Token: "dev-token", HTTP: httpx.New(httpx.Options{System: System})})
	if err != nil {
		t.Fatal(err)
	}
	for _, br := range badDataReplies {
		pg, err := c.decodePage(EntityProspects, "GET /api/v1/prospects", []byte(br.body))
		if pg != nil {
			t.Errorf("%s: page %+v returned", br.name, pg)
		}
		wantListError(t, err, "GET /api/v1/prospects", br.msg)
	}
	pg, err := c.decodePage(EntityProspects, "GET /api/v1/prospects", []byte(`{"current_page":1,"data":[],"last_page":1,"per_page":15,"total":0}`))
	if err != nil || pg == nil || len(pg.records) != 0 || pg.LastPage != 1 || pg.PerPage != 15 {
		t.Fatalf("empty page: %+v, %v", pg, err)
	}
}
