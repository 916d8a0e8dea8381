package tribecrm

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
)

func allIDs(em *Emulator) map[string]string {
	out := map[string]string{}
	for _, set := range FunnelSets() {
		for _, id := range em.IDs(set) {
			out[id] = set
		}
	}
	return out
}

func TestPullFullPassNoLossNoDuplicates(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 600}, nil)
	res := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 37})
	want := allIDs(e.em)
	if len(res.latest) != len(want) || len(res.all) != len(want) {
		t.Fatalf("pulled %d records (%d distinct), seeded %d", len(res.all), len(res.latest), len(want))
	}
	for id, set := range want {
		rec, ok := res.latest[id]
		if !ok {
			t.Fatalf("record %s missing", id)
		}
		if rec.Entity != set {
			t.Errorf("record %s has Entity %s, want %s", id, rec.Entity, set)
		}
		nav := navOf(set)
		child, ok := rec.Fields[nav].(map[string]any)
		if !ok || child["ID"] == nil {
			t.Fatalf("record %s lacks expanded %s: %v", id, nav, rec.Fields)
		}
		if rec.UpdatedAt.IsZero() || rec.CreatedAt.IsZero() || rec.UpdatedAt.Location() != time.UTC {
			t.Errorf("record %s timestamps %v %v", id, rec.CreatedAt, rec.UpdatedAt)
		}
		if _, ok := rec.Fields["@odata.context"]; ok {
			t.Error("annotations in Fields")
		}
	}
	if !res.last.FullScan || res.last.Total != len(want) {
		t.Errorf("last page FullScan=%v Total=%d, want true and %d", res.last.FullScan, res.last.Total, len(want))
	}
	// Every request used %20, never '+', and asked for a count on the first page of each set.
	counts := 0
	for _, r := range e.requests() {
		if strings.Contains(r.RawQuery, "+") {
			t.Fatalf("query with '+': %s", r.RawQuery)
		}
		if strings.Contains(r.RawQuery, "$count=true") {
			counts++
		}
	}
	if counts < 10 {
		t.Errorf("$count=true sent %d times, want at least once per funnel set", counts)
	}
	// Next pass with nothing changed: only the overlap is re-read, and it is not a full scan.
	again := pullPass(t, e.c, res.next, connectors.PullOptions{PageSize: 37})
	if again.last.FullScan {
		t.Error("incremental pass claims FullScan")
	}
	if len(again.latest) > 20 {
		t.Errorf("incremental pass with no change returned %d records", len(again.latest))
	}
}

func TestPullResumeFromSavedCursor(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 300}, nil)
	ctx := context.Background()
	var cursor connectors.Cursor
	seen := map[string]bool{}
	for i := 0; i < 4; i++ {
		p, err := e.c.Pull(ctx, cursor, connectors.PullOptions{PageSize: 25})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seen[r.ID] = true
		}
		cursor = p.Next
	}
	var cv map[string]any
	if err := json.Unmarshal(cursor, &cv); err != nil || cv["v"] != float64(1) {
		t.Fatalf("cursor is not versioned JSON: %s", cursor)
	}
	// "Restart": a new client with the stored bytes.
	saved := append([]byte(nil), cursor...)
	c2, err := New(Options{BaseURL: e.srv.URL, Token: "dev-token", HTTP: newHTTP(t)})
	if err != nil {
		t.Fatal(err)
	}
	res := pullPass(t, c2, saved, connectors.PullOptions{PageSize: 25})
	for id := range res.latest {
		seen[id] = true
	}
	if want := allIDs(e.em); len(seen) != len(want) {
		t.Fatalf("resumed pull saw %d records, want %d", len(seen), len(want))
	}
}

