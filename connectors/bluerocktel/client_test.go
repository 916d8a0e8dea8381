package bluerocktel

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/httpx"
)

var bothNamings = []Naming{NamingCamel, NamingSnake}

func TestClientSendsAcceptJSON(t *testing.T) {
	t.Parallel()
	emu := brtemu.New(brtemu.Options{Records: 3})
	var mu sync.Mutex
	var accepts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accepts = append(accepts, r.Header.Get("Accept"))
		mu.Unlock()
		emu.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL + "/api/", Token: "dev-token", HTTP: newHTTP()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Get(ctx, EntityProspects, "1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, nil, connectors.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(ctx, EntityProspects, "1", map[string]any{"comment": "x"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range accepts {
		if a != "application/json" {
			t.Errorf("request sent Accept %q", a)
		}
	}
}

// The contract suite creates, gets and finds in the default spelling; this
// covers every server spelling with every write spelling, and Find through
// each of the API's filters and without one.
func TestCreateGetFindBothNamings(t *testing.T) {
	t.Parallel()
	for _, n := range bothNamings {
		for _, write := range []Naming{NamingSnake, NamingCamel, NamingAuto} {
			t.Run(string(n)+"/write-"+string(write), func(t *testing.T) {
				t.Parallel()
				// A client writing the other spelling loses fields on a
				// strict server (TestWrongWriteSpellingIsDropped); here the
				// emulator accepts both, to test reading and Find.
				lenient := write != n && write != NamingAuto
				e := newEnv(t, brtemu.Options{Records: 30, Naming: emuNaming(n), LenientNaming: lenient}, func(o *Options) { o.Naming = write })
				ctx := context.Background()
				if write == NamingAuto {
					// Let the client see one answer first.
					if _, err := e.cli.Get(ctx, EntityProspects, "1"); err != nil {
						t.Fatal(err)
					}
				}
				rec, err := e.cli.Create(ctx, connectors.Record{Entity: EntityProspects, Fields: map[string]any{
					"name": "Acme Corp", "email_address": "info@acme.example", "mainContactFirstName": "Ada",
					"charge_vat": false, "phone": "+33 1 23 45 67 89", "prospection_code_id": 3,
				}})
				if err != nil {
					t.Fatal(err)
				}
				if rec.Entity != EntityProspects || rec.ID != "31" || rec.CreatedAt.IsZero() || !rec.UpdatedAt.Equal(rec.CreatedAt) {
					t.Errorf("created record: %+v", rec)
				}
				// Fields are always snake_case, whatever the server spoke.
				f := rec.Fields
				if f["customer_account"] != "PR000031" || f["main_contact_first_name"] != "Ada" || f["charge_vat"] != false ||
					f["prospection_code_id"] != float64(3) || f["accept_emails"] != true {
					t.Errorf("fields: %v", f)
				}
				if _, camel := f["customerAccount"]; camel {
					t.Error("camelCase key leaked into Fields")
				}
				got, err := e.cli.Get(ctx, EntityProspects, rec.ID)
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Fields) != len(rec.Fields) || got.Fields["email_address"] != "info@acme.example" || !got.UpdatedAt.Equal(rec.UpdatedAt) {
					t.Errorf("get differs from create: %v vs %v", got.Fields, rec.Fields)
				}
				for _, m := range [][]connectors.Match{
					{{Field: "name", Value: "  acme corp "}},
					{{Field: "email_address", Value: "INFO@acme.example"}},
					{{Field: "emailAddress", Value: "info@acme.example"}, {Field: "name", Value: "Acme Corp"}},
					{{Field: "phone", Value: "+33 1 23 45 67 89"}}, // no API filter: full scan
					{{Field: "customer_account", Value: "pr000031"}},
				} {
					found, err := e.cli.Find(ctx, EntityProspects, m)
					if err != nil {
						t.Fatal(err)
					}
					if len(found) != 1 || found[0].ID != rec.ID {
						t.Errorf("find %v: %d records", m, len(found))
					}
				}
				// A partial name match is narrowed client-side to none.
				found, err := e.cli.Find(ctx, EntityProspects, []connectors.Match{{Field: "name", Value: "Acme"}})
				if err != nil || len(found) != 0 {
					t.Errorf("partial name matched: %v %v", found, err)
				}
			})
		}
	}
}

