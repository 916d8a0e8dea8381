package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/engine"
)

// oneWay is a TribeCRM -> BlueRockTel flow.
const oneWay = `
  - name: t2b
    source: tribecrm
    targets:
      - system: bluerocktel
`

// twoWay is TribeCRM <-> BlueRockTel: two flows, each the other's reverse.
const twoWay = `
  - name: t2b
    source: tribecrm
    targets:
      - system: bluerocktel
  - name: b2t
    source: bluerocktel
    targets:
      - system: tribecrm
`

// brtByName returns the BlueRockTel records (prospects and customers) with a name.
func (w *world) brtByName(name string) []brtRec {
	var out []brtRec
	for _, r := range w.brtAll() {
		if r.Fields["name"] == name {
			out = append(out, r)
		}
	}
	return out
}

// brtTotal is the number of BlueRockTel records, prospects and customers.
func (w *world) brtTotal() int {
	return w.srv.BlueRockTel.Count(bluerocktel.EntityProspects) + w.srv.BlueRockTel.Count(bluerocktel.EntityCustomers)
}

// linkedBRT returns the BlueRockTel key ("prospects:7") a TribeCRM record is linked to.
func (w *world) linkedBRT(tribeID string) string { return w.linkOf("tribecrm", tribeID, "bluerocktel") }

func TestMatchLinksAnExistingRecordInsteadOfCreatingIt(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{flows: oneWay})
	// In BlueRockTel before crmsync ever ran.
	northwind := w.brtCreate(map[string]any{"name": "Northwind Trading Ltd", "email_address": "sales@northwind.example", "prospection_code_id": 2})
	acme := w.brtCreate(map[string]any{"name": "ACME BV", "prospection_code_id": 2})
	// The same companies in TribeCRM, spelled differently.
	n := w.tribeCreateOrg("Lead", map[string]any{"Name": "Northwind", "EmailAddress": "Sales@Northwind.example"})
	a := w.tribeCreateOrg("Lead", map[string]any{"Name": "Acme B.V."})

	res := w.run("t2b")
	c := counts(res, "bluerocktel")
	if c.Linked != 2 || c.Created != 0 || w.brtTotal() != 2 {
		t.Fatalf("first sync: linked %d created %d, BlueRockTel holds %d records; want 2 linked, 0 created, 2 records", c.Linked, c.Created, w.brtTotal())
	}
	if got := w.linkedBRT(n.ID); got != "prospects:"+northwind.ID {
		t.Errorf("e-mail match: TribeCRM %s linked to %q, want prospects:%s", n.ID, got, northwind.ID)
	}
	if got := w.linkedBRT(a.ID); got != "prospects:"+acme.ID {
		t.Errorf("name match (Acme B.V. / ACME BV): linked to %q, want prospects:%s", got, acme.ID)
	}
	if again := w.run("t2b"); writes(again) != 0 || w.brtTotal() != 2 {
		t.Fatalf("second sync made %d writes, BlueRockTel holds %d", writes(again), w.brtTotal())
	}

	// Later, incremental syncs (no full read of the target) match too.
	t.Run("incremental e-mail match", func(t *testing.T) {
		globex := w.brtCreate(map[string]any{"name": "Globex Corporation", "email_address": "info@globex.example", "prospection_code_id": 1})
		g := w.tribeCreateOrg("Suspect", map[string]any{"Name": "Globex", "EmailAddress": "INFO@globex.example"})
		before := w.brtTotal()
		c := counts(w.run("t2b"), "bluerocktel")
		if c.Linked != 1 || c.Created != 0 || w.brtTotal() != before {
			t.Fatalf("linked %d created %d, BlueRockTel %d -> %d records; want 1 linked, nothing created", c.Linked, c.Created, before, w.brtTotal())
		}
		if got := w.linkedBRT(g.ID); got != "prospects:"+globex.ID {
			t.Errorf("linked to %q, want prospects:%s", got, globex.ID)
		}
	})
	// Incremental runs look names up with the connector's Find, which
	// compares case-insensitively (punctuation differences are matched only
	// by bulk runs, which read the target once: docs/architecture.md).
	t.Run("incremental case-insensitive name match", func(t *testing.T) {
		initech := w.brtCreate(map[string]any{"name": "INITECH BV", "prospection_code_id": 1})
		i := w.tribeCreateOrg("Suspect", map[string]any{"Name": "Initech BV"})
		before := w.brtTotal()
		c := counts(w.run("t2b"), "bluerocktel")
		if c.Linked != 1 || c.Created != 0 || w.brtTotal() != before {
			t.Fatalf("linked %d created %d, BlueRockTel %d -> %d records; want 1 linked, nothing created", c.Linked, c.Created, before, w.brtTotal())
		}
		if got := w.linkedBRT(i.ID); got != "prospects:"+initech.ID {
			t.Errorf("linked to %q, want prospects:%s", got, initech.ID)
		}
	})
}

