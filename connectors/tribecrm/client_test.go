package tribecrm

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

func allIDs(em *emulator.Emulator) map[string]string {
	out := map[string]string{}
	for _, set := range FunnelSets() {
		for _, id := range em.IDs(set) {
			out[id] = set
		}
	}
	return out
}

// The contract suite (TestContract) proves a pull loses and repeats
// nothing; this test checks what is Tribe's own: each record carries its
// funnel set as Entity and its Organization or Person expanded, queries write
// spaces as %20 (never '+'), the first page of every set asks for
// $count=true, and a pass with nothing changed re-reads only the overlap.
func TestPullQueriesAndRecordShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 150}, nil)
	res := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 37})
	want := allIDs(e.em)
	if len(res.latest) != len(want) {
		t.Fatalf("pulled %d distinct records, seeded %d", len(res.latest), len(want))
	}
	for id, set := range want {
		rec := res.latest[id]
		if rec.Entity != set {
			t.Errorf("record %s has Entity %s, want %s", id, rec.Entity, set)
		}
		nav := navOf(set)
		child, ok := rec.Fields[nav].(map[string]any)
		if !ok || child["ID"] == nil {
			t.Fatalf("record %s lacks expanded %s: %v", id, nav, rec.Fields)
		}
		if _, ok := rec.Fields["@odata.context"]; ok {
			t.Error("annotations in Fields")
		}
	}
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
	again := pullPass(t, e.c, res.next, connectors.PullOptions{PageSize: 37})
	if again.last.FullScan {
		t.Error("incremental pass claims FullScan")
	}
	if len(again.latest) > 20 {
		t.Errorf("incremental pass with no change returned %d records", len(again.latest))
	}
}

// Tribe's own part of an incremental pull (the contract suite covers edits
// in general): an edit of an organisation, which does not bump its
// relationship's LastMutationDate, reaches Pull through the relation step
// and moves the record's UpdatedAt; a converted record comes back in its new
// set.
func TestPullSeesOrganisationEditsAndConversions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 200}, nil)
	ctx := context.Background()
	first := pullPass(t, e.c, nil, connectors.PullOptions{})
	id := e.em.IDs(orgLead)[1]
	row, _, _ := e.em.Entity(id)
	orgID := row["Organization"].(map[string]any)["ID"].(string)
	if st, body := e.raw(t, "PUT", "/v1/odata/"+SetOrganization+"("+orgID+")", map[string]any{"EmailAddress": "changed@org.example"}); st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	cid := e.em.IDs(orgSuspect)[0]
	if _, err := e.c.ConvertStage(ctx, orgSuspect, cid, orgCustomer); err != nil {
		t.Fatal(err)
	}
	next := pullPass(t, e.c, first.next, connectors.PullOptions{})
	r, ok := next.latest[id]
	if !ok || field(r.Fields, "Organization.EmailAddress") != "changed@org.example" {
		t.Errorf("relationship of an edited organisation not pulled: %v", r.Fields)
	}
	if ok && !r.UpdatedAt.After(first.latest[id].UpdatedAt) {
		t.Errorf("UpdatedAt did not follow the organisation's edit: %v", r.UpdatedAt)
	}
	if r, ok := next.latest[cid]; !ok || r.Entity != orgCustomer {
		t.Errorf("converted record not pulled in its new set: %+v", r)
	}
	if len(next.latest) > 30 {
		t.Errorf("incremental pass returned %d records for 2 edits", len(next.latest))
	}
}

