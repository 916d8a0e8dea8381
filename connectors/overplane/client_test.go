package overplane

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
)

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	h := newHTTP(0)
	for _, o := range []Options{
		{BaseURL: "http://x", Token: "t"},
		{BaseURL: "", Token: "t", HTTP: h},
		{BaseURL: "ftp://x", Token: "t", HTTP: h},
		{BaseURL: "http://x", HTTP: h},
	} {
		if _, err := New(o); err == nil {
			t.Fatalf("New(%+v) accepted", o)
		}
	}
}

// TestFindMatchesNumbersAndLooseNames: Find filters by the shared rule
// (connectors.MatchesAll): a number matches its shortest decimal text, a
// Loose name match ignores punctuation while a strict one does not, and
// every match must hold.
func TestFindMatchesNumbersAndLooseNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 30}, func(o *Options) { o.NoChildren = true })
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Zeta Quarry B.V.", "company": emulator.DefaultCompany, "website": "https://zeta.example",
		"annual_revenue": 10000000.0, "no_of_employees": "11-50",
	}})
	if err != nil {
		t.Fatal(err)
	}
	find := func(ms ...connectors.Match) []connectors.Record {
		t.Helper()
		found, err := e.c.Find(ctx, EntityProspect, ms)
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	found := find(connectors.Match{Field: "annual_revenue", Value: "10000000"},
		connectors.Match{Field: "company_name", Value: " zeta-quarry  BV ", Loose: true})
	if len(found) != 1 || found[0].ID != rec.ID {
		t.Fatalf("find by a number and a loose name: %d records, want the created one", len(found))
	}
	if found := find(connectors.Match{Field: "company_name", Value: "Zeta Quarry BV"}); len(found) != 0 {
		t.Fatalf("a strict match ignored punctuation: %d records", len(found))
	}
	// AND of matches; a seeded one by website, upper-cased.
	seeded, _ := e.emu.Prospect(e.emu.IDs()[7])
	found = find(connectors.Match{Field: "website", Value: strings.ToUpper(seeded["website"].(string))},
		connectors.Match{Field: "company", Value: emulator.DefaultCompany})
	if len(found) != 1 || found[0].ID != seeded["id"] {
		t.Fatalf("find by website: %d records", len(found))
	}
	if found := find(connectors.Match{Field: "annual_revenue", Value: "10000000"}, connectors.Match{Field: "company", Value: "other"}); len(found) != 0 {
		t.Fatalf("find with a failing second match: %d records", len(found))
	}
}

// TestDeleteMissingIsNotFound: a DELETE of an unknown id is NotFound (the
// contract suite allows nil too).
func TestDeleteMissingIsNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 1}, nil)
	if err := e.c.Delete(context.Background(), EntityProspect, "prospect_doesnotexist"); !connectors.IsNotFound(err) {
		t.Fatalf("delete missing: want NotFound, got %v", err)
	}
}

func TestWrongTokenIsAuthErrorWithoutTheToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 1, Token: "sk_test_right_key_123"}, func(o *Options) { o.Token = "sk_test_wrong_key_456" })
	_, err := e.c.Pull(context.Background(), nil, connectors.PullOptions{})
	if !connectors.IsAuth(err) {
		t.Fatalf("want Auth error, got %v", err)
	}
	if strings.Contains(errText(err), "sk_test_wrong_key_456") || strings.Contains(errText(err), "sk_test_right_key_123") {
		t.Fatalf("error text leaks a key: %v", err)
	}
	if !strings.Contains(errText(err), "Invalid API Key") {
		t.Fatalf("error lacks the API's message: %v", err)
	}
}

func TestPost5xxIsOutcomeUnknownAndNotRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 1, Faults: emukit.Faults{ErrorRate: 1}}, nil)
	_, err := e.c.Create(context.Background(), connectors.Record{Entity: EntityProspect, Fields: map[string]any{"company": "X"}})
	if !connectors.IsOutcomeUnknown(err) {
		t.Fatalf("want OutcomeUnknown, got %v", err)
	}
	if n := e.emu.Injected()["5xx"]; n != 1 {
		t.Fatalf("POST was sent %d times, want once", n)
	}
}