func TestMatchOnSeveralRecordsIsDeadLetteredNotCreated(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 3, flows: oneWay})
	one := w.brtCreate(map[string]any{"name": "Dup One", "email_address": "info@dup.example", "prospection_code_id": 2})
	two := w.brtCreate(map[string]any{"name": "Dup Two", "email_address": "info@dup.example", "prospection_code_id": 2})
	d := w.tribeCreateOrg("Lead", map[string]any{"Name": "Dup Holding", "EmailAddress": "info@dup.example"})

	res := w.run("t2b")
	c := counts(res, "bluerocktel")
	if c.Created != 3 || c.Failed != 1 || c.Linked != 0 {
		t.Fatalf("counts %+v; want the 3 seeded records created and 1 failed", c)
	}
	if len(w.brtByName("Dup Holding")) != 0 || w.brtTotal() != 5 {
		t.Fatalf("the ambiguous record was created (BlueRockTel holds %d records)", w.brtTotal())
	}
	if got := w.linkedBRT(d.ID); got != "" {
		t.Fatalf("the ambiguous record was linked to %s", got)
	}
	dls, err := w.st.DeadLetters("t2b")
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters %v (%v); want 1", dls, err)
	}
	dl := dls[0]
	for _, id := range []string{one.ID, two.ID} {
		if !strings.Contains(dl.Error, id) {
			t.Errorf("dead letter error %q does not name candidate %s", dl.Error, id)
		}
	}
	if dl.System != "bluerocktel" || dl.SourceID != d.ID || dl.Attempts != 1 {
		t.Errorf("dead letter %+v", dl)
	}
}

// setOwner marks a rule of a mapping owner: true (the rule whose native
// line is given).
func setOwner(t *testing.T, mappingText, nativeLine string) string {
	t.Helper()
	if !strings.Contains(mappingText, nativeLine) {
		t.Fatalf("mapping has no line %q", nativeLine)
	}
	return strings.Replace(mappingText, nativeLine, nativeLine+"\n    owner: true", 1)
}

// tick separates two edits in time: each emulator stamps edits with its own
// clock (TribeCRM in milliseconds), and merges compare those stamps.
func tick() { time.Sleep(5 * time.Millisecond) }

func TestMergeNewestChangeWinsPerField(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{flows: twoWay})
	r := w.tribeCreateOrg("Lead", map[string]any{"Name": "Merge Test BV", "PhoneNumber": "+31 20 100 0000", "Website": "https://merge.example"})
	w.runAll()
	key := w.linkedBRT(r.ID)
	bid := strings.TrimPrefix(key, "prospects:")
	if bid == key {
		t.Fatalf("not linked: %q", key)
	}
	both := func(field, tribeField string) (string, string) {
		return str(w.brtGet("prospects", bid)[field]), str(w.tribeGet(r.ID).Fields["Organization"].(map[string]any)[tribeField])
	}

	// Same field in both: the later edit wins in both systems.
	w.tribeEditOrg(r, map[string]any{"PhoneNumber": "+31 20 111 1111"})
	tick()
	w.brtEdit("prospects", bid, map[string]any{"phone": "+31 20 222 2222"})
	w.runAll()
	if b, tr := both("phone", "PhoneNumber"); b != "+31 20 222 2222" || tr != b {
		t.Errorf("BlueRockTel's later phone should win: BlueRockTel %q, TribeCRM %q", b, tr)
	}
	w.brtEdit("prospects", bid, map[string]any{"phone": "+31 20 333 3333"})
	tick()
	w.tribeEditOrg(r, map[string]any{"PhoneNumber": "+31 20 444 4444"})
	w.runAll()
	if b, tr := both("phone", "PhoneNumber"); tr != "+31 20 444 4444" || tr != b {
		t.Errorf("TribeCRM's later phone should win: BlueRockTel %q, TribeCRM %q", b, tr)
	}

	// Different fields: both edits survive, whatever their order.
	w.tribeEditOrg(r, map[string]any{"Website": "https://merge-tribe.example"})
	tick()
	w.brtEdit("prospects", bid, map[string]any{"phone": "+31 20 555 5555"})
	w.runAll()
	if b, tr := both("phone", "PhoneNumber"); b != "+31 20 555 5555" || tr != b {
		t.Errorf("phone edited in BlueRockTel: BlueRockTel %q, TribeCRM %q", b, tr)
	}
	if b, tr := both("website", "Website"); tr != "https://merge-tribe.example" || tr != b {
		t.Errorf("website edited in TribeCRM: BlueRockTel %q, TribeCRM %q", b, tr)
	}
	if n := w.runAll(); n != 0 {
		t.Errorf("a round without edits made %d writes", n)
	}
}

