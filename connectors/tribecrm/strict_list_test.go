package tribecrm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// Issue finding 5: a 200 that is not a page must not be read as an empty
// page. OData JSON Format v4.01 §12: a collection is an object with a
// "value" array.

// badValueReplies are 200 bodies that are not an OData collection, with
// the text the error message must carry.
var badValueReplies = []struct{ name, body, msg string }{
	{"error object", `{"error":{"message":"x"}}`, `the reply is an error`},
	{"value null", `{"value":null}`, `"value" is null`},
	{"value missing", `{"@odata.context":"$metadata#X","@odata.count":3}`, `no "value" array`},
	{"value object", `{"value":{"ID":"9f1c3a70-5c1e-4d8e-9a1b-000000000001"}}`, `"value" is not an array`},
	{"value twice", `{"value":[{"ID":"9f1c3a70-5c1e-4d8e-9a1b-000000000001","LastMutationDate":"2026-01-01T00:00:00Z"}],"value":[]}`, `"value" appears twice`},
	{"top-level array", `[]`, `not a JSON object`},
}

// corruptEnv is an emulator behind a loopback server that answers every
// request for which bad returns true with 200 and body.
func corruptEnv(t *testing.T, eo emulator.Options, bad func(*http.Request) bool, body string) (*emulator.Emulator, *Client) {
	t.Helper()
	em := emulator.New(eo)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bad(r) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(body))
			return
		}
		em.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return em, c
}

// wantListError checks that err is a retryable *connectors.Error naming
// the system and the request, with msg in its message.
func wantListError(t *testing.T, err error, op, msg string) {
	t.Helper()
	if err == nil {
		t.Fatal("a 200 reply without its \"value\" array was accepted as a page")
	}
	var ce *connectors.Error
	if !asError(err, &ce) {
		t.Fatalf("error is not a *connectors.Error: %v", err)
	}
	if !connectors.IsRetryable(err) || ce.System != System || ce.Op != op || !strings.Contains(ce.Message, msg) {
		t.Fatalf("error = %v (kind %v, system %q, op %q, message %q); want retryable, system %q, op %q, message with %q",
			err, ce.Kind, ce.System, ce.Op, ce.Message, System, op, msg)
	}
}

func pathIs(p string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Path == p }
}

func relationCursor(t *testing.T, step string) connectors.Cursor {
	t.Helper()
	b, err := json.Marshal(pullCursor{V: cursorVersion, Step: step, Pos: map[string]pullPos{}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every list request of Pull, Find and the tenant lookup refuses a reply
// without its collection.
func TestListRepliesWithoutValueAreRetryable(t *testing.T) {
	t.Parallel()
	firstSet := FunnelSet(FlavourOrganization, funnelStages[0])
	cases := []struct {
		name string
		path string
		bad  func(*http.Request) bool
		run  func(ctx context.Context, c *Client) (int, error)
	}{
		{"pull funnel page", firstSet, pathIs("/v1/odata/" + firstSet),
			func(ctx context.Context, c *Client) (int, error) {
				p, err := c.Pull(ctx, nil, connectors.PullOptions{})
				return len(p.Records), err
			}},
		{"pull count", firstSet,
			func(r *http.Request) bool {
				return pathIs("/v1/odata/"+firstSet)(r) && strings.Contains(r.URL.RawQuery, "$top=0")
			},
			func(ctx context.Context, c *Client) (int, error) {
				p, err := c.Pull(ctx, nil, connectors.PullOptions{WantTotal: true})
				return len(p.Records), err
			}},
		{"pull newest relation", SetOrganization, pathIs("/v1/odata/" + SetOrganization),
			func(ctx context.Context, c *Client) (int, error) {
				p, err := c.Pull(ctx, nil, connectors.PullOptions{})
				return len(p.Records), err
			}},
		{"pull relation keyset", SetOrganization, pathIs("/v1/odata/" + SetOrganization),
			func(ctx context.Context, c *Client) (int, error) {
				p, err := c.Pull(ctx, relationCursor(t, SetOrganization), connectors.PullOptions{})
				return len(p.Records), err
			}},
		{"pull person relation keyset", SetPerson, pathIs("/v1/odata/" + SetPerson),
			func(ctx context.Context, c *Client) (int, error) {
				p, err := c.Pull(ctx, relationCursor(t, SetPerson), connectors.PullOptions{})
				return len(p.Records), err
			}},
		{"pull relationships of edited relations", firstSet,
			func(r *http.Request) bool {
				return pathIs("/v1/odata/"+firstSet)(r) && strings.Contains(r.URL.Query().Get("$filter"), "Organization/ID eq")
			},
			func(ctx context.Context, c *Client) (int, error) {
				p, err := c.Pull(ctx, relationCursor(t, SetOrganization), connectors.PullOptions{})
				return len(p.Records), err
			}},
		{"find", firstSet, pathIs("/v1/odata/" + firstSet),
			func(ctx context.Context, c *Client) (int, error) {
				recs, err := c.Find(ctx, orgLead, []connectors.Match{{Field: "Organization.EmailAddress", Value: "nobody@example.com"}})
				return len(recs), err
			}},
		{"tenant lookup", SetIdentity, pathIs("/v1/odata/" + SetIdentity),
			func(ctx context.Context, c *Client) (int, error) {
				rec, err := c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{
					"Organization": map[string]any{"Name": "Strict Lists BV"}}})
				n := 0
				if rec.ID != "" {
					n = 1
				}
				return n, err
			}},
	}
	for _, tc := range cases {
		for _, br := range badValueReplies {
			t.Run(tc.name+"/"+br.name, func(t *testing.T) {
				t.Parallel()
				_, c := corruptEnv(t, emulator.Options{Records: 30}, tc.bad, br.body)
				n, err := tc.run(t.Context(), c)
				wantListError(t, err, "GET /v1/odata/"+tc.path, br.msg)
				if n != 0 {
					t.Errorf("%d records returned with the error", n)
				}
			})
		}
	}
}

// A later @odata.nextLink page without "value" fails the whole read: Find
// does not return the first page's records as if the list ended there.
func TestFindNextLinkPageWithoutValue(t *testing.T) {
	t.Parallel()
	for _, br := range badValueReplies {
		t.Run(br.name, func(t *testing.T) {
			t.Parallel()
			var on atomic.Bool
			_, c := corruptEnv(t, emulator.Options{Records: 20, PageCap: 1}, func(r *http.Request) bool {
				return on.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.RawQuery, "$skip=")
			}, br.body)
			ctx := t.Context()
			for _, name := range []string{"Twin One BV", "Twin Two BV"} {
				if _, err := c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{
					"Organization": map[string]any{"Name": name, "EmailAddress": "twins@strict.example"}}}); err != nil {
					t.Fatal(err)
				}
			}
			m := []connectors.Match{{Field: "Organization.EmailAddress", Value: "twins@strict.example"}}
			if recs, err := c.Find(ctx, orgLead, m); err != nil || len(recs) != 2 {
				t.Fatalf("Find before the fault: %d records, %v", len(recs), err)
			}
			on.Store(true)
			recs, err := c.Find(ctx, orgLead, m)
			wantListError(t, err, "GET /v1/odata/"+orgLead, br.msg)
			if len(recs) != 0 {
				t.Errorf("%d records returned with the error", len(recs))
			}
		})
	}
}

