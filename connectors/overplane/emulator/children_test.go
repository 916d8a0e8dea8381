package emulator

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors/emukit"
)

func TestSeedsChildRowsFromTheProfile(t *testing.T) {
	t.Parallel()
	e := New(Options{Records: 12})
	counts := map[int]int{}
	rowID := regexp.MustCompile(`^prospect-(lead|opportunity)_[0-9A-Za-z]{16}$`)
	for _, id := range e.IDs() {
		p, _ := e.Prospect(id)
		leads := e.Children("prospect-lead", id)
		counts[len(leads)]++
		for i, l := range leads {
			if !rowID.MatchString(l["id"].(string)) || l["idx"] != float64(i+1) || l["prospect_id"] != id || l["lead"] == "" {
				t.Fatalf("lead row %v", l)
			}
			if _, has := l["created_at"]; has {
				t.Fatal("child rows must have no timestamps")
			}
			domain := strings.TrimPrefix(p["website"].(string), "https://www.")
			if !strings.HasSuffix(l["email"].(string), "@"+domain) {
				t.Fatalf("lead email %v not at the prospect's domain %s", l["email"], domain)
			}
		}
		for _, o := range e.Children("prospect-opportunity", id) {
			if !rowID.MatchString(o["id"].(string)) || o["currency"] != "EUR" {
				t.Fatalf("opportunity row %v", o)
			}
		}
	}
	if counts[0] == 0 || counts[1] == 0 || counts[2] == 0 || len(counts) != 3 {
		t.Fatalf("lead rows per prospect: %v, want a mix of 0, 1 and 2", counts)
	}
	// The first seeded prospect's first lead is the profile's person.
	for _, id := range e.IDs() {
		leads := e.Children("prospect-lead", id)
		if len(leads) == 0 {
			continue
		}
		p, _ := e.Prospect(id)
		for n := 0; n < 12; n++ {
			pf := emukit.Fake(DefaultSeedOffset + n)
			if pf.Company == p["company_name"] {
				if leads[0]["email"] != pf.Email || leads[0]["lead_name"] != pf.FirstName+" "+pf.LastName || leads[0]["mobile_no"] != pf.Mobile {
					t.Fatalf("lead row %v does not carry profile %d's contact", leads[0], n)
				}
			}
		}
	}
}

