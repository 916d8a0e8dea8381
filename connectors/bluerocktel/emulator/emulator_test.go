package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

func labels(m map[string]any) []string {
	var out []string
	for _, l := range m["links"].([]any) {
		out = append(out, l.(map[string]any)["label"].(string))
	}
	return out
}

func TestPaginatorShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 40})
	status, _, m, body := e.raw(t, "GET", "/api/v1/prospects?filter[name]=a&per_page=5&page=2", authJSON, "")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	// Every key of Laravel's LengthAwarePaginator::toArray, in its order.
	want := []string{"current_page", "data", "first_page_url", "from", "last_page", "last_page_url", "links",
		"next_page_url", "path", "per_page", "prev_page_url", "to", "total"}
	pos := -1
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Fatalf("key %q missing in %s", k, body)
		}
		p := strings.Index(string(body), `"`+k+`":`)
		if p < pos {
			t.Errorf("key %q out of Laravel's order", k)
		}
		pos = p
	}
	if m["current_page"].(float64) != 2 || m["per_page"].(float64) != 5 || m["from"].(float64) != 6 || m["to"].(float64) != 10 {
		t.Errorf("page numbers wrong: %v %v %v %v", m["current_page"], m["per_page"], m["from"], m["to"])
	}
	// PHP escapes slashes; the URLs are absolute and keep the query string.
	if !strings.Contains(string(body), `"path":"http:\/\/`) {
		t.Errorf("path not PHP-encoded: %s", body[:200])
	}
	next := m["next_page_url"].(string)
	if !strings.HasPrefix(next, e.srv.URL+"/api/v1/prospects?") || !strings.Contains(next, "filter%5Bname%5D=a") || !strings.HasSuffix(next, "page=3") {
		t.Errorf("next_page_url = %q", next)
	}
	if m["prev_page_url"].(string) == "" {
		t.Error("prev_page_url empty on page 2")
	}
	l := labels(m)
	if l[0] != "&laquo; Previous" || l[len(l)-1] != "Next &raquo;" {
		t.Errorf("links labels = %v", l)
	}
	for _, lk := range m["links"].([]any) {
		lm := lk.(map[string]any)
		if lm["label"] == "2" && lm["active"] != true {
			t.Error("current page link not active")
		}
	}
	// Camel is the default naming; FKs and timestamps stay snake_case.
	item := m["data"].([]any)[0].(map[string]any)
	for _, k := range []string{"customerAccount", "mainContactFirstName", "chargeVAT", "prospection_code_id", "brand_id", "created_at"} {
		if _, ok := item[k]; !ok {
			t.Errorf("item lacks %q: %v", k, item)
		}
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$`).MatchString(item["updated_at"].(string)) {
		t.Errorf("timestamp format %q", item["updated_at"])
	}
}

func TestPaginatorEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 30, PageCap: 10})
	// Beyond the last page: empty data, from/to null, last_page >= 1.
	_, _, m, _ := e.raw(t, "GET", "/api/v1/prospects?page=99&per_page=10", authJSON, "")
	if len(m["data"].([]any)) != 0 || m["from"] != nil || m["to"] != nil || m["next_page_url"] != nil {
		t.Errorf("empty page wrong: %v", m)
	}
	// Invalid page -> 1; per_page capped; default per_page 15 capped too.
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects?page=abc&per_page=500", authJSON, "")
	if m["current_page"].(float64) != 1 || m["per_page"].(float64) != 10 || m["prev_page_url"] != nil {
		t.Errorf("invalid page / cap: %v %v", m["current_page"], m["per_page"])
	}
	// No match at all: last_page is still 1.
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects?filter[name]=zzzzzz", authJSON, "")
	if m["last_page"].(float64) != 1 || m["total"].(float64) != 0 || m["from"] != nil {
		t.Errorf("no-match page: %v", m)
	}
	// Default order is id ascending.
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects", authJSON, "")
	data := m["data"].([]any)
	if data[0].(map[string]any)["id"].(float64) != 1 || data[1].(map[string]any)["id"].(float64) != 2 {
		t.Error("default order is not id asc")
	}
}

func TestLinksWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 500})
	cases := map[int]string{
		1:  "&laquo; Previous,1,2,3,4,5,6,7,8,9,10,...,49,50,Next &raquo;",
		25: "&laquo; Previous,1,2,...,22,23,24,25,26,27,28,...,49,50,Next &raquo;",
		48: "&laquo; Previous,1,2,...,41,42,43,44,45,46,47,48,49,50,Next &raquo;",
	}
	for page, want := range cases {
		_, _, m, _ := e.raw(t, "GET", fmt.Sprintf("/api/v1/prospects?per_page=10&page=%d", page), authJSON, "")
		if got := strings.Join(labels(m), ","); got != want {
			t.Errorf("page %d links:\n got %s\nwant %s", page, got, want)
		}
	}
	// Fewer than 14 pages: every page, no gap.
	_, _, m, _ := e.raw(t, "GET", "/api/v1/prospects?per_page=50&page=3", authJSON, "")
	if got := strings.Join(labels(m), ","); got != "&laquo; Previous,1,2,3,4,5,6,7,8,9,10,Next &raquo;" {
		t.Errorf("small slider: %s", got)
	}
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 1})
	status, _, m, _ := e.raw(t, "GET", "/api/v1/prospects", map[string]string{"Accept": "application/json"}, "")
	if status != 401 || m["message"] != "Unauthenticated." {
		t.Errorf("no token: %d %v", status, m)
	}
	status, _, m, _ = e.raw(t, "GET", "/api/v1/prospects/1", map[string]string{"Accept": "application/json", "Authorization": "Bearer nope"}, "")
	if status != 401 || m["message"] != "Unauthenticated." {
		t.Errorf("bad token: %d %v", status, m)
	}
	// Without Accept: application/json Laravel redirects to its login page.
	status, hdr, _, _ := e.raw(t, "GET", "/api/v1/prospects", map[string]string{"Authorization": "Bearer nope"}, "")
	if status != http.StatusFound || hdr.Get("Location") != e.srv.URL+"/login" {
		t.Errorf("no Accept: %d %q", status, hdr.Get("Location"))
	}
	status, _, m, _ = e.raw(t, "PATCH", "/api/v1/prospects/1", authJSON, "")
	if status != 405 || !strings.Contains(m["message"].(string), "Supported methods: GET, HEAD, PUT, DELETE.") {
		t.Errorf("PATCH: %d %v", status, m)
	}
	status, _, _, _ = e.raw(t, "HEAD", "/api/v1/prospects/1", authJSON, "")
	if status != 200 || e.emu.Len() != 1 {
		t.Errorf("HEAD: %d, %d records left", status, e.emu.Len())
	}
	status, _, m, _ = e.raw(t, "GET", "/api/v1/nothing", authJSON, "")
	if status != 404 || m["message"] != "The route api/v1/nothing could not be found." {
		t.Errorf("unknown route: %d %v", status, m)
	}
}

func TestSpatieErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 3})
	status, _, m, _ := e.raw(t, "GET", "/api/v1/prospects?sort=-name", authJSON, "")
	if status != 400 || m["message"] != "Requested sort(s) `name` is not allowed. Allowed sort(s) are `id, created_at, updated_at`." {
		t.Errorf("sort: %d %v", status, m)
	}
	status, _, m, _ = e.raw(t, "GET", "/api/v1/prospects?filter[email]=x", authJSON, "")
	if status != 400 || m["message"] != "Requested filter(s) `email` are not allowed. Allowed filter(s) are `name, id, term_match`." {
		t.Errorf("filter: %d %v", status, m)
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 50})
	rec, _ := e.emu.Record(Prospects, 7)
	name := rec["name"].(string)
	q := "/api/v1/prospects?filter[name]=" + strings.ReplaceAll(strings.ToUpper(name[2:8]), " ", "%20")
	_, _, m, _ := e.raw(t, "GET", q, authJSON, "")
	found := false
	for _, d := range m["data"].([]any) {
		if d.(map[string]any)["name"] == name {
			found = true
		}
	}
	if !found {
		t.Errorf("filter[name] (case-insensitive substring) missed %q", name)
	}
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects?filter[id]=7", authJSON, "")
	if m["total"].(float64) != 1 {
		t.Errorf("filter[id]: total %v", m["total"])
	}
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects?filter[term_match]="+rec["email_address"].(string), authJSON, "")
	if m["total"].(float64) != 0 {
		t.Errorf("filter[term_match] by e-mail matched by default (the vendor only shows account numbers): total %v", m["total"])
	}
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects?filter[term_match]=pr000007", authJSON, "")
	if m["total"].(float64) != 1 {
		t.Errorf("filter[term_match] by account: total %v", m["total"])
	}
}

func TestWritesAndValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 2, Naming: Snake})
	// A snake_case server drops camelCase keys (here an invalid e-mail
	// that is therefore not an error) without a word.
	status, _, m, body := e.raw(t, "POST", "/api/v1/prospects", jsonHdr(nil), `{"name":" Acme Corp ","email_address":"","mobile_phone":"+33 6 00","mainContactFirstName":"Ada","accountEmailAddress":"nope"}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	if m["customer_account"] != "PR000003" || m["name"] != "Acme Corp" || m["email_address"] != nil || m["mobile_phone"] != "+33 6 00" ||
		m["accept_emails"] != true || m["accept_calls"] != true || m["main_address_country"] != "France" ||
		m["prospection_code_id"].(float64) != 1 || m["brand_id"].(float64) != 1 || m["active"] != true ||
		m["main_contact_first_name"] != nil || m["account_email_address"] != nil {
		t.Errorf("create defaults / trimming / camel input dropped: %s", body)
	}
	status, _, m, _ = e.raw(t, "POST", "/api/v1/prospects", jsonHdr(nil), `{"email_address":"nope","active":"yes"}`)
	if status != 422 || m["message"] != "The name field is required. (and 2 more errors)" {
		t.Errorf("422: %d %v", status, m)
	}
	errs := m["errors"].(map[string]any)
	if errs["name"].([]any)[0] != "The name field is required." ||
		errs["email_address"].([]any)[0] != "The email address field must be a valid email address." ||
		errs["active"].([]any)[0] != "The active field must be true or false." {
		t.Errorf("errors: %v", errs)
	}
	status, _, m, _ = e.raw(t, "PUT", "/api/v1/prospects/1", jsonHdr(nil), `{"name":"A"}`)
	if status != 422 || m["message"] != "The name field must be at least 2 characters." {
		t.Errorf("PUT min: %d %v", status, m)
	}
	before, _ := e.emu.Record(Prospects, 1)
	status, _, m, _ = e.raw(t, "PUT", "/api/v1/prospects/1", jsonHdr(nil), `{"customer_account":"","comment":"hello"}`)
	if status != 201 || m["comment"] != "hello" || m["customer_account"] != "PR000001" || m["name"] != before["name"] {
		t.Errorf("PUT merge: %d %v", status, m)
	}
	after, _ := e.emu.Record(Prospects, 1)
	if !after["updated_at"].(time.Time).After(before["updated_at"].(time.Time)) {
		t.Error("updated_at not bumped")
	}
	status, _, m, _ = e.raw(t, "GET", "/api/v1/prospects/42", authJSON, "")
	if status != 404 || m["message"] != `No query results for model [App\Prospect] 42` {
		t.Errorf("404: %d %v", status, m)
	}
	status, _, m, _ = e.raw(t, "DELETE", "/api/v1/prospects/2", authJSON, "")
	if status != 200 || m["message"] == nil || e.emu.Len() != 2 {
		t.Errorf("delete: %d %v len %d", status, m, e.emu.Len())
	}
	status, _, _, _ = e.raw(t, "DELETE", "/api/v1/prospects/2", authJSON, "")
	if status != 404 {
		t.Errorf("second delete: %d", status)
	}
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects/1", authJSON, "")
	if _, ok := m["contacts"]; !ok {
		t.Error("show does not load contacts")
	}
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospection-codes", authJSON, "")
	if m["total"].(float64) != 5 {
		t.Errorf("prospection codes: %v", m)
	}
	if status, _, _, _ = e.raw(t, "PUT", "/api/v1/prospects/1", jsonHdr(nil), `{"prospection_code_id":9}`); status != 422 {
		t.Errorf("unknown prospection code accepted: %d", status)
	}
}

