package overplane

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
)

// Issue finding 5: a 200 that is not a page must not be read as an empty
// page. Every Overplane list reply (prospects and child tables) carries its
// rows in a "data" array.

// badDataReplies are 200 bodies that are not a list, with the text the
// error message must carry.
var badDataReplies = []struct{ name, body, msg string }{
	{"error object", `{"error":{"message":"x"}}`, `the reply is an error`},
	{"data null", `{"data":null,"has_more":false,"total":0}`, `"data" is null`},
	{"data missing", `{"has_more":false,"total":0}`, `no "data" array`},
	{"data object", `{"data":{"id":"prospect_0000000000000001"},"has_more":false}`, `"data" is not an array`},
	{"data twice", `{"data":[{"id":"prospect_0000000000000001","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}],"data":[],"has_more":false,"total":1}`, `"data" appears twice`},
	{"top-level array", `[]`, `not a JSON object`},
}

// corruptEnv is an emulator behind a loopback server that answers every
// GET of path with 200 and body.
func corruptEnv(t *testing.T, records int, path, body string) *Client {
	t.Helper()
	emu := emulator.New(emulator.Options{Records: records})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == path {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(body))
			return
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(-1), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantListError(t *testing.T, err error, op, msg string) {
	t.Helper()
	if err == nil {
		t.Fatal("a 200 reply without its \"data\" array was accepted as a list")
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

// Pull, Find and Get refuse a prospect list or child list without "data".
func TestListRepliesWithoutDataAreRetryable(t *testing.T) {
	t.Parallel()
	pull := func(ctx context.Context, c *Client) (int, error) {
		p, err := c.Pull(ctx, nil, connectors.PullOptions{PageSize: 5})
		return len(p.Records), err
	}
	find := func(ctx context.Context, c *Client) (int, error) {
		recs, err := c.Find(ctx, EntityProspect, []connectors.Match{{Field: "company", Value: emulator.DefaultCompany}})
		return len(recs), err
	}
	get := func(ctx context.Context, c *Client) (int, error) {
		id := emulator.New(emulator.Options{Records: 3}).IDs()[0]
		rec, err := c.Get(ctx, EntityProspect, id)
		n := 0
		if rec.ID != "" {
			n = 1
		}
		return n, err
	}
	cases := []struct {
		name, path string
		run        func(context.Context, *Client) (int, error)
	}{
		{"pull prospects", prospectPath, pull},
		{"find prospects", prospectPath, find},
		{"pull prospect-lead", leadPath, pull},
		{"pull prospect-opportunity", oppPath, pull},
		{"find prospect-lead", leadPath, find},
		{"get prospect-opportunity", oppPath, get},
	}
	for _, tc := range cases {
		for _, br := range badDataReplies {
			t.Run(tc.name+"/"+br.name, func(t *testing.T) {
				t.Parallel()
				c := corruptEnv(t, 3, tc.path, br.body)
				n, err := tc.run(t.Context(), c)
				wantListError(t, err, "GET "+tc.path, br.msg)
				if n != 0 {
					t.Errorf("%d records returned with the error", n)
				}
			})
		}
	}
}

// A 200 whose body is the API's error object is not a written row: a lead
// row "created" that way was taken for done and the prospect kept no e-mail
// (found by the fault property test in package engine).
func TestWriteAnsweredWithAnErrorBodyIsNotSuccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 1}, nil)
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/crm/prospect-lead" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"error":{"type":"api_error","code":"api_error","message":"lead table locked"}}`))
			return
		}
		e.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL + "/", Token: "dev-token", HTTP: newHTTP(1), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Kappa Mills GmbH", "company": emulator.DefaultCompany,
		"leads": []any{map[string]any{"lead": "crmsync", "lead_name": "Iris Weber", "email": "iris@kappa.example"}},
	}})
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.OutcomeUnknown || !strings.Contains(err.Error(), "lead table locked") {
		t.Fatalf("create whose lead row got a 200 error body: %v, want an outcome-unknown error carrying the API's message", err)
	}
	// An update (PATCH) answered that way is retryable, not done.
	id := e.emu.IDs()[0]
	e.emu.SetFaults(emukit.Faults{BodyErrorRate: 1})
	_, err = e.c.Update(ctx, EntityProspect, id, map[string]any{"website": "https://changed.example"})
	e.emu.SetFaults(emukit.Faults{})
	if !errors.As(err, &ce) || ce.Kind != connectors.Retryable || ce.Status != http.StatusOK {
		t.Fatalf("update answered 200 with an error body: %v, want a retryable error", err)
	}
}