func TestPullIncrementalAfterEdits(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 200}, nil)
	ctx := context.Background()
	first := pullPass(t, e.c, nil, connectors.PullOptions{})
	// Edit a relationship field and, separately, an organisation.
	ids := e.em.IDs(orgLead)
	if _, err := e.c.Update(ctx, orgLead, ids[0], map[string]any{"Name": "Edited relationship"}); err != nil {
		t.Fatal(err)
	}
	row, _, _ := e.em.Entity(ids[1])
	orgID := row["Organization"].(map[string]any)["ID"].(string)
	if st, body := e.raw(t, "PUT", "/v1/odata/"+SetOrganization+"("+orgID+")", map[string]any{"EmailAddress": "changed@org.example"}); st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	// And convert one.
	cid := e.em.IDs(orgSuspect)[0]
	if _, err := e.c.ConvertStage(ctx, orgSuspect, cid, orgCustomer); err != nil {
		t.Fatal(err)
	}
	next := pullPass(t, e.c, first.next, connectors.PullOptions{})
	if r, ok := next.latest[ids[0]]; !ok || r.Fields["Name"] != "Edited relationship" {
		t.Errorf("edited relationship not pulled: %v", r.Fields)
	}
	r, ok := next.latest[ids[1]]
	if !ok || field(r.Fields, "Organization.EmailAddress") != "changed@org.example" {
		t.Errorf("relationship of an edited organisation not pulled: %v", r.Fields)
	}
	if ok && !r.UpdatedAt.After(first.latest[ids[1]].UpdatedAt) {
		t.Errorf("UpdatedAt did not follow the organisation's edit: %v", r.UpdatedAt)
	}
	if r, ok := next.latest[cid]; !ok || r.Entity != orgCustomer {
		t.Errorf("converted record not pulled in its new set: %+v", r)
	}
	if len(next.latest) > 30 {
		t.Errorf("incremental pass returned %d records for 3 edits", len(next.latest))
	}
}

func TestPullSinceStartsThere(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 300}, nil)
	since := seedStart.Add(100 * time.Minute)
	res := pullPass(t, e.c, nil, connectors.PullOptions{Since: since})
	want := 0
	for id := range allIDs(e.em) {
		row, _, _ := e.em.Entity(id)
		ts, _ := time.Parse(time.RFC3339Nano, row["LastMutationDate"].(string))
		if !ts.Before(since) {
			want++
			if _, ok := res.latest[id]; !ok {
				t.Errorf("record %s changed at %v missing", id, ts)
			}
		}
	}
	if want == 0 || len(res.latest) < want || res.last.FullScan {
		t.Errorf("since pull: %d records, want %d, FullScan %v", len(res.latest), want, res.last.FullScan)
	}
}

func TestPullFiveThousandOnOneTimestamp(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 5000, SeedSets: []string{orgLead}}, nil)
	tie := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	e.em.Freeze(tie)
	e.em.Touch()
	res := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 100})
	if len(res.latest) != 5000 {
		t.Fatalf("pulled %d distinct records of 5000 sharing one timestamp", len(res.latest))
	}
	if len(res.all) != 5000 {
		t.Errorf("full pass returned %d rows for 5000 records", len(res.all))
	}
	for _, r := range res.latest {
		if !r.UpdatedAt.Equal(tie) {
			t.Fatalf("record %s UpdatedAt %v, want the tie %v", r.ID, r.UpdatedAt, tie)
		}
	}
	// A write landing on the same (frozen) timestamp after the pass is
	// caught by the next pass, even though its ID sorts before the cursor's.
	ids := e.em.IDs(orgLead)
	if _, err := e.c.Update(context.Background(), orgLead, ids[0], map[string]any{"Name": "late tie"}); err != nil {
		t.Fatal(err)
	}
	again := pullPass(t, e.c, res.next, connectors.PullOptions{PageSize: 100})
	if r, ok := again.latest[ids[0]]; !ok || r.Fields["Name"] != "late tie" {
		t.Fatal("a write on the cursor's timestamp was lost")
	}
}