func TestMergeOwnerWinsEvenAgainstANewerChange(t *testing.T) {
	t.Parallel()
	tribeMap := setOwner(t, exampleMapping(t, "tribecrm.yaml"), "  - native: Organization.PhoneNumber\n    canonical: phone")
	w := newWorld(t, worldOpts{flows: twoWay, mappings: map[string]string{"tribecrm.yaml": tribeMap}})
	r := w.tribeCreateOrg("Lead", map[string]any{"Name": "Owner Test BV", "PhoneNumber": "+31 20 100 0000"})
	w.runAll()
	bid := strings.TrimPrefix(w.linkedBRT(r.ID), "prospects:")
	phones := func() (string, string) {
		return str(w.brtGet("prospects", bid)["phone"]), str(w.tribeGet(r.ID).Fields["Organization"].(map[string]any)["PhoneNumber"])
	}

	w.tribeEditOrg(r, map[string]any{"PhoneNumber": "+31 20 111 1111"})
	tick()
	w.brtEdit("prospects", bid, map[string]any{"phone": "+31 20 999 9999", "website": "https://owner-brt.example"}) // newer
	w.runAll()
	if b, tr := phones(); tr != "+31 20 111 1111" || b != tr {
		t.Errorf("TribeCRM owns phone: BlueRockTel %q, TribeCRM %q; want both +31 20 111 1111", b, tr)
	}
	if web := str(w.tribeGet(r.ID).Fields["Organization"].(map[string]any)["Website"]); web != "https://owner-brt.example" {
		t.Errorf("a field nobody owns still merges: TribeCRM website %q", web)
	}

	// Only the non-owner edits the owned field: the owner's value stays in
	// the golden record, and the systems must not stay apart.
	w.brtEdit("prospects", bid, map[string]any{"phone": "+31 20 888 8888"})
	w.runAll()
	w.runAll()
	b, tr := phones()
	if tr != "+31 20 111 1111" {
		t.Errorf("the owner's phone was overwritten by a non-owner: TribeCRM %q", tr)
	}
	t.Run("non-owner edit is corrected", func(t *testing.T) {
		if b != tr {
			t.Errorf("after a non-owner edit of an owned field the systems stay apart for good: BlueRockTel %q, TribeCRM %q; see report", b, tr)
		}
	})
}

