package overplane

import (
	"context"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/funnel"
)

func rowsOf(t *testing.T, rec connectors.Record, field string) []map[string]any {
	t.Helper()
	list, ok := rec.Fields[field].([]any)
	if !ok {
		t.Fatalf("record %s has no %s list: %T", rec.ID, field, rec.Fields[field])
	}
	out := make([]map[string]any, len(list))
	for i, r := range list {
		out[i] = r.(map[string]any)
	}
	return out
}

func ids(rows []map[string]any) string {
	var s []string
	for _, r := range rows {
		s = append(s, r["id"].(string))
	}
	return strings.Join(s, ",")
}

func TestEmulatorSeedsChildRowsFromTheProfile(t *testing.T) {
	e := NewEmulator(EmulatorOptions{Records: 12})
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

func TestEmulatorChildEndpoints(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 3}, nil)
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
	// PATCH merges; idx and prospect_id cannot be patched; lead cannot be cleared.
	st, p := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+made[0], map[string]any{"email": "a@b.example"})
	if st != 200 || p["email"] != "a@b.example" || p["lead_name"] != "A" || p["idx"] != 2.0 {
		t.Fatalf("PATCH row: %d %v", st, p)
	}
	for _, bad := range []map[string]any{{"idx": 1.0}, {"prospect_id": other}, {"lead": ""}} {
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

func TestPullAttachesChildRowsAndTheyChangeContent(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 40}, nil)
	seen, _, pages := scan(t, e.c, nil, 15)
	if len(seen) != 40 {
		t.Fatalf("saw %d", len(seen))
	}
	var target connectors.Record
	for _, p := range pages {
		for _, r := range p.Records {
			leads := rowsOf(t, r, "leads")
			rowsOf(t, r, "opportunities")
			if ids(leads) != ids(e.emu.Children("prospect-lead", r.ID)) {
				t.Fatalf("%s: pulled leads %s, emulator has %s", r.ID, ids(leads), ids(e.emu.Children("prospect-lead", r.ID)))
			}
			if len(leads) == 2 {
				target = r
			}
		}
	}
	before := funnel.FingerprintValues(target.Fields)
	lead := rowsOf(t, target, "leads")[1]
	e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+lead["id"].(string), map[string]any{"mobile_no": "+31 6 0000 0000"})
	after, err := e.c.Get(context.Background(), EntityProspect, target.ID)
	if err != nil {
		t.Fatal(err)
	}
	if funnel.FingerprintValues(after.Fields) == before {
		t.Fatal("a child-row edit did not change the record's content")
	}
	if rowsOf(t, after, "leads")[1]["mobile_no"] != "+31 6 0000 0000" {
		t.Fatal("edited row not returned")
	}
}