func TestValidationErrorsAreRejectedWithTheAPIMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 2}, nil)
	ctx := context.Background()
	existing, _ := e.emu.Prospect(e.emu.IDs()[0])
	cases := []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"company_name": "No Company Inc"}, "Missing required param: company"},
		{map[string]any{"company": emulator.DefaultCompany, "annual_revenue": "lots"}, "Invalid annual_revenue: must be a number"},
		{map[string]any{"company": "X"}, "Could not find Company: X"},
		{map[string]any{"company": emulator.DefaultCompany, "colour": "blue"}, "unknown parameter: colour"},
		{map[string]any{"company": emulator.DefaultCompany, "company_name": strings.ToUpper(existing["company_name"].(string))}, "already exists"},
	}
	for _, tc := range cases {
		_, err := e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: tc.fields})
		if !connectors.IsRejected(err) || !strings.Contains(errText(err), tc.want) {
			t.Fatalf("create %v: want Rejected containing %q, got %v", tc.fields, tc.want, err)
		}
	}
	_, err := e.c.Update(ctx, EntityProspect, e.emu.IDs()[1], map[string]any{"company": ""})
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "company") {
		t.Fatalf("clearing company: %v", err)
	}
	if e.emu.Len() != 2 {
		t.Fatalf("refused creates changed the store: %d prospects", e.emu.Len())
	}
}

func TestUnknownEntityRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 1}, nil)
	if _, err := e.c.Get(context.Background(), "customer", "x"); !connectors.IsRejected(err) {
		t.Fatalf("got %v", err)
	}
}

// TestDecodesVendorDocumentedBodies serves the bodies from testdata (copied
// from the vendor's page) and checks the client reads them.
func TestDecodesVendorDocumentedBodies(t *testing.T) {
	t.Parallel()
	read := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	wrap := func(obj []byte) []byte {
		return append(append([]byte(`{"data":[`), obj...), `],"has_more":false,"total":1}`...)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/crm/prospect":
			_, _ = w.Write(read("prospect_list.json"))
		case r.Method == http.MethodGet && r.URL.Path == "/api/crm/prospect/prospect_abc123":
			_, _ = w.Write(read("prospect.json"))
		case r.Method == http.MethodDelete:
			_, _ = w.Write(read("prospect_deleted.json"))
		case r.Method == http.MethodGet && r.URL.Path == "/api/crm/prospect-lead" && r.URL.Query().Get("parent_id") != "":
			_, _ = w.Write(wrap(read("prospect_lead.json")))
		case r.Method == http.MethodGet && r.URL.Path == "/api/crm/prospect-opportunity" && r.URL.Query().Get("parent_id") != "":
			_, _ = w.Write(wrap(read("prospect_opportunity.json")))
		case r.Method == http.MethodPost && r.URL.Path == "/api/crm/prospect":
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(read("error_invalid_request.json"))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: "sk_test_abc", HTTP: newHTTP(0), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := time.Date(2024, 1, 15, 9, 30, 0, 0, time.UTC)
	p, err := c.Pull(ctx, nil, connectors.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 1 || p.Total != 1 || !p.Done || !p.FullScan {
		t.Fatalf("page: %+v", p)
	}
	r := p.Records[0]
	if r.ID != "prospect_abc123" || r.Entity != EntityProspect || !r.CreatedAt.Equal(want) || !r.UpdatedAt.Equal(want) ||
		r.Fields["company_name"] != "Example Corp" || r.Fields["annual_revenue"] != 0.0 || r.Fields["company"] != "Example Corp" {
		t.Fatalf("record: %+v", r)
	}
	leads, _ := r.Fields["leads"].([]any)
	opps, _ := r.Fields["opportunities"].([]any)
	if len(leads) != 1 || len(opps) != 1 {
		t.Fatalf("child rows: %d leads, %d opportunities", len(leads), len(opps))
	}
	if l := leads[0].(map[string]any); l["id"] != "prospect-lead_abc123" || l["idx"] != 1.0 || l["email"] != "user@example.com" || l["status"] != "draft" {
		t.Fatalf("lead row: %v", l)
	}
	if o := opps[0].(map[string]any); o["currency"] != "USD" || o["amount"] != 0.0 || o["contact_person"] != "contact_person_example" {
		t.Fatalf("opportunity row: %v", o)
	}
	g, err := c.Get(ctx, EntityProspect, "prospect_abc123")
	if err != nil || g.ID != "prospect_abc123" || !g.CreatedAt.Equal(want) || g.Fields["prospect_owner"] != "prospect_owner_example" {
		t.Fatalf("get: %+v, %v", g, err)
	}
	if err := c.Delete(ctx, EntityProspect, "prospect_abc123"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{}})
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "Missing required param: company") {
		t.Fatalf("create error: %v", err)
	}
	if m := ErrorMessage(400, read("error_invalid_request.json")); m != "Missing required param: company." {
		t.Fatalf("ErrorMessage = %q", m)
	}
	if m := ErrorMessage(500, []byte("<html>")); m != "" {
		t.Fatalf("ErrorMessage on HTML = %q", m)
	}
}
