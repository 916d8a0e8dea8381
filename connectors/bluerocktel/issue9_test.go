package bluerocktel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
)

// Item 11: filter[term_match] is a full-text search whose every vendor
// example is an account number (php-sdk README). On a server whose search
// does not cover e-mail addresses, Find by e-mail must still find the
// record, or the engine creates a duplicate.
func TestFindByEmailDoesNotRelyOnTermMatch(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var queries []url.Values
	emu := brtemu.New(brtemu.Options{Records: 30})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query())
		mu.Unlock()
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cli, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(), Logger: zerolog.Nop(), PageSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := emu.Record(EntityProspects, 17)
	email, _ := rec["email_address"].(string)
	if email == "" {
		t.Fatalf("seeded prospect 17 has no e-mail: %v", rec)
	}
	got, err := cli.Find(context.Background(), EntityProspects, []connectors.Match{{Field: "emailAddress", Value: email}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "17" {
		t.Fatalf("find by e-mail %q: %d records %v, want prospect 17", email, len(got), got)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, q := range queries {
		if q.Get("filter[term_match]") != "" {
			t.Fatalf("find by e-mail sent filter[term_match]=%q", q.Get("filter[term_match]"))
		}
	}
}

// Item 11: an account number is what the vendor's examples search with
// term_match, so Find by account number still narrows with it.
func TestFindByAccountUsesTermMatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 12}, nil)
	rec, _ := e.emu.Record(EntityProspects, 5)
	acct, _ := rec["customer_account"].(string)
	got, err := e.cli.Find(context.Background(), EntityProspects, []connectors.Match{{Field: "customer_account", Value: acct}})
	if err != nil || len(got) != 1 || got[0].ID != "5" {
		t.Fatalf("find by account %q: %v %v", acct, got, err)
	}
}

// Item 12: a role-5 (sales) user sees only prospects visible to sales and
// gets 403 on the others. The 403 is that record refused (Forbidden, a
// dead letter), not the credentials (Auth, which stops the flow), and the
// pull goes on with what the user may see.
func TestSalesUserForbiddenProspect(t *testing.T) {
	t.Parallel()
	sales := brtemu.User{ID: 9, Name: "Sales Rep", Email: "rep@bluerocktel.example", Password: "pw", Role: 5, Token: "sales-token"}
	e := newEnv(t, brtemu.Options{Records: 5, Users: []brtemu.User{sales}, HiddenFromSales: []int64{2, 4}}, func(o *Options) { o.Token = "sales-token" })
	ctx := context.Background()
	_, err := e.cli.Get(ctx, EntityProspects, "2")
	if !connectors.IsForbidden(err) {
		t.Fatalf("get hidden prospect as sales: %v (kind %v), want forbidden", err, connectors.KindOf(err))
	}
	if _, err := e.cli.Update(ctx, EntityProspects, "4", map[string]any{"comment": "x"}); err == nil || connectors.IsAuth(err) || connectors.IsRetryable(err) {
		t.Fatalf("update hidden prospect as sales: %v, want a refusal of that record", err)
	}
	if _, err := e.cli.Get(ctx, EntityProspects, "3"); err != nil {
		t.Fatalf("get visible prospect after a 403: %v", err)
	}
	recs, _, _ := pullAll(t, e.cli, nil, 2)
	ids := idSet(recs, EntityProspects)
	if ids["2"] != 0 || ids["4"] != 0 || ids["1"] != 1 || ids["3"] != 1 || ids["5"] != 1 {
		t.Fatalf("sales pull saw %v, want 1, 3, 5", ids)
	}
	admin := e.newClient(t, nil)
	if _, err := admin.Get(ctx, EntityProspects, "2"); err != nil {
		t.Fatalf("admin get of prospect 2: %v", err)
	}
}