// The scenario: organisations are edited, and the relation step of
// the next pass gets 200 replies without "value". The pass must fail
// (rather than move the keyset past the edits), and once the API is sound
// again the pass from the last good cursor returns every edit.
func TestRelationStepDoesNotSkipEditsOnBadReply(t *testing.T) {
	t.Parallel()
	for _, br := range badValueReplies {
		t.Run(br.name, func(t *testing.T) {
			t.Parallel()
			var on atomic.Bool
			em, c := corruptEnv(t, emulator.Options{Records: 60, SeedSets: []string{orgLead}}, func(r *http.Request) bool {
				return on.Load() && pathIs("/v1/odata/"+SetOrganization)(r)
			}, br.body)
			ctx := t.Context()
			first := pullPass(t, c, nil, connectors.PullOptions{PageSize: 7})
			edited := map[string]bool{}
			for _, id := range em.IDs(orgLead)[:20] {
				if _, err := c.Update(ctx, orgLead, id, map[string]any{"Organization": map[string]any{"PhoneNumber": "+31 20 555 0101"}}); err != nil {
					t.Fatal(err)
				}
				edited[id] = true
			}
			on.Store(true)
			cur := first.next
			var err error
			for i := 0; i < 1000; i++ {
				var p connectors.Page
				p, err = c.Pull(ctx, cur, connectors.PullOptions{PageSize: 7})
				if err != nil {
					break
				}
				if p.Done {
					t.Fatal("the pass ended although the relation step only got replies without \"value\"")
				}
				cur = p.Next
			}
			wantListError(t, err, "GET /v1/odata/"+SetOrganization, br.msg)
			on.Store(false)
			again := pullPass(t, c, cur, connectors.PullOptions{PageSize: 7})
			for id := range edited {
				if _, ok := again.latest[id]; !ok {
					t.Errorf("edit of %s's organisation lost", id)
				}
			}
		})
	}
}

// A 200 whose body is an OData error object is not a written entity: an
// update answered that way was taken for done (found by the fault property
// test in package engine).
func TestWriteAnsweredWithAnErrorBodyIsNotSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 3, SeedSets: []string{orgLead}}, nil)
	ctx := context.Background()
	id := e.em.IDs(orgLead)[0]
	e.em.SetFaults(emukit.Faults{BodyErrorRate: 1})
	_, err := e.c.Update(ctx, orgLead, id, map[string]any{"Organization": map[string]any{"Name": "Changed BV"}})
	e.em.SetFaults(emukit.Faults{})
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.Retryable || !strings.Contains(err.Error(), "the reply is an error") {
		t.Fatalf("update answered 200 with an OData error: %v, want a retryable error", err)
	}
	e.em.SetFaults(emukit.Faults{BodyErrorRate: 1})
	_, err = e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{"Organization": map[string]any{"Name": "Fresh BV"}}})
	e.em.SetFaults(emukit.Faults{})
	if !errors.As(err, &ce) || (ce.Kind != connectors.OutcomeUnknown && ce.Kind != connectors.Retryable) {
		t.Fatalf("create answered 200 with an OData error: %v, want an outcome-unknown (or, before the POST, retryable) error", err)
	}
}