func TestChildEndpoints(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 3, ValidateLinks: noLinks(), FrappeTypes: true})
	pid := e.emu.IDs()[0]
	other := e.emu.IDs()[1]
	st, body := e.raw(t, http.MethodGet, "/api/crm/prospect-lead", nil)
	if st != 400 || body["error"].(map[string]any)["param"] != "parent_id" {
		t.Fatalf("list without parent_id: %d %v", st, body)
	}
	if st, _ := e.raw(t, http.MethodGet, "/api/crm/prospect-lead?parent_id=prospect_nope", nil); st != 404 {
		t.Fatalf("list under unknown parent: %d", st)
	}
	for _, bad := range []map[string]any{
		{"lead": "L"},                    // no prospect_id
		{"prospect_id": pid},             // no lead
		{"prospect_id": pid, "lead": ""}, // empty lead
		{"prospect_id": pid, "lead": "L", "x": 1.0},
		{"prospect_id": pid, "lead": "L", "email": "not-an-email"},
		{"prospect_id": pid, "lead": "L", "idx": 9.0},
	} {
		if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", bad); st != 400 {
			t.Fatalf("POST lead %v: %d, want 400", bad, st)
		}
	}
	if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": "prospect_nope", "lead": "L"}); st != 404 {
		t.Fatalf("POST under unknown parent: %d", st)
	}
	for _, bad := range []map[string]any{{"prospect_id": pid, "probability": 120.0}, {"prospect_id": pid, "expected_closing": "soon"}, {"prospect_id": pid, "amount": "5"}} {
		if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect-opportunity", bad); st != 400 {
			t.Fatalf("POST opportunity %v: %d, want 400", bad, st)
		}
	}
	// Start clean: delete the seeded rows of pid.
	for _, r := range e.emu.Children("prospect-lead", pid) {
		e.raw(t, http.MethodDelete, "/api/crm/prospect-lead/"+r["id"].(string), nil)
	}
	var made []string
	for _, name := range []string{"A", "B", "C", "D"} {
		st, r := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": pid, "lead": "L-" + name, "lead_name": name})
		if st != 200 || r["idx"] != float64(len(made)+1) || !strings.HasPrefix(r["id"].(string), "prospect-lead_") {
			t.Fatalf("POST row %s: %d %v", name, st, r)
		}
		made = append(made, r["id"].(string))
	}
	// Insert at idx 1.
	st, z := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": pid, "lead": "L-Z", "idx": 1.0})
	if st != 200 || z["idx"] != 1.0 {
		t.Fatalf("insert at idx 1: %d %v", st, z)
	}
	// Delete B: idx stays dense.
	if st, d := e.raw(t, http.MethodDelete, "/api/crm/prospect-lead/"+made[1], nil); st != 200 || d["deleted"] != true {
		t.Fatalf("delete row: %d %v", st, d)
	}
	if st, _ := e.raw(t, http.MethodDelete, "/api/crm/prospect-lead/"+made[1], nil); st != 404 {
		t.Fatal("second delete of a row is not 404")
	}
	_, list := e.raw(t, http.MethodGet, "/api/crm/prospect-lead?parent_id="+pid, nil)
	var names []string
	for i, r := range list["data"].([]any) {
		m := r.(map[string]any)
		if m["idx"] != float64(i+1) {
			t.Fatalf("idx not dense: %v", list)
		}
		names = append(names, m["lead"].(string))
	}
	if strings.Join(names, ",") != "L-Z,L-A,L-C,L-D" || list["total"] != 4.0 || list["has_more"] != false {
		t.Fatalf("rows after insert and delete: %v", names)
	}
	// PATCH merges; lead cannot be cleared; idx and prospect_id move the row
	// (TestPatchIdxMovesRows).
	st, p := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+made[0], map[string]any{"email": "a@b.example"})
	if st != 200 || p["email"] != "a@b.example" || p["lead_name"] != "A" || p["idx"] != 2.0 {
		t.Fatalf("PATCH row: %d %v", st, p)
	}
	if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+made[0], map[string]any{"prospect_id": "prospect_nope"}); st != 404 {
		t.Fatalf("PATCH to an unknown prospect: %d", st)
	}
	for _, bad := range []map[string]any{{"idx": 9.0}, {"idx": "1"}, {"lead": ""}} {
		if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+made[0], bad); st != 400 {
			t.Fatalf("PATCH %v: %d", bad, st)
		}
	}
	if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect-opportunity/"+made[0], map[string]any{}); st != 404 {
		t.Fatal("a lead row is reachable under prospect-opportunity")
	}
	// Reorder.
	_, otherRow := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": other, "lead": "X"})
	for _, bad := range []map[string]any{
		{"parent_id": pid, "ids": []string{otherRow["id"].(string)}},
		{"parent_id": pid, "ids": []string{made[0], made[0]}},
		{"parent_id": pid},
		{"parent_id": pid, "ids": []string{}, "extra": true},
	} {
		if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect-lead/reorder", bad); st != 400 {
			t.Fatalf("reorder %v: %d, want 400", bad, st)
		}
	}
	st, ro := e.raw(t, http.MethodPost, "/api/crm/prospect-lead/reorder", map[string]any{"parent_id": pid, "ids": []string{made[3], made[0]}})
	names = nil
	for i, r := range ro["data"].([]any) {
		m := r.(map[string]any)
		if m["idx"] != float64(i+1) {
			t.Fatalf("reorder idx: %v", ro)
		}
		names = append(names, m["lead"].(string))
	}
	if st != 200 || strings.Join(names, ",") != "L-D,L-A,L-Z,L-C" {
		t.Fatalf("reorder: %d %v", st, names)
	}
	// Deleting the prospect deletes its rows.
	e.raw(t, http.MethodDelete, "/api/crm/prospect/"+pid, nil)
	if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+made[0], map[string]any{"lead_name": "x"}); st != 404 {
		t.Fatalf("row of a deleted prospect still answers: %d", st)
	}
	if st, _ := e.raw(t, http.MethodGet, "/api/crm/prospect-lead?parent_id="+pid, nil); st != 404 {
		t.Fatalf("rows of a deleted prospect listed: %d", st)
	}
}