// MySQL gives ties of ORDER BY ... LIMIT no fixed order; the emulator does
// the same unless asked, so a client must add a unique sort key.
func TestTiesAreUnstableWithoutID(t *testing.T) {
	t.Parallel()
	ts := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, Options{Records: 300, SeedTimestamp: ts})
	seen := map[float64]bool{}
	for page := 1; page <= 10; page++ {
		_, _, m, _ := e.raw(t, "GET", fmt.Sprintf("/api/v1/prospects?sort=-updated_at&per_page=30&page=%d", page), authJSON, "")
		for _, d := range m["data"].([]any) {
			seen[d.(map[string]any)["id"].(float64)] = true
		}
	}
	if len(seen) == 300 {
		t.Error("sorting on a tied column alone read every record; ties should be unstable across pages")
	}
	seen = map[float64]bool{}
	for page := 1; page <= 10; page++ {
		_, _, m, _ := e.raw(t, "GET", fmt.Sprintf("/api/v1/prospects?sort=-updated_at,-id&per_page=30&page=%d", page), authJSON, "")
		for _, d := range m["data"].([]any) {
			seen[d.(map[string]any)["id"].(float64)] = true
		}
	}
	if len(seen) != 300 {
		t.Errorf("with id in the sort, read %d of 300", len(seen))
	}
}