func TestFunnelStageChangesReachBlueRockTel(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{flows: oneWay})
	r := w.tribeCreateOrg("Lead", map[string]any{"Name": "Stage Test BV", "EmailAddress": "stage@test.example"})
	w.run("t2b")
	key := w.linkedBRT(r.ID)
	pid := strings.TrimPrefix(key, "prospects:")
	if code := w.brtGet("prospects", pid)["prospection_code_id"]; code != 2.0 {
		t.Fatalf("lead: prospection_code_id %v, want 2", code)
	}

	w.tribeConvert(r.ID, "HotProspect")
	c := counts(w.run("t2b"), "bluerocktel")
	if c.Updated != 1 || w.brtGet("prospects", pid)["prospection_code_id"] != 3.0 {
		t.Fatalf("hot prospect: counts %+v, code %v; want one update to 3", c, w.brtGet("prospects", pid)["prospection_code_id"])
	}

	w.tribeConvert(r.ID, "Customer")
	c = counts(w.run("t2b"), "bluerocktel")
	if c.Converted != 1 || c.Created != 0 {
		t.Fatalf("customer: counts %+v; want one conversion", c)
	}
	if _, err := w.brt.Get(w.ctx, "prospects", pid); !connectors.IsNotFound(err) {
		t.Errorf("the prospect is still there after the conversion (err %v)", err)
	}
	if w.srv.BlueRockTel.Count("prospects") != 0 || w.srv.BlueRockTel.Count("customers") != 1 {
		t.Errorf("BlueRockTel holds %d prospects and %d customers; want 0 and 1", w.srv.BlueRockTel.Count("prospects"), w.srv.BlueRockTel.Count("customers"))
	}
	key = w.linkedBRT(r.ID)
	cid, ok := strings.CutPrefix(key, "customers:")
	if !ok {
		t.Fatalf("link after the conversion is %q; want customers:ID", key)
	}
	if cust := w.brtGet("customers", cid); cust["name"] != "Stage Test BV" {
		t.Errorf("customer %v", cust)
	}
	// The link followed: an edit in TribeCRM updates the customer.
	w.tribeEditOrg(tribeRel{ID: r.ID, Set: orgSet("Customer")}, map[string]any{"PhoneNumber": "+31 20 765 4321"})
	c = counts(w.run("t2b"), "bluerocktel")
	if c.Updated != 1 || c.Created != 0 || w.brtGet("customers", cid)["phone"] != "+31 20 765 4321" {
		t.Errorf("edit after conversion: counts %+v, customer phone %v", c, w.brtGet("customers", cid)["phone"])
	}
}

func TestFunnelStageStepBack(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow_stage_back=%v", allow), func(t *testing.T) {
			t.Parallel() // a world of its own
			flows := oneWay
			if allow {
				flows += "    allow_stage_back: true\n"
			}
			w := newWorld(t, worldOpts{flows: flows})
			if w.flow("t2b").AllowStageBack != allow {
				t.Fatal("allow_stage_back did not reach the flow")
			}
			r := w.tribeCreateOrg("HotProspect", map[string]any{"Name": "Back Step BV"})
			w.run("t2b")
			pid := strings.TrimPrefix(w.linkedBRT(r.ID), "prospects:")
			w.tribeConvert(r.ID, "Lead")
			res := w.run("t2b")
			code := w.brtGet("prospects", pid)["prospection_code_id"]
			if allow && code != 2.0 {
				t.Errorf("step back allowed: BlueRockTel code %v, want 2 (lead)", code)
			}
			if !allow && (code != 3.0 || writes(res) != 0) {
				t.Errorf("step back not allowed: BlueRockTel code %v after %d writes, want 3 (hot prospect) and no write", code, writes(res))
			}
		})
	}
}

func TestTargetFilterKeepsOtherRecordsOut(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{flows: `
  - name: t2b
    source: tribecrm
    targets:
      - system: bluerocktel
        filter:
          kinds: [organization]
          stages: [prospect, customer]
`})
	lead := w.tribeCreateOrg("Lead", map[string]any{"Name": "Early Lead BV"})
	w.tribeCreateOrg("Prospect", map[string]any{"Name": "Ready Prospect BV"})
	if _, err := w.tribe.Create(w.ctx, connectors.Record{Entity: "Relationship_Person_CommercialRelationship_Prospect",
		Fields: map[string]any{"IsActive": true, "Person": map[string]any{"FirstName": "Pia", "LastName": "Person"}}}); err != nil {
		t.Fatal(err)
	}
	c := counts(w.run("t2b"), "bluerocktel")
	if c.Created != 1 || c.Skipped != 2 || w.brtTotal() != 1 || len(w.brtByName("Ready Prospect BV")) != 1 {
		t.Fatalf("counts %+v, BlueRockTel holds %d; want only the organisation prospect created", c, w.brtTotal())
	}
	w.tribeConvert(lead.ID, "Prospect")
	c = counts(w.run("t2b"), "bluerocktel")
	if c.Created != 1 || len(w.brtByName("Early Lead BV")) != 1 {
		t.Fatalf("after reaching prospect: counts %+v; want the record created", c)
	}
	if w.brtTotal() != 2 {
		t.Fatalf("BlueRockTel holds %d records, want 2 (never the person)", w.brtTotal())
	}
}

