package overplane

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
)

func TestNewValidatesOptions(t *testing.T) {
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

func TestCreateGetFind(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 30}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Zeta Quarry BV", "company": DefaultCompany, "website": "https://zeta.example",
		"annual_revenue": 250000.0, "no_of_employees": "11-50",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec.ID, "prospect_") || rec.CreatedAt.IsZero() || rec.Fields["company_name"] != "Zeta Quarry BV" {
		t.Fatalf("created record: %+v", rec)
	}
	got, err := e.c.Get(ctx, EntityProspect, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fields["website"] != "https://zeta.example" || got.Fields["annual_revenue"] != 250000.0 || !got.CreatedAt.Equal(rec.CreatedAt) {
		t.Fatalf("got %+v", got)
	}
	found, err := e.c.Find(ctx, EntityProspect, []connectors.Match{{Field: "company_name", Value: "  zeta quarry bv "}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != rec.ID {
		t.Fatalf("find returned %d records", len(found))
	}
	// AND of matches; a seeded one by website.
	seeded, _ := e.emu.Prospect(e.emu.IDs()[7])
	found, err = e.c.Find(ctx, EntityProspect, []connectors.Match{
		{Field: "website", Value: strings.ToUpper(seeded["website"].(string))},
		{Field: "company", Value: DefaultCompany},
	})
	if err != nil || len(found) != 1 || found[0].ID != seeded["id"] {
		t.Fatalf("find by website: %d records, err %v", len(found), err)
	}
	found, err = e.c.Find(ctx, EntityProspect, []connectors.Match{{Field: "company_name", Value: "Zeta Quarry BV"}, {Field: "company", Value: "other"}})
	if err != nil || len(found) != 0 {
		t.Fatalf("find with a failing second match: %d records, err %v", len(found), err)
	}
}

func TestGetMissingIsNotFound(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1}, nil)
	_, err := e.c.Get(context.Background(), EntityProspect, "prospect_doesnotexist")
	if !connectors.IsNotFound(err) {
		t.Fatalf("want NotFound, got %v", err)
	}
	if err := e.c.Delete(context.Background(), EntityProspect, "prospect_doesnotexist"); !connectors.IsNotFound(err) {
		t.Fatalf("delete missing: want NotFound, got %v", err)
	}
}

func TestUpdateSendsOnlyChangedFields(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 5}, nil)
	id := e.emu.IDs()[2]
	before, _ := e.emu.Prospect(id)
	time.Sleep(2 * time.Millisecond) // let the millisecond clock move
	rec, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{"industry": "Aerospace", "fax": nil})
	if err != nil {
		t.Fatal(err)
	}
	var patch *Write
	for _, w := range e.emu.Writes() {
		if w.Method == http.MethodPatch {
			w := w
			patch = &w
		}
	}
	if patch == nil {
		t.Fatal("no PATCH reached the emulator")
	}
	keys := []string{}
	for k := range patch.Body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "fax,industry" {
		t.Fatalf("PATCH body keys %v, want only fax,industry", keys)
	}
	after, _ := e.emu.Prospect(id)
	for k, v := range before {
		switch k {
		case "industry":
			if after[k] != "Aerospace" {
				t.Fatalf("industry = %v", after[k])
			}
		case "fax":
			if after[k] != nil {
				t.Fatalf("fax = %v, want null", after[k])
			}
		case "updated_at":
			if after[k] == v {
				t.Fatal("updated_at did not change on PATCH")
			}
		default:
			if after[k] != v {
				t.Fatalf("%s changed from %v to %v", k, v, after[k])
			}
		}
	}
	if rec.Fields["industry"] != "Aerospace" || !rec.UpdatedAt.After(rec.CreatedAt) {
		t.Fatalf("update returned %+v", rec)
	}
}

func TestWrongTokenIsAuthErrorWithoutTheToken(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1, Token: "sk_test_right_key_123"}, func(o *Options) { o.Token = "sk_test_wrong_key_456" })
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

func TestRateLimitRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 3, Faults: emukit.Faults{RateLimit: 2, RetryAfter: time.Second}}, func(o *Options) { o.NoChildren = true })
	for i := 0; i < 5; i++ {
		if _, err := e.c.Get(context.Background(), EntityProspect, e.emu.IDs()[i%3]); err != nil {
			t.Fatalf("get %d after 429s: %v", i, err)
		}
	}
	if e.emu.Injected()["429"] == 0 {
		t.Fatal("no 429 was injected; the test proves nothing")
	}
}

func TestRateLimitBodyAndHeader(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1, Faults: emukit.Faults{RateLimit: 1, RetryAfter: 2 * time.Second}}, nil)
	e.raw(t, http.MethodGet, "/api/crm/prospect", nil)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/crm/prospect", nil)
	req.Header.Set("Authorization", "Bearer dev-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("status %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestInjected5xxRetriedOnGet(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 5, Faults: emukit.Faults{ErrorRate: 0.3, Seed: 7}}, func(o *Options) {
		o.HTTP = newHTTP(10)
		o.NoChildren = true
	})
	for i := 0; i < 20; i++ {
		if _, err := e.c.Get(context.Background(), EntityProspect, e.emu.IDs()[i%5]); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if e.emu.Injected()["5xx"] == 0 {
		t.Fatal("no 5xx was injected")
	}
}

func TestPost5xxIsOutcomeUnknownAndNotRetried(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1, Faults: emukit.Faults{ErrorRate: 1}}, nil)
	_, err := e.c.Create(context.Background(), connectors.Record{Entity: EntityProspect, Fields: map[string]any{"company": "X"}})
	if !connectors.IsOutcomeUnknown(err) {
		t.Fatalf("want OutcomeUnknown, got %v", err)
	}
	if n := e.emu.Injected()["5xx"]; n != 1 {
		t.Fatalf("POST was sent %d times, want once", n)
	}
}

func TestValidationErrorsAreRejectedWithTheAPIMessage(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 2}, nil)
	ctx := context.Background()
	existing, _ := e.emu.Prospect(e.emu.IDs()[0])
	cases := []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"company_name": "No Company Inc"}, "Missing required param: company"},
		{map[string]any{"company": "X", "annual_revenue": "lots"}, "Invalid annual_revenue: must be a number"},
		{map[string]any{"company": "X", "no_of_employees": "12"}, "no_of_employees"},
		{map[string]any{"company": "X", "colour": "blue"}, "unknown parameter: colour"},
		{map[string]any{"company": "X", "company_name": strings.ToUpper(existing["company_name"].(string))}, "already exists"},
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

func TestConvertStageIsRejected(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1}, nil)
	_, err := e.c.ConvertStage(context.Background(), EntityProspect, e.emu.IDs()[0], "customer")
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "no stage entity") {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownEntityRejected(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1}, nil)
	if _, err := e.c.Get(context.Background(), "customer", "x"); !connectors.IsRejected(err) {
		t.Fatalf("got %v", err)
	}
}

func TestDeleteThenGetIsNotFound(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 3}, nil)
	id := e.emu.IDs()[1]
	if err := e.c.Delete(context.Background(), EntityProspect, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Get(context.Background(), EntityProspect, id); !connectors.IsNotFound(err) {
		t.Fatalf("get after delete: %v", err)
	}
	if e.emu.Len() != 2 {
		t.Fatalf("len %d", e.emu.Len())
	}
}

// TestDecodesVendorDocumentedBodies serves the bodies from testdata (copied
// from the vendor's page) and checks the client reads them.
func TestDecodesVendorDocumentedBodies(t *testing.T) {
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