func TestPullEditsDuringPaging(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 800}, nil)
	e.em.EditDuringPaging(3)
	res := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 40})
	want := allIDs(e.em)
	if len(res.latest) != len(want) {
		t.Fatalf("with edits during paging: %d distinct of %d", len(res.latest), len(want))
	}
	if e.em.Edits() == 0 {
		t.Fatal("no edits happened")
	}
	e.em.EditDuringPaging(0)
	again := pullPass(t, e.c, res.next, connectors.PullOptions{PageSize: 40})
	for id, r := range again.latest {
		res.latest[id] = r
	}
	// The last version seen of every record is its current state.
	for id := range want {
		row, _, _ := e.em.Entity(id)
		got := res.latest[id]
		if got.Fields["Name"] != row["Name"] || got.Fields["LastMutationDate"] != row["LastMutationDate"] {
			t.Fatalf("record %s: last seen %v@%v, now %v@%v", id, got.Fields["Name"], got.Fields["LastMutationDate"], row["Name"], row["LastMutationDate"])
		}
		nav := navOf(got.Entity)
		if field(got.Fields, nav+".PhoneNumber") != field(row, nav+".PhoneNumber") {
			t.Fatalf("record %s: last seen %s phone %v, now %v", id, nav, field(got.Fields, nav+".PhoneNumber"), field(row, nav+".PhoneNumber"))
		}
	}
}