func TestCreateWithLeadRow(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 2}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Kappa Mills GmbH", "company": DefaultCompany,
		"leads": []any{map[string]any{"lead": "crmsync", "lead_name": "Iris Weber", "email": "iris@kappa.example", "mobile_no": "+49 1"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	leads := rowsOf(t, rec, "leads")
	if len(leads) != 1 || leads[0]["email"] != "iris@kappa.example" || leads[0]["idx"] != 1.0 || leads[0]["prospect_id"] != rec.ID {
		t.Fatalf("created leads %v", leads)
	}
	if len(rowsOf(t, rec, "opportunities")) != 0 {
		t.Fatal("unexpected opportunities")
	}
	got, err := e.c.Get(ctx, EntityProspect, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if funnel.FingerprintValues(got.Fields) != funnel.FingerprintValues(rec.Fields) {
		t.Fatalf("Create's record differs from Get's:\n%v\n%v", rec.Fields, got.Fields)
	}
	found, err := e.c.Find(ctx, EntityProspect, []connectors.Match{{Field: "leads.email", Value: "IRIS@kappa.example"}})
	if err != nil || len(found) != 1 || found[0].ID != rec.ID {
		t.Fatalf("find by lead email: %d, %v", len(found), err)
	}
	found, err = e.c.Find(ctx, EntityProspect, []connectors.Match{{Field: "leads.0.lead_name", Value: "iris weber"}, {Field: "company_name", Value: "kappa mills gmbh"}})
	if err != nil || len(found) != 1 {
		t.Fatalf("find by leads.0.lead_name: %d, %v", len(found), err)
	}
}

func TestCreateWithRefusedChildRowRollsBack(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 2}, nil)
	_, err := e.c.Create(context.Background(), connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Lambda Ltd", "company": DefaultCompany,
		"leads": []any{map[string]any{"lead_name": "No Lead Link"}},
	}})
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "lead") {
		t.Fatalf("want Rejected about lead, got %v", err)
	}
	if e.emu.Len() != 2 {
		t.Fatalf("prospect not rolled back: %d prospects", e.emu.Len())
	}
	_, err = e.c.Create(context.Background(), connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company": DefaultCompany, "leads": "oops",
	}})
	if !connectors.IsRejected(err) || e.emu.Len() != 2 {
		t.Fatalf("malformed leads: %v (len %d)", err, e.emu.Len())
	}
}

// prospectWithLeads returns a seeded prospect with two lead rows.
func prospectWithLeads(t *testing.T, e *env) string {
	for _, id := range e.emu.IDs() {
		if len(e.emu.Children("prospect-lead", id)) == 2 {
			return id
		}
	}
	t.Fatal("no seeded prospect with two leads")
	return ""
}

func writesSince(e *env, n int) []Write { return e.emu.Writes()[n:] }

func TestUpdateChildRowsByIndexPatchesOnlyChangedAttributes(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 9}, nil)
	id := prospectWithLeads(t, e)
	before := e.emu.Children("prospect-lead", id)
	prosBefore, _ := e.emu.Prospect(id)
	n := len(e.emu.Writes())
	rec, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{
		"leads": map[string]any{"0": map[string]any{"email": "new@x.example", "lead_name": before[0]["lead_name"]}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws := writesSince(e, n)
	if len(ws) != 1 || ws[0].Method != http.MethodPatch || ws[0].Path != "/api/crm/prospect-lead/"+before[0]["id"].(string) {
		t.Fatalf("writes: %+v", ws)
	}
	if len(ws[0].Body) != 1 || ws[0].Body["email"] != "new@x.example" {
		t.Fatalf("PATCH body %v, want only the changed email", ws[0].Body)
	}
	after := e.emu.Children("prospect-lead", id)
	if after[0]["email"] != "new@x.example" || after[0]["mobile_no"] != before[0]["mobile_no"] || ids(after) != ids(before) {
		t.Fatalf("rows after: %v", after)
	}
	if rowsOf(t, rec, "leads")[0]["email"] != "new@x.example" {
		t.Fatal("Update did not return the new row")
	}
	if p, _ := e.emu.Prospect(id); p["updated_at"] != prosBefore["updated_at"] {
		t.Fatal("a child-only update PATCHed the prospect")
	}
	// Index past the end creates; a null entry deletes.
	if _, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{
		"leads": map[string]any{"1": nil, "2": map[string]any{"lead": "crmsync", "lead_name": "New Person"}},
	}); err != nil {
		t.Fatal(err)
	}
	after = e.emu.Children("prospect-lead", id)
	if len(after) != 2 || after[0]["id"] != before[0]["id"] || after[1]["lead_name"] != "New Person" || after[1]["idx"] != 2.0 {
		t.Fatalf("rows after create+delete by index: %v", after)
	}
}