func TestDeadLetterRetriedUntilTheSourceIsFixed(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 5, flows: oneWay})
	bad := w.tribeCreateOrg("Lead", map[string]any{"Name": "X", "EmailAddress": "x@short.example"})
	t0 := time.Now().UTC()
	c := counts(w.run("t2b"), "bluerocktel")
	if c.Created != 5 || c.Failed != 1 {
		t.Fatalf("counts %+v; want 5 created and 1 failed (the flow goes on)", c)
	}
	dls, _ := w.st.DeadLetters("t2b")
	if len(dls) != 1 {
		t.Fatalf("dead letters: %+v", dls)
	}
	dl := dls[0]
	if !strings.Contains(dl.Error, "at least 2 characters") || dl.Payload["name"] != "X" || dl.Attempts != 1 ||
		dl.FirstAt.Before(t0.Add(-time.Second)) || dl.LastAt.IsZero() || dl.SourceID != bad.ID || dl.System != "bluerocktel" {
		t.Fatalf("dead letter %+v", dl)
	}

	brtBefore := w.brtWrites()
	res := w.run("t2b")
	dl2, _ := w.st.DeadLetter(dl.Key)
	if dl2 == nil || dl2.Attempts < 2 || counts(res, "bluerocktel").Retried != 1 || !dl2.FirstAt.Equal(dl.FirstAt) || !dl2.LastAt.After(dl.LastAt) {
		t.Fatalf("after a second failing sync: %+v (retried %d); want more attempts, same first time", dl2, counts(res, "bluerocktel").Retried)
	}
	t.Run("one attempt per sync", func(t *testing.T) {
		if sent := w.brtWrites() - brtBefore; dl2.Attempts != 2 || sent != 1 {
			t.Errorf("one sync retried the rejected record %d times (attempts %d -> %d, failed %d): the retry pass, the funnel-set read and the "+
				"relation read (TribeCRM overlap window) each handle it again because a failed record stores no fingerprint; see report",
				sent, dl.Attempts, dl2.Attempts, counts(res, "bluerocktel").Failed)
		}
	})

	w.tribeEditOrg(bad, map[string]any{"Name": "Xenon BV"})
	res = w.run("t2b")
	if got := w.brtByName("Xenon BV"); len(got) != 1 {
		t.Fatalf("after the fix BlueRockTel holds %d records named Xenon BV, want 1", len(got))
	}
	if dls, _ := w.st.DeadLetters("t2b"); len(dls) != 0 {
		t.Fatalf("dead letters left after the fix: %+v", dls)
	}
	if w.brtTotal() != 6 {
		t.Fatalf("BlueRockTel holds %d records, want 6", w.brtTotal())
	}
}

// planCounts sums a plan's changes per op, one op per record and target
// (a conversion that also updates fields counts as the conversion).
func planCounts(plan []engine.Change) map[string]int {
	rank := map[engine.Op]int{"dead-letter": 5, "convert": 4, "create": 3, "link": 2, "update": 1}
	best := map[string]engine.Op{}
	for _, ch := range plan {
		k := ch.Target + "/" + ch.CanonicalID
		if ch.CanonicalID == "" {
			k = ch.Target + "/" + ch.Error
		}
		if rank[ch.Op] > rank[best[k]] {
			best[k] = ch.Op
		}
	}
	out := map[string]int{}
	for _, op := range best {
		out[string(op)]++
	}
	return out
}