func TestDeterministicSeed(t *testing.T) {
	t.Parallel()
	a := New(Options{Records: 20})
	b := New(Options{Records: 20})
	for id := int64(1); id <= 20; id++ {
		ra, _ := a.Record(Prospects, id)
		rb, _ := b.Record(Prospects, id)
		if fmt.Sprint(ra) != fmt.Sprint(rb) {
			t.Fatalf("seed differs for id %d", id)
		}
	}
	// Some seeded records share updated_at exactly; codes span 1..5.
	ups := map[time.Time]int{}
	codes := map[any]bool{}
	for id := int64(1); id <= 20; id++ {
		r, _ := a.Record(Prospects, id)
		ups[r["updated_at"].(time.Time)]++
		codes[r["prospection_code_id"]] = true
	}
	shared := false
	for _, n := range ups {
		if n > 1 {
			shared = true
		}
	}
	if !shared || len(codes) != 5 {
		t.Errorf("seed variety: shared=%v codes=%v", shared, codes)
	}
}

func TestLoginParameterForms(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	q := url.Values{"email": {"admin@bluerocktel.example"}, "password": {"password"}}.Encode()
	for name, c := range map[string]struct {
		path, ct, body string
	}{
		"json":  {"/api/login", "application/json", `{"email":"` + "admin@bluerocktel.example" + `","password":"` + "password" + `"}`},
		"form":  {"/api/login", "application/x-www-form-urlencoded", q},
		"query": {"/api/login?" + q, "", ""},
	} {
		hdr := map[string]string{"Accept": "application/json"}
		if c.ct != "" {
			hdr["Content-Type"] = c.ct
		}
		status, _, m, body := e.raw(t, "POST", c.path, hdr, c.body)
		if status != 200 || m["token"] == "" || m["user"].(map[string]any)["email"] != "admin@bluerocktel.example" || m["teams"] == nil || m["support_teams"] == nil {
			t.Errorf("%s: %d %s", name, status, body)
			continue
		}
		tok := m["token"].(string)
		status, _, _, _ = e.raw(t, "GET", "/api/v1/prospects", map[string]string{"Accept": "application/json", "Authorization": "Bearer " + tok}, "")
		if status != 200 {
			t.Errorf("%s: issued token refused: %d", name, status)
		}
	}
	status, _, m, _ := e.raw(t, "POST", "/api/login", map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, `{"email":"x@y.z","password":"no"}`)
	if status != 401 || m["message"] == nil {
		t.Errorf("bad login: %d %v", status, m)
	}
	status, _, m, _ = e.raw(t, "GET", "/api/version", nil, "")
	if status != 200 || m["version"] != "1.0" || m["status"] != "ok" {
		t.Errorf("version: %d %v", status, m)
	}
}