func TestPullSinceStartsThere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 150}, nil)
	changed := map[string]time.Time{}
	var times []time.Time
	for id := range allIDs(e.em) {
		row, _, _ := e.em.Entity(id)
		ts, _ := time.Parse(time.RFC3339Nano, row["LastMutationDate"].(string))
		changed[id] = ts
		times = append(times, ts)
	}
	slices.SortFunc(times, time.Time.Compare)
	since := times[len(times)/2]
	res := pullPass(t, e.c, nil, connectors.PullOptions{Since: since})
	want := 0
	for id, ts := range changed {
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

// Tribe's own part of Create and Find (the contract suite covers
// create/get/find in general): Relation.ID is filled with the tenant's own
// organisation, read once; Find searches every stage of the flavour and
// follows dotted paths through the address; Create can bind an existing
// organisation and bring its fields up to date; a malformed id is NotFound.
func TestCreateAndFindTribeSpecifics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 50}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{
		"Name": "New lead", "IsActive": true,
		"Organization": map[string]any{"Name": "Fresh Fields BV", "EmailAddress": "Info@FreshFields.example",
			"VisitingAddress": map[string]any{"Street": "Coolsingel 1", "City": "Rotterdam"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Entity != orgLead || !guidRe.MatchString(rec.ID) || field(rec.Fields, "Organization.Name") != "Fresh Fields BV" {
		t.Fatalf("created record: %+v", rec)
	}
	row, _, _ := e.em.Entity(rec.ID)
	if row["Relation"].(map[string]any)["ID"] != e.em.TenantID() {
		t.Error("Relation.ID not filled with the tenant organisation")
	}
	// Find searches every stage of the flavour.
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
	e.resetRequests()
	if _, err := e.c.Get(ctx, orgLead, "nope"); !connectors.IsNotFound(err) {
		t.Errorf("Get malformed id: %v", err)
	}
	if len(e.requests()) != 0 {
		t.Error("Get of a malformed id sent a request")
	}
}

// Find compares by connectors.MatchesAll: a numeric field matches by its
// text, and a Loose name match ignores punctuation, which no exact server
// filter may undo.
func TestFindNumbersAndLooseNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 30}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{
		"Organization": map[string]any{"Name": "Acme B.V.", "EmailAddress": "info@acme.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	sortIndex, ok := rec.Fields["SortIndex"].(float64)
	if !ok {
		t.Fatalf("SortIndex is not a number: %v", rec.Fields["SortIndex"])
	}
	num, _ := connectors.MatchText(sortIndex)
	e.resetRequests()
	found, err := e.c.Find(ctx, orgLead, []connectors.Match{{Field: "SortIndex", Value: num}})
	if err != nil || len(found) != 1 || found[0].ID != rec.ID {
		t.Fatalf("Find by the numeric SortIndex %s: %v %v", num, found, err)
	}
	// The server's 400 on tolower() of a number did not make the client
	// think tolower() is refused.
	if _, err := e.c.Find(ctx, orgLead, []connectors.Match{{Field: "Organization.EmailAddress", Value: "info@acme.example"}}); err != nil {
		t.Fatal(err)
	}
	if rs := e.requests(); !strings.Contains(rs[len(rs)-1].RawQuery, "tolower") {
		t.Errorf("after a numeric Find, a Find by e-mail sent %s", rs[len(rs)-1].RawQuery)
	}

	e.resetRequests()
	for _, name := range []string{"ACME BV", "acme  b.v", "Acme, B.V."} {
		found, err = e.c.Find(ctx, orgSuspect, []connectors.Match{{Field: "Organization.Name", Value: name, Loose: true}})
		if err != nil || len(found) != 1 || found[0].ID != rec.ID {
			t.Errorf("loose Find of %q: %v %v", name, found, err)
		}
	}
	found, err = e.c.Find(ctx, orgLead, []connectors.Match{{Field: "Organization.Name", Value: "Acme Ltd", Loose: true}})
	if err != nil || len(found) != 0 {
		t.Errorf("loose Find of another legal form: %v %v", found, err)
	}
	for _, r := range e.requests() {
		if strings.Contains(r.RawQuery, "Organization/Name") {
			t.Errorf("a loose match was filtered on the server: %s", r.RawQuery)
		}
	}
	// Not loose, the punctuation counts.
	found, err = e.c.Find(ctx, orgLead, []connectors.Match{{Field: "Organization.Name", Value: "ACME BV"}})
	if err != nil || len(found) != 0 {
		t.Errorf("exact Find of %q: %v %v", "ACME BV", found, err)
	}
}

// upgrade_field _Type: the conversion sends the dotted type name (the
// contract suite and TestConvertSendsWhatTheVendorsNodeSends cover the
// default, _UpgradeType); crossing Organization and Person is Rejected.
func TestConvertStageWithTypeField(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 60}, func(o *Options) { o.UpgradeField = "_Type" })
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
	for _, r := range e.requests() {
		if r.Method == "POST" && !strings.Contains(string(r.Body), `"_Type":"`+TypeOfSet(orgCustomer)+`"`) {
			t.Errorf("conversion body %s lacks the dotted _Type", r.Body)
		}
	}
	if _, err := e.c.ConvertStage(ctx, orgCustomer, id, FunnelSet(FlavourPerson, "Customer")); !connectors.IsRejected(err) {
		t.Errorf("cross-flavour conversion: %v", err)
	}
}

func TestWrongTokenIsAuthError(t *testing.T) {
	t.Parallel()
	const secret = "wrong-token-do-not-leak"
	e := newEnv(t, emulator.Options{Records: 5}, func(o *Options) { o.Token = secret })
	_, err := e.c.Pull(context.Background(), nil, connectors.PullOptions{})
	if !connectors.IsAuth(err) {
		t.Fatalf("want an Auth error, got %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("token in error text: %v", err)
	}
}

func TestCreateWithServerErrorIsOutcomeUnknown(t *testing.T) {
	t.Parallel()
	// No lookup of an existing organisation: the create itself meets the fault.
	e := newEnv(t, emulator.Options{Records: 5}, func(o *Options) { o.RelationMatch = map[string][]string{} })
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
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 50}, nil)
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
