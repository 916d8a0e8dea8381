package bluerocktel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/httpx"
)

var bothNamings = []Naming{NamingCamel, NamingSnake}

func TestClientSendsAcceptJSON(t *testing.T) {
	emu := NewEmulator(EmulatorOptions{Records: 3})
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

func TestCreateGetFindBothNamings(t *testing.T) {
	for _, n := range bothNamings {
		for _, write := range []Naming{NamingSnake, NamingCamel, NamingAuto} {
			t.Run(string(n)+"/write-"+string(write), func(t *testing.T) {
				// A client writing the other spelling loses fields on a
				// strict server (TestWrongWriteSpellingIsDropped); here the
				// emulator accepts both, to test reading and Find.
				lenient := write != n && write != NamingAuto
				e := newEnv(t, EmulatorOptions{Records: 30, Naming: n, LenientNaming: lenient}, func(o *Options) { o.Naming = write })
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

func TestUpdateSendsOnlyChanged(t *testing.T) {
	for _, n := range bothNamings {
		for _, status := range []int{201, 200} {
			t.Run(string(n), func(t *testing.T) {
				e := newEnv(t, EmulatorOptions{Records: 5, Naming: n, UpdateStatus: status}, func(o *Options) { o.Naming = n })
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
}

func TestDeleteAndNotFound(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 3}, nil)
	ctx := context.Background()
	if err := e.cli.Delete(ctx, EntityProspects, "2"); err != nil {
		t.Fatal(err)
	}
	_, err := e.cli.Get(ctx, EntityProspects, "2")
	if !connectors.IsNotFound(err) || !strings.Contains(err.Error(), `No query results for model [App\Prospect] 2`) {
		t.Errorf("get deleted: %v", err)
	}
	if err := e.cli.Delete(ctx, EntityProspects, "2"); !connectors.IsNotFound(err) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := e.cli.Get(ctx, "contacts", "1"); !connectors.IsRejected(err) {
		t.Errorf("unknown entity: %v", err)
	}
}

func TestValidationRejected(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 3}, nil)
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
	e := newEnv(t, EmulatorOptions{Records: 3}, nil)
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

func TestRateLimitRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 10, Faults: emukit.Faults{RateLimit: 1, RetryAfter: time.Second}}, nil)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := e.cli.Get(ctx, EntityProspects, "1"); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	if e.emu.Injected()["429"] == 0 {
		t.Error("no 429 was injected")
	}
}

func TestServerErrorsRetriedOnGet(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 120, Faults: emukit.Faults{ErrorRate: 0.3, Seed: 7}}, nil)
	recs, _, _ := pullAll(t, e.cli, nil, 20)
	if len(idSet(recs, "")) != 120 {
		t.Errorf("pulled %d of 120 under 5xx", len(idSet(recs, "")))
	}
	if e.emu.Injected()["5xx"] == 0 {
		t.Error("no 5xx was injected")
	}
}

func TestCreateNotRetriedOn5xx(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1, Faults: emukit.Faults{ErrorRate: 1}}, nil)
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
