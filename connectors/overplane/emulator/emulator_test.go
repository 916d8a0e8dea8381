package emulator

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/emukit"
)

func TestSeedIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := New(Options{Records: 50}), New(Options{Records: 50})
	ia, ib := a.IDs(), b.IDs()
	for i := range ia {
		if ia[i] != ib[i] {
			t.Fatalf("id %d differs: %s vs %s", i, ia[i], ib[i])
		}
		pa, _ := a.Prospect(ia[i])
		pb, _ := b.Prospect(ib[i])
		if fmt.Sprint(pa) != fmt.Sprint(pb) {
			t.Fatalf("prospect %d differs", i)
		}
	}
	idRe := regexp.MustCompile(`^prospect_[0-9A-Za-z]{16}$`)
	ties := map[any]int{}
	for _, id := range ia {
		p, _ := a.Prospect(id)
		if !idRe.MatchString(id) {
			t.Fatalf("id %q is not prospect_<base62>", id)
		}
		ties[p["created_at"]]++
		ct, err := time.Parse(time.RFC3339, p["created_at"].(string))
		if err != nil || ct.Before(seedBase) || ct.After(time.Now()) {
			t.Fatalf("seeded created_at %v", p["created_at"])
		}
	}
	if len(ties) >= 50 {
		t.Fatal("no seeded prospects share a created_at")
	}
}

func TestListShapeOrderAndPaging(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 130, PageCap: 0})
	st, body := e.raw(t, http.MethodGet, "/api/crm/prospect", nil)
	if st != 200 || len(body["data"].([]any)) != 20 || body["has_more"] != true || body["total"] != 130.0 {
		t.Fatalf("default list: %d has_more=%v total=%v n=%d", st, body["has_more"], body["total"], len(body["data"].([]any)))
	}
	_, body = e.raw(t, http.MethodGet, "/api/crm/prospect?limit=500&offset=100", nil)
	if n := len(body["data"].([]any)); n != 30 || body["has_more"] != false {
		t.Fatalf("capped tail page: %d items, has_more %v", n, body["has_more"])
	}
	_, body = e.raw(t, http.MethodGet, "/api/crm/prospect?limit=100", nil)
	data := body["data"].([]any)
	if len(data) != 100 {
		t.Fatalf("limit 100 gave %d", len(data))
	}
	for i := 1; i < len(data); i++ {
		a, b := data[i-1].(map[string]any), data[i].(map[string]any)
		ca, cb := a["created_at"].(string), b["created_at"].(string)
		if ca < cb || (ca == cb && a["id"].(string) < b["id"].(string)) {
			t.Fatalf("list not newest-first with id desc tiebreak at %d", i)
		}
	}
	for _, q := range []string{"limit=-1", "limit=abc", "offset=-5", "offset=x", "limit=", "color=red"} {
		st, body := e.raw(t, http.MethodGet, "/api/crm/prospect?"+q, nil)
		errObj, _ := body["error"].(map[string]any)
		if st != 400 || errObj["type"] != "invalid_request_error" || errObj["message"] == "" || errObj["param"] == "" {
			t.Fatalf("%s: status %d body %v", q, st, body)
		}
	}
	e2 := newServer(t, Options{Records: 30, PageCap: 7})
	_, body = e2.raw(t, http.MethodGet, "/api/crm/prospect?limit=50", nil)
	if n := len(body["data"].([]any)); n != 7 {
		t.Fatalf("PageCap 7 gave %d", n)
	}
}