// The contract suite checks that Update sends only the changed keys in the
// default profile (camelCase, 201); this covers the snake_case spelling of
// the PUT body and a server answering 200.
func TestUpdateSendsOnlyChangedSnakeAnd200(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n      Naming
		status int
	}{{NamingSnake, 201}, {NamingCamel, 200}} {
		t.Run(fmt.Sprintf("%s/%d", tc.n, tc.status), func(t *testing.T) {
			t.Parallel()
			n := tc.n
			e := newEnv(t, brtemu.Options{Records: 5, Naming: emuNaming(n), UpdateStatus: tc.status}, func(o *Options) { o.Naming = n })
			before, _ := e.emu.Record(EntityProspects, 3)
			rec, err := e.cli.Update(context.Background(), EntityProspects, "3", map[string]any{"comment": "called back", "mobilePhone": "+33 6 11"})
			if err != nil {
				t.Fatal(err)
			}
			if rec.Fields["comment"] != "called back" || rec.Fields["mobile_phone"] != "+33 6 11" || !rec.UpdatedAt.After(before["updated_at"].(time.Time)) {
				t.Errorf("update answer: %v", rec.Fields)
			}
			w := e.emu.Writes()
			body := w[len(w)-1].Body
			if mobile := spell("mobile_phone", n); len(body) != 2 || body["comment"] == nil || body[mobile] == nil {
				t.Errorf("PUT body = %v, want only comment and %s", body, mobile)
			}
			after, _ := e.emu.Record(EntityProspects, 3)
			for k, v := range before {
				if k == "comment" || k == "mobile_phone" || k == "updated_at" {
					continue
				}
				if after[k] != v {
					t.Errorf("%s changed from %v to %v", k, v, after[k])
				}
			}
		})
	}
}

// Every method refuses an entity the API does not have, without a request.
func TestUnknownEntityRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 1}, nil)
	ctx := context.Background()
	_, getErr := e.cli.Get(ctx, "contacts", "1")
	_, findErr := e.cli.Find(ctx, "contacts", []connectors.Match{{Field: "name", Value: "x"}})
	_, createErr := e.cli.Create(ctx, connectors.Record{Entity: "contacts", Fields: map[string]any{"name": "x"}})
	_, updateErr := e.cli.Update(ctx, "contacts", "1", map[string]any{"name": "x"})
	deleteErr := e.cli.Delete(ctx, "contacts", "1")
	for name, err := range map[string]error{"get": getErr, "find": findErr, "create": createErr, "update": updateErr, "delete": deleteErr} {
		if !connectors.IsRejected(err) || !strings.Contains(err.Error(), `unknown entity "contacts"`) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := e.cli.Find(ctx, EntityProspects, nil); !connectors.IsRejected(err) {
		t.Errorf("find without a match: %v", err)
	}
	if w := e.emu.Writes(); len(w) != 0 {
		t.Errorf("requests sent: %v", w)
	}
}

// Find keeps what connectors.MatchesAll keeps: a number matches its
// decimal text, a field named in camelCase matches its snake_case Field,
// and a loose name match ignores punctuation, so it is never sent to the
// server's (exact-text) name filter, which would drop the record.
func TestFindNumericAndLooseName(t *testing.T) {
	t.Parallel()
	emu := brtemu.New(brtemu.Options{Records: 20})
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			queries = append(queries, r.URL.Query().Encode())
			mu.Unlock()
		}
		emu.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(), PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := c.Create(ctx, connectors.Record{Entity: EntityProspects, Fields: map[string]any{
		"name": "Acme B.V.", "representative_id": 1000000, "main_address_city": "Lyon",
	}})
	if err != nil {
		t.Fatal(err)
	}
	find := func(m ...connectors.Match) []connectors.Record {
		t.Helper()
		mu.Lock()
		queries = nil
		mu.Unlock()
		found, err := c.Find(ctx, EntityProspects, m)
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	found := find(connectors.Match{Field: "representative_id", Value: "1000000"},
		connectors.Match{Field: "name", Value: "ACME  BV", Loose: true},
		connectors.Match{Field: "mainAddressCity", Value: " lyon"})
	if len(found) != 1 || found[0].ID != rec.ID {
		t.Fatalf("numeric + loose name + camelCase field: %d records", len(found))
	}
	mu.Lock()
	for _, q := range queries {
		if strings.Contains(q, "filter") {
			t.Errorf("a loose match was sent as a server filter: %s", q)
		}
	}
	if len(queries) < 3 {
		t.Errorf("%d list requests: Find did not scan every page", len(queries))
	}
	mu.Unlock()
	if found := find(connectors.Match{Field: "name", Value: "ACME BV"}); len(found) != 0 {
		t.Errorf("an exact name match ignored punctuation: %d records", len(found))
	}
	if found := find(connectors.Match{Field: "name", Value: "acme b.v."}); len(found) != 1 {
		t.Errorf("exact name, other case: %d records", len(found))
	}
	mu.Lock()
	if len(queries) != 1 || !strings.Contains(queries[0], "filter%5Bname%5D=acme+b.v.") {
		t.Errorf("an exact name match is narrowed by filter[name]: %v", queries)
	}
	mu.Unlock()
	if found := find(connectors.Match{Field: "representative_id", Value: "1e+06"}); len(found) != 0 {
		t.Errorf("a number matched another text than its shortest decimal form: %d records", len(found))
	}
}

func TestValidationRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 3}, nil)
	ctx := context.Background()
	_, err := e.cli.Create(ctx, connectors.Record{Entity: EntityProspects, Fields: map[string]any{"name": "A", "email_address": "not-an-email"}})
	var ce *connectors.Error
	if !connectors.IsRejected(err) || !asErr(err, &ce) || ce.Status != 422 {
		t.Fatalf("want Rejected 422, got %v", err)
	}
	for _, want := range []string{"The name field must be at least 2 characters. (and 1 more error)", "emailAddress: The email address field must be a valid email address."} {
		if !strings.Contains(ce.Message, want) {
			t.Errorf("message %q lacks %q", ce.Message, want)
		}
	}
	if e.emu.Len() != 3 {
		t.Error("invalid record was stored")
	}
	_, err = e.cli.Update(ctx, EntityProspects, "1", map[string]any{"accept_calls": "maybe"})
	if !connectors.IsRejected(err) || !strings.Contains(err.Error(), "The accept calls field must be true or false.") {
		t.Errorf("update 422: %v", err)
	}
}

func TestWrongTokenIsAuthError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 3}, nil)
	c := e.newClient(t, func(o *Options) { o.Token = "wrong-secret-token" })
	_, err := c.Pull(context.Background(), nil, connectors.PullOptions{})
	if !connectors.IsAuth(err) {
		t.Fatalf("want Auth error, got %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-token") {
		t.Errorf("token leaked: %v", err)
	}
	if !strings.Contains(err.Error(), "Unauthenticated.") {
		t.Errorf("API message missing: %v", err)
	}
}

func TestCreateNotRetriedOn5xx(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 1, Faults: emukit.Faults{ErrorRate: 1}}, nil)
	_, err := e.cli.Create(context.Background(), connectors.Record{Entity: EntityProspects, Fields: map[string]any{"name": "Acme"}})
	if !connectors.IsOutcomeUnknown(err) {
		t.Errorf("want OutcomeUnknown, got %v", err)
	}
	if n := e.emu.Injected()["5xx"]; n != 1 {
		t.Errorf("POST sent %d times", n)
	}
}

func asErr(err error, target **connectors.Error) bool {
	e, ok := err.(*connectors.Error)
	if ok {
		*target = e
	}
	return ok
}

// Bodies shaped as Laravel and the vendor's SDK show them, recorded in
// testdata/, must decode the same way whatever the emulator does.
func TestDecodeRecordedBodies(t *testing.T) {
	t.Parallel()
	c, err := New(Options{BaseURL: "http://127.0.0.1:1", Token: "dev-token", HTTP: newHTTP()})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pg, err := c.decodePage(EntityProspects, "test", read("prospects_page.json"))
	if err != nil {
		t.Fatal(err)
	}
	if pg.CurrentPage != 2 || pg.LastPage != 3 || pg.PerPage != 2 || pg.Total != 5 || len(pg.records) != 2 {
		t.Fatalf("page: %+v", pg)
	}
	r := pg.records[0]
	if r.ID != "3" || r.Fields["customer_account"] != "PR000003" || r.Fields["main_contact_first_name"] != "Chloé" ||
		r.UpdatedAt != time.Date(2026, 1, 1, 0, 9, 30, 0, time.UTC) || r.CreatedAt != time.Date(2026, 1, 1, 0, 2, 0, 123456000, time.UTC) {
		t.Errorf("page record: %+v", r)
	}
	for _, name := range []string{"prospect_camel.json", "prospect_snake.json"} {
		resp := read(name)
		var rec connectors.Record
		rec, err = c.decodeOne(EntityProspects, "test", &httpx.Response{Body: resp})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f := rec.Fields
		if rec.ID != "42" || f["customer_account"] != "PR000042" || f["email_address"] != "info@acme.example" ||
			f["charge_vat"] != true || f["merge_invoices"] != false || f["main_address_line1"] != "12 rue de la Paix" ||
			f["prospection_code_id"] != float64(2) || f["accept_emails"] != true || f["representative_id"] != float64(7) {
			t.Errorf("%s: %+v", name, f)
		}
		if _, ok := f["contacts"]; ok {
			t.Errorf("%s: relations kept", name)
		}
		if rec.UpdatedAt != time.Date(2026, 3, 2, 14, 5, 7, 0, time.UTC) {
			t.Errorf("%s: updated_at %v", name, rec.UpdatedAt)
		}
	}
	msg := ErrorMessage(422, read("validation_422.json"))
	if !strings.HasPrefix(msg, "The name field is required. (and 1 more error)") || !strings.Contains(msg, "email_address: The email address field must be a valid email address.") {
		t.Errorf("422 message: %q", msg)
	}
	if ErrorMessage(500, []byte("<html>")) != "" {
		t.Error("non-JSON body should give no message")
	}
}