func TestUpdateChildRowsMappingListKeepsExtraRows(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 9}, nil)
	id := prospectWithLeads(t, e)
	before := e.emu.Children("prospect-lead", id)
	if _, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{
		"industry": "Robotics",
		"leads":    []any{map[string]any{"lead": before[0]["lead"], "email": "first@x.example"}},
	}); err != nil {
		t.Fatal(err)
	}
	after := e.emu.Children("prospect-lead", id)
	if ids(after) != ids(before) || after[0]["email"] != "first@x.example" || after[1]["email"] != before[1]["email"] {
		t.Fatalf("id-less list must patch by position and keep other rows: %v", after)
	}
	if p, _ := e.emu.Prospect(id); p["industry"] != "Robotics" {
		t.Fatal("prospect field not updated alongside the rows")
	}
}

func TestUpdateChildRowsCompleteListDeletesReordersAndCreates(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 9}, nil)
	id := prospectWithLeads(t, e)
	rec, err := e.c.Get(context.Background(), EntityProspect, id)
	if err != nil {
		t.Fatal(err)
	}
	leads := rowsOf(t, rec, "leads")
	// Add a third row through the API, then send: [second (edited), first], dropping the third, plus a new one.
	_, third := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": id, "lead": "L3"})
	second := map[string]any{}
	for k, v := range leads[1] {
		second[k] = v
	}
	second["status"] = "Converted"
	got, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{
		"leads": []any{second, leads[0], map[string]any{"id": "prospect-lead_gone000000000000", "lead": "crmsync", "lead_name": "Fresh"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	after := e.emu.Children("prospect-lead", id)
	if len(after) != 3 || after[0]["id"] != leads[1]["id"] || after[0]["status"] != "Converted" || after[1]["id"] != leads[0]["id"] || after[2]["lead_name"] != "Fresh" {
		t.Fatalf("rows after complete list: %v", after)
	}
	for _, r := range after {
		if r["id"] == third["id"] {
			t.Fatal("a row missing from a complete list was kept")
		}
	}
	if ids(rowsOf(t, got, "leads")) != ids(after) {
		t.Fatal("Update's returned rows differ from the emulator's")
	}
	// An empty list deletes every row.
	if _, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{"leads": []any{}}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.emu.Children("prospect-lead", id)); n != 0 {
		t.Fatalf("%d rows left after an empty list", n)
	}
}

func TestPullWithChildrenWhileProspectsAreDeleted(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 400}, nil)
	before := e.emu.IDs()
	e.emu.SetPagingEdits(PagingEdits{Deletes: 15, Creates: 2})
	seen, _, pages := scan(t, e.c, nil, 40)
	e.emu.SetPagingEdits(PagingEdits{})
	_, _, deleted := e.emu.PagingEdited()
	gone := map[string]bool{}
	for _, id := range deleted {
		gone[id] = true
	}
	for _, id := range intersect(before, e.emu.IDs()) {
		if seen[id] == 0 {
			t.Fatalf("%s lost", id)
		}
	}
	for _, p := range pages {
		for _, r := range p.Records {
			if _, ok := r.Fields["leads"].([]any); !ok {
				t.Fatalf("record %s pulled without its leads", r.ID)
			}
		}
	}
	dropped := 0
	for id := range gone {
		if seen[id] == 0 {
			dropped++
		}
	}
	t.Logf("%d deleted during the scan, %d of them never returned", len(gone), dropped)
}

func TestChildRowsOrderedByIdx(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 9}, nil)
	id := prospectWithLeads(t, e)
	before := e.emu.Children("prospect-lead", id)
	e.raw(t, http.MethodPost, "/api/crm/prospect-lead/reorder", map[string]any{"parent_id": id, "ids": []string{before[1]["id"].(string)}})
	rec, err := e.c.Get(context.Background(), EntityProspect, id)
	if err != nil {
		t.Fatal(err)
	}
	got := rowsOf(t, rec, "leads")
	if got[0]["id"] != before[1]["id"] || !sort.SliceIsSorted(got, func(i, j int) bool { return rowIdx(got[i]) < rowIdx(got[j]) }) {
		t.Fatalf("leads not in idx order after reorder: %v", got)
	}
}