func TestCreateGetFind(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 50}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{
		"Name": "New lead", "IsActive": true,
		"Organization": map[string]any{"Name": "Fresh Fields BV", "EmailAddress": "Info@FreshFields.example",
			"VisitingAddress": map[string]any{"Street": "Coolsingel 1", "City": "Rotterdam"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Entity != orgLead || !guidRe.MatchString(rec.ID) || rec.CreatedAt.IsZero() || field(rec.Fields, "Organization.Name") != "Fresh Fields BV" {
		t.Fatalf("created record: %+v", rec)
	}
	row, _, _ := e.em.Entity(rec.ID)
	if row["Relation"].(map[string]any)["ID"] != e.em.TenantID() {
		t.Error("Relation.ID not filled with the tenant organisation")
	}
	got, err := e.c.Get(ctx, orgLead, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(got.Fields)
	b, _ := json.Marshal(rec.Fields)
	if string(a) != string(b) {
		t.Errorf("Get differs from Create:\n%s\n%s", a, b)
	}
	// Find searches every stage of the flavour, case-insensitively and trimmed.
	found, err := e.c.Find(ctx, orgSuspect, []connectors.Match{{Field: "Organization.EmailAddress", Value: "  info@freshfields.EXAMPLE "}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != rec.ID || found[0].Entity != orgLead {
		t.Fatalf("Find: %+v", found)
	}
	found, err = e.c.Find(ctx, orgLead, []connectors.Match{{Field: "Organization.EmailAddress", Value: "info@freshfields.example"}, {Field: "Organization.VisitingAddress.City", Value: "ROTTERDAM"}})
	if err != nil || len(found) != 1 {
		t.Fatalf("Find with two matches: %v %v", found, err)
	}
	found, err = e.c.Find(ctx, orgLead, []connectors.Match{{Field: "Organization.Name", Value: "O'Nobody"}})
	if err != nil || len(found) != 0 {
		t.Fatalf("Find of nothing: %v %v", found, err)
	}
	// The tenant id is fetched once.
	if _, err := e.c.Create(ctx, connectors.Record{Entity: personLead, Fields: map[string]any{"Person": map[string]any{"FirstName": "Jan", "LastName": "Smit"}}}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range e.requests() {
		if strings.HasSuffix(r.Path, SetIdentity) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("identity read %d times", n)
	}
	// Create binding an existing organisation.
	rec2, err := e.c.Create(ctx, connectors.Record{Entity: orgCustomer, Fields: map[string]any{
		"Organization": map[string]any{"ID": field(rec.Fields, "Organization.ID"), "PhoneNumber": "+31 10 123"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if field(rec2.Fields, "Organization.ID") != field(rec.Fields, "Organization.ID") || field(rec2.Fields, "Organization.PhoneNumber") != "+31 10 123" {
		t.Errorf("create from existing organisation: %v", rec2.Fields)
	}
	// Get of a missing record is NotFound.
	if _, err := e.c.Get(ctx, orgLead, "00000000-0000-4000-8000-000000000000"); !connectors.IsNotFound(err) {
		t.Errorf("Get missing: %v", err)
	}
	if _, err := e.c.Get(ctx, orgLead, "nope"); !connectors.IsNotFound(err) {
		t.Errorf("Get malformed id: %v", err)
	}
}

func TestUpdateSendsOnlyChangedFields(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 50}, nil)
	ctx := context.Background()
	id := e.em.IDs(orgLead)[0]
	before, _, _ := e.em.Entity(id)
	e.resetRequests()
	rec, err := e.c.Update(ctx, orgLead, id, map[string]any{
		"Name":         "Only the name",
		"Organization": map[string]any{"PhoneNumber": "+31 20 999 9999", "VisitingAddress": map[string]any{"City": "Leeds"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	after, _, _ := e.em.Entity(id)
	if after["Name"] != "Only the name" || field(after, "Organization.PhoneNumber") != "+31 20 999 9999" || field(after, "Organization.VisitingAddress.City") != "Leeds" {
		t.Fatalf("changes not applied: %v", after)
	}
	for _, f := range []string{"IsActive", "IsClosed", "ImportId", "SortIndex", "CreationDate", "Organization.Name", "Organization.EmailAddress", "Organization.Website", "Organization.VisitingAddress.Street", "Organization.VisitingAddress.Postalcode"} {
		if field(after, f) != field(before, f) {
			t.Errorf("%s changed from %v to %v", f, field(before, f), field(after, f))
		}
	}
	if rec.Fields["Name"] != "Only the name" || field(rec.Fields, "Organization.PhoneNumber") != "+31 20 999 9999" {
		t.Errorf("returned record: %v", rec.Fields)
	}
	// The default update method is POST Set with the ID in the body (the
	// vendor's own form): the changed fields and the ID, nothing else.
	var posts []map[string]any
	for _, r := range e.requests() {
		if r.Method == "PUT" || r.Method == "PATCH" {
			t.Errorf("%s %s: the default update method is post", r.Method, r.Path)
		}
		if r.Method == "POST" {
			var b map[string]any
			_ = json.Unmarshal(r.Body, &b)
			posts = append(posts, b)
			keys := make([]string, 0, len(b))
			for k := range b {
				keys = append(keys, k)
			}
			switch {
			case strings.HasSuffix(r.Path, "/"+SetOrganization):
				if len(b) != 3 || b["ID"] != field(before, "Organization.ID") || b["PhoneNumber"] == nil || b["VisitingAddress"] == nil {
					t.Errorf("organisation POST sent %v", keys)
				}
			case strings.HasSuffix(r.Path, "/"+orgLead):
				if len(b) != 2 || b["ID"] != id || b["Name"] == nil {
					t.Errorf("relationship POST sent %v", keys)
				}
			default:
				t.Errorf("POST %s", r.Path)
			}
		}
	}
	if len(posts) != 2 {
		t.Errorf("%d POSTs, want 2", len(posts))
	}
}

func TestConvertStageAndDelete(t *testing.T) {
	for _, upgrade := range []string{"_Type", "_UpgradeType"} {
		t.Run(upgrade, func(t *testing.T) {
			e := newEnv(t, EmulatorOptions{Records: 60}, func(o *Options) { o.UpgradeField = upgrade })
			ctx := context.Background()
			id := e.em.IDs(orgSuspect)[0]
			before, _, _ := e.em.Entity(id)
			rec, err := e.c.ConvertStage(ctx, orgSuspect, id, orgCustomer)
			if err != nil {
				t.Fatal(err)
			}
			if rec.ID != id || rec.Entity != orgCustomer || rec.Fields["_Type"] != TypeOfSet(orgCustomer) || rec.Fields["LastMutationDate"] == before["LastMutationDate"] {
				t.Fatalf("converted: %+v", rec)
			}
			if _, err := e.c.Get(ctx, orgSuspect, id); !connectors.IsNotFound(err) {
				t.Errorf("still in the old set: %v", err)
			}
			for _, r := range e.requests() {
				if r.Method == "POST" && !strings.Contains(string(r.Body), `"`+upgrade+`"`) {
					t.Errorf("conversion body %s lacks %s", r.Body, upgrade)
				}
			}
			if _, err := e.c.ConvertStage(ctx, orgCustomer, id, FunnelSet(FlavourPerson, "Customer")); !connectors.IsRejected(err) {
				t.Errorf("cross-flavour conversion: %v", err)
			}
			orgID := field(rec.Fields, "Organization.ID").(string)
			if err := e.c.Delete(ctx, orgCustomer, id); err != nil {
				t.Fatal(err)
			}
			if _, err := e.c.Get(ctx, orgCustomer, id); !connectors.IsNotFound(err) {
				t.Errorf("deleted record: %v", err)
			}
			if _, _, ok := e.em.Entity(orgID); !ok {
				t.Error("Delete removed the organisation")
			}
			if err := e.c.Delete(ctx, orgCustomer, id); !connectors.IsNotFound(err) {
				t.Errorf("second delete: %v", err)
			}
		})
	}
}

func TestWrongTokenIsAuthError(t *testing.T) {
	const secret = "wrong-token-do-not-leak"
	e := newEnv(t, EmulatorOptions{Records: 5}, func(o *Options) { o.Token = secret })
	_, err := e.c.Pull(context.Background(), nil, connectors.PullOptions{})
	if !connectors.IsAuth(err) {
		t.Fatalf("want an Auth error, got %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("token in error text: %v", err)
	}
}

func TestRateLimitRetryAfterHonoured(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 120, Faults: emukit.Faults{RateLimit: 3, RetryAfter: time.Second}}, nil)
	res := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 50})
	if len(res.latest) != 120 {
		t.Fatalf("pulled %d of 120", len(res.latest))
	}
	if e.em.Injected()["429"] == 0 {
		t.Fatal("no 429 was injected")
	}
	var retried bool
	reqs := e.requests()
	for i := 1; i < len(reqs); i++ {
		if reqs[i].RawQuery == reqs[i-1].RawQuery && reqs[i].Path == reqs[i-1].Path {
			retried = true
		}
	}
	if !retried {
		t.Error("no request was retried after a 429")
	}
}

func TestServerErrorsRetriedOnGet(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 300, Faults: emukit.Faults{ErrorRate: 0.3, Seed: 7}}, nil)
	res := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 30})
	if len(res.latest) != 300 {
		t.Fatalf("pulled %d of 300", len(res.latest))
	}
	if e.em.Injected()["5xx"] == 0 {
		t.Fatal("no 5xx injected")
	}
}

func TestCreateWithServerErrorIsOutcomeUnknown(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 5}, nil)
	ctx := context.Background()
	// Fetch the tenant first so the create itself hits the fault.
	if _, err := e.c.tenant(ctx); err != nil {
		t.Fatal(err)
	}
	e.em.SetFaults(emukit.Faults{ErrorRate: 1})
	_, err := e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{"Organization": map[string]any{"Name": "X"}}})
	if !connectors.IsOutcomeUnknown(err) {
		t.Fatalf("create on 503: %v", err)
	}
	posts := 0
	for _, r := range e.requests() {
		if r.Method == "POST" {
			posts++
		}
	}
	if posts != 1 {
		t.Errorf("create sent %d times", posts)
	}
}

func TestValidationIsRejectedWithMessage(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 50}, nil)
	ctx := context.Background()
	_, err := e.c.Create(ctx, connectors.Record{Entity: personLead, Fields: map[string]any{"Person": map[string]any{"FirstName": "Only"}}})
	if !connectors.IsRejected(err) {
		t.Fatalf("want Rejected, got %v", err)
	}
	var ce *connectors.Error
	if !asError(err, &ce) || ce.Status != 400 || !strings.Contains(ce.Message, "LastName") {
		t.Fatalf("error does not carry the API message: %#v", err)
	}
	_, err = e.c.Update(ctx, orgLead, e.em.IDs(orgLead)[0], map[string]any{"IsActive": "maybe"})
	if !connectors.IsRejected(err) || !strings.Contains(err.Error(), "IsActive") {
		t.Fatalf("update with a wrong type: %v", err)
	}
}