func TestPlanWritesNothingAndSyncDoesWhatItSaid(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 8, flows: oneWay})
	w.brtCreate(map[string]any{"name": "Existing Co", "email_address": "hello@existing.example", "prospection_code_id": 2})
	w.tribeCreateOrg("Lead", map[string]any{"Name": "Existing Company", "EmailAddress": "hello@existing.example"})

	check := func(step string) {
		t.Helper()
		brtBefore := w.brtWrites()
		stateBefore := readFile(t, w.statePath)
		plan := w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModePlan})
		if n := w.brtWrites() - brtBefore; n != 0 {
			t.Fatalf("%s: plan sent %d writes to BlueRockTel", step, n)
		}
		if string(readFile(t, w.statePath)) != string(stateBefore) {
			t.Fatalf("%s: plan changed the state file", step)
		}
		want := planCounts(plan.Plan)
		sync := w.run("t2b")
		c := counts(sync, "bluerocktel")
		got := map[string]int{"create": c.Created, "link": c.Linked, "update": c.Updated, "convert": c.Converted, "dead-letter": c.Failed}
		for op, n := range got {
			if n != want[op] {
				t.Errorf("%s: plan said %d %s, sync did %d (plan %+v, sync %+v)", step, want[op], op, n, plan.Plan, c)
			}
		}
		t.Logf("%s: plan and sync agree: %v", step, want)
	}
	check("first sync")

	// Edits: one field change, one funnel step (an update of the code), one
	// conversion to customer, one record matching two records (dead letter).
	all := w.tribeAll()
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	var orgs []tribeRel
	for _, r := range all {
		if strings.HasPrefix(r.Set, "Relationship_Organization_") && !strings.HasSuffix(r.Set, "_Customer") && !strings.HasSuffix(r.Set, "_Prospect") {
			orgs = append(orgs, r)
		}
	}
	if len(orgs) < 2 {
		t.Fatalf("seed has %d early-stage organisations, need 2", len(orgs))
	}
	w.tribeEditOrg(orgs[0], map[string]any{"PhoneNumber": "+31 20 246 8100"})
	w.tribeConvert(orgs[1].ID, "Customer")
	w.brtCreate(map[string]any{"name": "Twin A", "email_address": "twins@example.com", "prospection_code_id": 1})
	w.brtCreate(map[string]any{"name": "Twin B", "email_address": "twins@example.com", "prospection_code_id": 1})
	w.tribeCreateOrg("Suspect", map[string]any{"Name": "Twins Holding", "EmailAddress": "twins@example.com"})

	plan := w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModePlan})
	var sawDiff, sawConvert bool
	for _, ch := range plan.Plan {
		if ch.Op == "update" {
			for _, d := range ch.Fields {
				if d.Field == "phone" && d.New == "+31 20 246 8100" && d.Old != nil && d.Old != d.New {
					sawDiff = true
				}
			}
		}
		if ch.Op == "convert" && ch.Entity == "prospects" && ch.ToEntity == "customers" {
			sawConvert = true
		}
	}
	if !sawDiff || !sawConvert {
		t.Errorf("plan lacks the phone diff old->new (%v) or the prospect->customer conversion (%v): %+v", sawDiff, sawConvert, plan.Plan)
	}
	check("after edits")
}

func TestBackfillSinceResumeAndScheduledCursor(t *testing.T) {
	t.Parallel()
	rec := &recordingPulls{}
	w := newWorld(t, worldOpts{tribe: 60, pageSize: 10, flows: oneWay,
		wrap: map[string]func(connectors.Connector) connectors.Connector{"tribecrm": func(c connectors.Connector) connectors.Connector {
			rec.wrapped = wrapped{c}
			return rec
		}}})
	w.run("t2b")
	sched, _ := w.st.Cursor(engine.CursorKey("t2b", "tribecrm"))
	if sched == nil {
		t.Fatal("no scheduled cursor after a sync")
	}

	// --since: only records changed since then are read again.
	all := w.tribeAll()
	var stamps []time.Time
	for _, r := range all {
		stamps = append(stamps, recordTime(r.Fields))
	}
	sort.Slice(stamps, func(i, j int) bool { return stamps[i].Before(stamps[j]) })
	since := stamps[len(stamps)*2/3]
	want := map[string]bool{}
	for _, r := range all {
		if !recordTime(r.Fields).Before(since) {
			want[r.ID] = true
		}
	}
	rec.reset()
	res := w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModeBackfill, Since: since})
	got := rec.ids()
	if len(got) != len(want) {
		t.Errorf("backfill --since %s read %d records, want the %d changed since then", since, len(got), len(want))
	}
	for id := range want {
		if !got[id] {
			t.Errorf("backfill --since missed %s", id)
		}
	}
	if writes(res) != 0 {
		t.Errorf("backfill of records in sync made %d writes", writes(res))
	}

	// An interrupted backfill resumes from its last committed page.
	stop := make(chan struct{})
	rec.reset()
	handled := 0
	res = w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModeBackfill, Stop: stop, Progress: func(p engine.Progress) {
		handled = p.Records
		if p.Pages == 2 {
			close(stop)
		}
	}})
	first := rec.ids()
	// Up to two pages after the second are on their way when the stop
	// comes (pages overlap, three at most uncommitted): they are finished
	// and committed too.
	if !res.Stopped || res.Pages < 2 || res.Pages > 4 {
		t.Fatalf("stopped %v after %d pages; want a stop after page 2, 3 or 4", res.Stopped, res.Pages)
	}
	if bc, _ := w.st.Cursor(engine.BackfillKey("t2b")); bc == nil {
		t.Fatal("no backfill cursor kept after the interruption")
	}
	rec.reset()
	w.reopen()
	var progress []engine.Progress
	res = w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModeBackfill, Progress: func(p engine.Progress) {
		if p.Reading == "" {
			progress = append(progress, p)
		}
	}})
	second := rec.ids()
	// Its progress counts on from the interrupted part, out of the whole.
	if len(progress) == 0 {
		t.Fatal("the resumed backfill reported no progress")
	}
	if p := progress[0]; p.Records <= handled {
		t.Errorf("the resumed backfill's first progress says %d records; want more than the %d handled before the interruption", p.Records, handled)
	}
	if p := progress[len(progress)-1]; p.Total >= 0 && (p.Total < len(all) || p.Records > p.Total) {
		t.Errorf("the resumed backfill ends at %d of %d; want at most the total, which covers all %d records", p.Records, p.Total, len(all))
	}
	if rec.firstCursorNil() {
		t.Error("the resumed backfill started from the beginning")
	}
	// Up to two pages past the last committed one were read ahead and
	// not handled: those alone may be read again.
	again := 0
	for id := range second {
		if first[id] {
			again++
		}
	}
	if again > 2*10 {
		t.Errorf("%d records read again after resuming; want at most the two pages read ahead (20)", again)
	}
	if len(first)+len(second) < len(all) {
		t.Errorf("interrupted + resumed backfill read %d + %d records, want all %d", len(first), len(second), len(all))
	}
	if bc, _ := w.st.Cursor(engine.BackfillKey("t2b")); bc != nil {
		t.Error("a finished backfill left its cursor behind")
	}
	if now, _ := w.st.Cursor(engine.CursorKey("t2b", "tribecrm")); string(now) != string(sched) {
		t.Error("backfill moved the scheduled cursor")
	}
}

