package emulator

import (
	"net/http"
	"testing"
)

// Issue 9 item 12: the seed says role-5 users "only see prospects visible
// to sales (viewable_by_sale scope)" and documents 403 on show; other
// roles see everything.
func TestSalesScope(t *testing.T) {
	t.Parallel()
	sales := User{ID: 9, Name: "Rep", Email: "rep@x.example", Password: "pw", Role: 5, Token: "sales-token"}
	e := newEnv(t, Options{Records: 4, Users: []User{sales}, HiddenFromSales: []int64{2}})
	asSales := map[string]string{"Authorization": "Bearer sales-token", "Accept": "application/json"}
	_, _, m, _ := e.raw(t, "GET", "/api/v1/prospects", asSales, "")
	if m["total"].(float64) != 3 {
		t.Errorf("sales list: total %v, want 3", m["total"])
	}
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		st, _, m, _ := e.raw(t, method, "/api/v1/prospects/2", jsonHdr(asSales), `{"comment":"x"}`)
		if st != http.StatusForbidden || m["message"] != "This action is unauthorized." {
			t.Errorf("sales %s hidden prospect: %d %v", method, st, m)
		}
	}
	if st, _, _, _ := e.raw(t, "GET", "/api/v1/prospects/3", asSales, ""); st != http.StatusOK {
		t.Errorf("sales get visible prospect: %d", st)
	}
	_, _, m, _ = e.raw(t, "GET", "/api/v1/prospects", authJSON, "")
	if m["total"].(float64) != 4 {
		t.Errorf("admin list: total %v, want 4", m["total"])
	}
	if st, _, _, _ := e.raw(t, "GET", "/api/v1/prospects/2", authJSON, ""); st != http.StatusOK {
		t.Errorf("admin get prospect 2: %d", st)
	}
	if _, ok := e.emu.Record(Prospects, 2); !ok {
		t.Error("prospect 2 deleted by a refused DELETE")
	}
}

// Item 10: a server without a conversion route answers Laravel's
// route-not-found 404, not a missing model, and converts nothing.
func TestNoConvertRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 2, NoConvert: true})
	st, _, m, _ := e.raw(t, "POST", "/api/v1/prospects/1/convert", jsonHdr(authJSON), `{}`)
	if st != http.StatusNotFound || m["message"] != "The route api/v1/prospects/1/convert could not be found." {
		t.Errorf("convert without the route: %d %v", st, m)
	}
	if e.emu.Count(Customers) != 0 || e.emu.Count(Prospects) != 2 {
		t.Errorf("converted anyway: %d customers, %d prospects", e.emu.Count(Customers), e.emu.Count(Prospects))
	}
}

// Item 11: term_match covers e-mail addresses only when told to.
func TestTermMatchEmailOption(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 5, TermMatchEmail: true})
	rec, _ := e.emu.Record(Prospects, 3)
	_, _, m, _ := e.raw(t, "GET", "/api/v1/prospects?filter[term_match]="+rec["email_address"].(string), authJSON, "")
	if m["total"].(float64) != 1 {
		t.Errorf("term_match by e-mail with TermMatchEmail: total %v", m["total"])
	}
}