func TestCRUDOverHTTP(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 2, ValidateLinks: noLinks()})
	st, p := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": "Mine Ltd", "company_name": "Curl Co"})
	if st != 200 || p["company_name"] != "Curl Co" || p["annual_revenue"] != 0.0 || p["industry"] != nil {
		t.Fatalf("POST: %d %v", st, p)
	}
	if ok, _ := regexp.MatchString(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`, p["created_at"].(string)); !ok || p["created_at"] != p["updated_at"] {
		t.Fatalf("timestamps %v %v", p["created_at"], p["updated_at"])
	}
	id := p["id"].(string)
	_, first := e.raw(t, http.MethodGet, "/api/crm/prospect?limit=1", nil)
	if first["data"].([]any)[0].(map[string]any)["id"] != id {
		t.Fatal("new prospect is not listed first")
	}
	// The server clock is strictly monotonic (a millisecond per write at
	// least), so the PATCH's updated_at moves without a sleep.
	st, u := e.raw(t, http.MethodPatch, "/api/crm/prospect/"+id, map[string]any{"territory": "Belgium"})
	if st != 200 || u["territory"] != "Belgium" || u["company_name"] != "Curl Co" || u["updated_at"] == p["updated_at"] || u["created_at"] != p["created_at"] {
		t.Fatalf("PATCH: %d %v", st, u)
	}
	for _, bad := range []map[string]any{{"id": "prospect_x"}, {"created_at": "2020-01-01T00:00:00Z"}, {"annual_revenue": "1"}, {"website": 3.0}} {
		if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect/"+id, bad); st != 400 {
			t.Fatalf("PATCH %v: status %d, want 400", bad, st)
		}
	}
	if st, body := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": "Mine", "company_name": "curl co"}); st != 409 || body["error"].(map[string]any)["code"] != "resource_already_exists" {
		t.Fatalf("duplicate: %d %v", st, body)
	}
	// Empty company_name is not unique-checked.
	for i := 0; i < 2; i++ {
		if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": "Mine"}); st != 200 {
			t.Fatalf("nameless create %d: %d", i, st)
		}
	}
	st, d := e.raw(t, http.MethodDelete, "/api/crm/prospect/"+id, nil)
	if st != 200 || d["id"] != id || d["deleted"] != true {
		t.Fatalf("DELETE: %d %v", st, d)
	}
	st, d = e.raw(t, http.MethodDelete, "/api/crm/prospect/"+id, nil)
	if st != 404 || d["error"].(map[string]any)["code"] != "resource_missing" {
		t.Fatalf("second DELETE: %d %v", st, d)
	}
	// The name is free again.
	if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": "Mine", "company_name": "Curl Co"}); st != 200 {
		t.Fatalf("re-create after delete: %d", st)
	}
	if st, _ := e.raw(t, http.MethodPut, "/api/crm/prospect/"+id, map[string]any{}); st != 405 {
		t.Fatalf("PUT: %d", st)
	}
	if st, _ := e.raw(t, http.MethodGet, "/api/crm/customer", nil); st != 404 {
		t.Fatalf("unknown route: %d", st)
	}
	if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect", "not an object"); st != 400 {
		t.Fatalf("non-object body: %d", st)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 1})
	for _, h := range []string{"", "Bearer nope", "Basic ZGV2LXRva2Vu"} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/api/crm/prospect", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("Authorization %q: %d", h, resp.StatusCode)
		}
	}
}

func TestFreezeMakesTies(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{})
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e.emu.Freeze(at)
	for i := 0; i < 5; i++ {
		e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": "Mine"})
	}
	for _, id := range e.emu.IDs() {
		p, _ := e.emu.Prospect(id)
		if p["created_at"] != "2026-03-01T12:00:00.000Z" {
			t.Fatalf("frozen created_at %v", p["created_at"])
		}
	}
	e.emu.Freeze(time.Time{})
	_, p := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": "Mine"})
	if p["created_at"] == "2026-03-01T12:00:00.000Z" {
		t.Fatal("unfreeze did not work")
	}
}

func TestRateLimitBodyAndHeader(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 1, Faults: emukit.Faults{RateLimit: 1, RetryAfter: 2 * time.Second}})
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

func BenchmarkWrites(b *testing.B) {
	e := New(Options{Records: 10000})
	ids := e.IDs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.mu.Lock()
		p := e.prospects[ids[i%len(ids)]]
		e.patch(p, map[string]any{"fax": "x"})
		np := &prospect{id: e.newID("prospect"), created: e.clock.Now(), f: map[string]any{"company": "x"}}
		e.insert(np)
		e.remove(np)
		e.mu.Unlock()
	}
}