// TestDefaultProfileIsStrictCamel checks the emulator's default
// profile over plain HTTP: it answers camelCase and keeps only camelCase
// keys of a POST or PUT (keys spelt the same in both spellings too); the
// snake_case twins are dropped and the answer is still 201.
func TestDefaultProfileIsStrictCamel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 1})
	status, _, m, body := e.raw(t, "POST", "/api/v1/prospects", jsonHdr(nil),
		`{"name":"Acme Corp","emailAddress":"a@acme.example","email_address":"b@acme.example","main_contact_first_name":"Ada","mainContactLastName":"Lovelace","charge_vat":false,"sector_id":4}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	if m["emailAddress"] != "a@acme.example" || m["mainContactFirstName"] != nil || m["mainContactLastName"] != "Lovelace" ||
		m["chargeVAT"] != true || m["sector_id"] != float64(4) || m["name"] != "Acme Corp" {
		t.Errorf("create kept the wrong keys: %s", body)
	}
	if _, snake := m["email_address"]; snake {
		t.Errorf("answer not in camelCase: %s", body)
	}
	before, _ := e.emu.Record(Prospects, 2)
	status, _, m, body = e.raw(t, "PUT", "/api/v1/prospects/2", jsonHdr(nil), `{"email_address":"c@acme.example","main_address_city":"Lyon"}`)
	if status != 201 || m["emailAddress"] != "a@acme.example" || m["mainAddressCity"] != nil {
		t.Errorf("PUT in snake_case changed the record: %d %s", status, body)
	}
	after, _ := e.emu.Record(Prospects, 2)
	if !sameJSON(after, before) {
		t.Errorf("PUT of dropped keys touched the record: %v -> %v", before, after)
	}

	// SetNaming switches the accepted spelling with the answers'.
	e.emu.SetNaming(Snake)
	status, _, m, body = e.raw(t, "PUT", "/api/v1/prospects/2", jsonHdr(nil), `{"email_address":"c@acme.example","mainAddressCity":"Lyon"}`)
	if status != 201 || m["email_address"] != "c@acme.example" || m["main_address_city"] != nil {
		t.Errorf("after SetNaming(snake): %d %s", status, body)
	}
}

// GET /api/v1/customers/search?term= answers a plain JSON array (not a
// paginator page) of the customers whose name, account number or e-mail
// contains the term.
func TestSearchCustomers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 5, Customers: 12})
	rec, _ := e.emu.Record(Customers, 7)
	status, _, m, body := e.raw(t, "GET", "/api/v1/customers/search?term=CL000007", authJSON, "")
	if status != 200 || m != nil || !strings.HasPrefix(string(body), "[") || !strings.Contains(string(body), rec["name"].(string)) {
		t.Errorf("search: %d %s", status, body)
	}
	var list []map[string]any
	if err := json.Unmarshal(body, &list); err != nil || len(list) != 1 || list[0]["customerAccount"] != "CL000007" {
		t.Errorf("search by account: %v %v", list, err)
	}
	if _, _, _, body = e.raw(t, "GET", "/api/v1/customers/search?term=", authJSON, ""); string(body) != "[]" {
		t.Errorf("empty term: %s", body)
	}
}

// BenchmarkWrites measures PUTs against a 10,000-record emulator
// (the connector brief asks for 10,000 records and 20,000 writes to take
// seconds): go test -bench Writes -benchtime 20000x
func BenchmarkWrites(b *testing.B) {
	emu := New(Options{Records: 10000})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("PUT", fmt.Sprintf("/api/v1/prospects/%d", i%10000+1), strings.NewReader(`{"comment":"bench","phone":"+33 1"}`))
		req.Header.Set("Authorization", "Bearer dev-token")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		emu.ServeHTTP(rec, req)
		if rec.Code != 201 {
			b.Fatalf("status %d", rec.Code)
		}
		if i%100 == 0 { // a list page now and then, as a puller would
			lr := httptest.NewRequest("GET", "/api/v1/prospects?sort=-updated_at,-id&per_page=100", nil)
			lr.Header.Set("Authorization", "Bearer dev-token")
			lr.Header.Set("Accept", "application/json")
			emu.ServeHTTP(httptest.NewRecorder(), lr)
		}
	}
}