// recordTime is when a TribeCRM relationship last changed (its own or its
// organisation's/person's LastMutationDate, whichever is later).
func recordTime(f map[string]any) time.Time {
	ts, _ := time.Parse(time.RFC3339Nano, str(f["LastMutationDate"]))
	for _, nav := range []string{"Organization", "Person"} {
		if m, ok := f[nav].(map[string]any); ok {
			if t2, err := time.Parse(time.RFC3339Nano, str(m["LastMutationDate"])); err == nil && t2.After(ts) {
				ts = t2
			}
		}
	}
	return ts
}

// recordingPulls notes which records a source's Pull returned.
type recordingPulls struct {
	wrapped
	mu      sync.Mutex
	seen    map[string]bool
	cursors []bool // whether each Pull got a nil cursor
}

func (r *recordingPulls) Pull(ctx context.Context, cur connectors.Cursor, o connectors.PullOptions) (connectors.Page, error) {
	p, err := r.Connector.Pull(ctx, cur, o)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.cursors = append(r.cursors, cur == nil)
	for _, rec := range p.Records {
		r.seen[rec.ID] = true
	}
	return p, err
}

func (r *recordingPulls) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen, r.cursors = nil, nil
}

func (r *recordingPulls) ids() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for k := range r.seen {
		out[k] = true
	}
	return out
}

func (r *recordingPulls) firstCursorNil() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cursors) > 0 && r.cursors[0]
}

func TestFiveThousandRecordsOnOneTimestampNoneLost(t *testing.T) {
	t.Parallel()
	if testing.Short() || !*tiesLong {
		t.Skip("5,000 records: run with -ties.long (TestThousandRecordsOnOneTimestampNoneLost runs 1,000 by default)")
	}
	w := newWorld(t, worldOpts{tribe: 5000, pageSize: 100, flows: oneWay})
	w.srv.TribeCRM.Freeze(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	w.srv.TribeCRM.Touch() // every relationship on one LastMutationDate
	started := time.Now()
	res := w.run("t2b")
	syncRate := 5000 / time.Since(started).Seconds()
	if c := counts(res, "bluerocktel"); c.Created != 5000 || c.Failed != 0 {
		t.Fatalf("counts %+v; want 5000 created", c)
	}
	if w.brtTotal() != 5000 {
		t.Fatalf("BlueRockTel holds %d records, want 5000", w.brtTotal())
	}
	links, _ := w.st.Links("tribecrm")
	if len(links) != 5000 {
		t.Fatalf("%d TribeCRM records linked, want 5000", len(links))
	}

	// A backfill of all of them: reads 5,000, writes nothing.
	started = time.Now()
	res = w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModeBackfill})
	d := time.Since(started)
	if c := counts(res, "tribecrm"); c.Pulled < 5000 || writes(res) != 0 {
		t.Fatalf("backfill pulled %d and made %d writes; want 5000 and 0", c.Pulled, writes(res))
	}
	t.Logf("first sync of 5,000 (all created): %.0f records/s; backfill of 5,000 (in sync): %.0f records/s", syncRate, 5000/d.Seconds())
}

