package overplane

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
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

func TestPullAttachesChildRowsAndTheyChangeContent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 40}, nil)
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
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 2}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Kappa Mills GmbH", "company": emulator.DefaultCompany,
		"leads": []any{map[string]any{"lead_name": "Iris Weber", "email": "iris@kappa.example", "mobile_no": "+49 1"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	leads := rowsOf(t, rec, "leads")
	if len(leads) != 1 || leads[0]["email"] != "iris@kappa.example" || leads[0]["idx"] != 1.0 || leads[0]["prospect_id"] != rec.ID {
		t.Fatalf("created leads %v", leads)
	}
	// The row links to a Lead made for the contact (issue 9 item 7).
	lead, ok := e.emu.Linked("lead", leads[0]["lead"].(string))
	if !ok || lead["email_id"] != "iris@kappa.example" || lead["lead_name"] != "Iris Weber" || lead["company_name"] != "Kappa Mills GmbH" {
		t.Fatalf("row's lead %v links to %v", leads[0]["lead"], lead)
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
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 2}, nil)
	_, err := e.c.Create(context.Background(), connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Lambda Ltd", "company": emulator.DefaultCompany,
		"leads": []any{map[string]any{"lead": "lead_0000000000000000", "lead_name": "Dead Link"}},
	}})
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "Could not find Row #1: Lead: lead_0000000000000000") {
		t.Fatalf("want Rejected about lead, got %v", err)
	}
	if e.emu.Len() != 2 {
		t.Fatalf("prospect not rolled back: %d prospects", e.emu.Len())
	}
	_, err = e.c.Create(context.Background(), connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company": emulator.DefaultCompany, "leads": "oops",
	}})
	if !connectors.IsRejected(err) || e.emu.Len() != 2 {
		t.Fatalf("malformed leads: %v (len %d)", err, e.emu.Len())
	}
	_, err = e.c.Create(context.Background(), connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company": emulator.DefaultCompany, "leads": []any{"not a row"},
	}})
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "leads[0]: want an object, got not a row") || e.emu.Len() != 2 {
		t.Fatalf("a lead row that is not an object: %v (len %d)", err, e.emu.Len())
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

func writesSince(e *env, n int) []emulator.Write { return e.emu.Writes()[n:] }

func TestUpdateChildRowsByIndexPatchesOnlyChangedAttributes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 9}, nil)
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
	// A new e-mail is a new Lead: it is created, and the row relinked.
	ws := writesSince(e, n)
	if len(ws) != 2 || ws[0].Method != http.MethodPost || ws[0].Path != "/api/crm/lead" || ws[0].Body["email_id"] != "new@x.example" ||
		ws[1].Method != http.MethodPatch || ws[1].Path != "/api/crm/prospect-lead/"+before[0]["id"].(string) {
		t.Fatalf("writes: %+v", ws)
	}
	newLead := e.emu.LinkedIDs("lead")[0]
	if len(ws[1].Body) != 2 || ws[1].Body["email"] != "new@x.example" || ws[1].Body["lead"] != newLead {
		t.Fatalf("PATCH body %v, want only the changed email and its Lead %s", ws[1].Body, newLead)
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
		"leads": map[string]any{"1": nil, "2": map[string]any{"lead_name": "New Person", "email": "new.person@x.example"}},
	}); err != nil {
		t.Fatal(err)
	}
	after = e.emu.Children("prospect-lead", id)
	if len(after) != 2 || after[0]["id"] != before[0]["id"] || after[1]["lead_name"] != "New Person" || after[1]["idx"] != 2.0 {
		t.Fatalf("rows after create+delete by index: %v", after)
	}
}

func TestUpdateChildRowsMappingListKeepsExtraRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 9}, nil)
	id := prospectWithLeads(t, e)
	before := e.emu.Children("prospect-lead", id)
	if _, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{
		"industry": "Consulting",
		"leads":    []any{map[string]any{"lead": before[0]["lead"], "email": "first@x.example"}},
	}); err != nil {
		t.Fatal(err)
	}
	after := e.emu.Children("prospect-lead", id)
	if ids(after) != ids(before) || after[0]["email"] != "first@x.example" || after[1]["email"] != before[1]["email"] {
		t.Fatalf("id-less list must patch by position and keep other rows: %v", after)
	}
	if p, _ := e.emu.Prospect(id); p["industry"] != "Consulting" {
		t.Fatal("prospect field not updated alongside the rows")
	}
}

func TestUpdateChildRowsCompleteListDeletesReordersAndCreates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 9}, nil)
	id := prospectWithLeads(t, e)
	rec, err := e.c.Get(context.Background(), EntityProspect, id)
	if err != nil {
		t.Fatal(err)
	}
	leads := rowsOf(t, rec, "leads")
	// Add a third row through the API, then send: [second (edited), first], dropping the third, plus a new one.
	_, third := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": id, "lead": leads[0]["lead"]})
	second := map[string]any{}
	for k, v := range leads[1] {
		second[k] = v
	}
	second["status"] = "Converted"
	got, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{
		"leads": []any{second, leads[0], map[string]any{"id": "prospect-lead_gone000000000000", "lead_name": "Fresh", "email": "fresh@x.example"}},
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
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 400}, nil)
	before := e.emu.IDs()
	e.emu.SetPagingEdits(emulator.PagingEdits{Deletes: 15, Creates: 2})
	seen, _, pages := scan(t, e.c, nil, 40)
	e.emu.SetPagingEdits(emulator.PagingEdits{})
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
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 9}, nil)
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