func TestEditsDuringPagingAreNotLost(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 300, pageSize: 20, flows: oneWay})
	w.run("t2b")
	w.srv.TribeCRM.EditDuringPaging(3)
	w.run("t2b") // the edits start: every page read changes three records
	w.srv.TribeCRM.EditDuringPaging(0)
	if w.srv.TribeCRM.Edits() == 0 {
		t.Fatal("no edits were made while paging")
	}
	w.run("t2b")
	if n := writes(w.run("t2b")); n != 0 {
		t.Fatalf("a sync with no edits made %d writes", n)
	}
	// Every phone (the edited mapped field) is in BlueRockTel as in TribeCRM.
	brt := map[string]map[string]any{}
	for _, r := range w.brtAll() {
		brt[r.Entity+":"+r.ID] = r.Fields
	}
	lost := 0
	for _, r := range w.tribeAll() {
		want := w.canonical("tribecrm", r.Set, r.Fields)["phone"]
		b := brt[w.linkedBRT(r.ID)]
		if b == nil {
			t.Errorf("%s not in BlueRockTel", r.ID)
			continue
		}
		if str(b["phone"]) != str(want) {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d edits made while paging never reached BlueRockTel (%d edits made)", lost, w.srv.TribeCRM.Edits())
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

func TestConcurrentCreatesOnAFirstSync(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 200, pageSize: 50, concurrency: 4, flows: oneWay})
	if c := counts(w.run("t2b"), "bluerocktel"); c.Created != 200 || w.brtTotal() != 200 {
		t.Fatalf("counts %+v, BlueRockTel holds %d; want 200 created", c, w.brtTotal())
	}
}

// Linking an existing record, and every update after it, leaves alone the
// target's fields that the source cannot know: TribeCRM has no consent
// flags and no fax, so BlueRockTel's stay as they were. A field the source
// does carry is still cleared when the source clears it.
func TestTargetOnlyFieldsSurviveLinkAndUpdates(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{flows: oneWay})
	w.brtCreate(map[string]any{"name": "Consent Works BV", "email_address": "hello@consent.example", "phone": "+31 20 111 2222",
		"fax": "+31 20 111 2223", "accept_emails": false, "accept_calls": false, "comment": "call before noon", "prospection_code_id": 2})
	org := w.tribeCreateOrg("Lead", map[string]any{"Name": "Consent Works", "EmailAddress": "hello@consent.example", "PhoneNumber": "+31 20 111 2222"})
	if c := counts(w.run("t2b"), "bluerocktel"); c.Linked != 1 || c.Failed != 0 {
		t.Fatalf("first sync: %+v; want the record linked", c)
	}
	check := func(when string, wantPhone any) {
		t.Helper()
		got := w.brtByName("Consent Works")
		if len(got) != 1 {
			t.Fatalf("%s: %d records named Consent Works", when, len(got))
		}
		f := got[0].Fields
		for k, want := range map[string]any{"fax": "+31 20 111 2223", "accept_emails": false, "accept_calls": false, "comment": "call before noon", "phone": wantPhone} {
			if fmt.Sprint(f[k]) != fmt.Sprint(want) {
				t.Errorf("%s: BlueRockTel %s = %v, want %v", when, k, f[k], want)
			}
		}
	}
	check("after the link", "+31 20 111 2222")
	w.tribeEditOrg(org, map[string]any{"PhoneNumber": nil})
	if c := counts(w.run("t2b"), "bluerocktel"); c.Updated != 1 || c.Failed != 0 {
		t.Fatalf("after clearing the phone in TribeCRM: %+v; want 1 update", c)
	}
	check("after the phone was cleared at the source", nil)
}
