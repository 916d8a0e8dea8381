package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
)

// countingPulls counts a connector's pull requests: fullReads those that
// start from the beginning (a nil cursor), pulls all of them.
type countingPulls struct {
	wrapped
	mu               sync.Mutex
	fullReads, pulls int
	// failAt, when > 0, fails the pull with that number (1-based) once,
	// as an outage would.
	failAt int
}

func (c *countingPulls) Pull(ctx context.Context, cur connectors.Cursor, o connectors.PullOptions) (connectors.Page, error) {
	c.mu.Lock()
	c.pulls++
	if cur == nil {
		c.fullReads++
	}
	fail := c.failAt > 0 && c.pulls == c.failAt
	c.mu.Unlock()
	if fail {
		return connectors.Page{}, &connectors.Error{System: c.System(), Op: "pull", Kind: connectors.Retryable, Message: "503 (test)"}
	}
	return c.Connector.Pull(ctx, cur, o)
}

func (c *countingPulls) counts() (fullReads, pulls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fullReads, c.pulls
}

// countTargetPulls wraps BlueRockTel's connector in a countingPulls.
func countTargetPulls(o *worldOpts) *countingPulls {
	c := &countingPulls{}
	o.wrap = map[string]func(connectors.Connector) connectors.Connector{
		"bluerocktel": func(in connectors.Connector) connectors.Connector { c.Connector = in; return c },
	}
	return c
}

// stopAfterPages returns run options whose run stops after n pages.
func stopAfterPages(mode engine.Mode, n int) engine.RunOptions {
	stop := make(chan struct{})
	var once sync.Once
	return engine.RunOptions{Mode: mode, Stop: stop, Progress: func(p engine.Progress) {
		if p.Pages >= n {
			once.Do(func() { close(stop) })
		}
	}}
}

// A first sync stopped after two pages and run again (by a restarted
// process) goes on without reading the target from the beginning again:
// the match index built by the first run is in state. Nothing is created
// twice, and the seeded BlueRockTel records are still matched.
func TestRestartDuringFirstSyncDoesNotReadTheTargetAgain(t *testing.T) {
	t.Parallel()
	o := worldOpts{tribe: 300, others: 60, pageSize: 25, flows: oneWay}
	cp := countTargetPulls(&o)
	w := newWorld(t, o)
	before := w.brtTotal()
	res := w.runFlow(w.flow("t2b"), stopAfterPages(engine.ModeSync, 2))
	// Pages in flight when the stop comes are finished: the run stops after
	// a few, well before the 12 of the whole source.
	if !res.Stopped || res.Pages >= 12 {
		t.Fatalf("first run: stopped %v after %d pages; want stopped before the end (12)", res.Stopped, res.Pages)
	}
	full1, _ := cp.counts()
	if full1 != 1 {
		t.Fatalf("the first run read BlueRockTel from the beginning %d times, want once (to match records)", full1)
	}
	first := counts(res, "bluerocktel")

	w.reopen()
	res = w.run("t2b")
	full, pulls := cp.counts()
	if full != full1 {
		t.Fatalf("the restarted run read BlueRockTel from the beginning %d more times, want 0", full-full1)
	}
	t.Logf("BlueRockTel pulls: %d in all, %d from the beginning", pulls, full)
	c := counts(res, "bluerocktel")
	if c.Failed != 0 {
		t.Fatalf("restarted run: %+v", c)
	}
	created, linked := first.Created+c.Created, first.Linked+c.Linked
	if created+linked != 300 || w.brtTotal() != before+created {
		t.Fatalf("created %d and linked %d of 300 records; BlueRockTel %d -> %d records", created, linked, before, w.brtTotal())
	}
	if links, _ := w.st.Links("tribecrm"); len(links) != 300 {
		t.Fatalf("%d TribeCRM records linked, want 300", len(links))
	}
}

// An index build cut by a failed pull goes on from its last committed
// page when the next run starts: BlueRockTel is read from the beginning
// once in all.
func TestInterruptedIndexBuildResumes(t *testing.T) {
	t.Parallel()
	o := worldOpts{tribe: 30, others: 150, pageSize: 25, flows: oneWay}
	cp := countTargetPulls(&o)
	cp.failAt = 4
	w := newWorld(t, o)
	before := w.brtTotal()
	// The failed read fails the writes that needed it (kept pending, not
	// sent): the next run sends them.
	res, _ := w.eng.Run(w.ctx, w.flow("t2b"), engine.RunOptions{Mode: engine.ModeSync})
	first := counts(res, "bluerocktel")
	if first.Failed == 0 {
		t.Fatalf("first run: %+v; want the writes that needed the failed read failed", first)
	}
	w.reopen()
	c := counts(w.run("t2b"), "bluerocktel")
	if links, _ := w.st.Links("tribecrm"); len(links) != 30 || c.Failed != 0 {
		t.Fatalf("%d of 30 TribeCRM records linked after the second run (%+v)", len(links), c)
	}
	if made := first.Created + c.Created; w.brtTotal() != before+made {
		t.Fatalf("BlueRockTel %d -> %d records, but %d created", before, w.brtTotal(), made)
	}
	if full, pulls := cp.counts(); full != 1 {
		t.Fatalf("BlueRockTel read from the beginning %d times (%d pulls), want once", full, pulls)
	}
}

// A record created in BlueRockTel between two runs is matched by the next
// bulk run, which refreshes the index from the saved target cursor (the
// records changed since) instead of reading everything again.
func TestTargetRecordCreatedBetweenRunsIsMatchedByARefresh(t *testing.T) {
	t.Parallel()
	o := worldOpts{tribe: 40, others: 40, flows: oneWay}
	cp := countTargetPulls(&o)
	w := newWorld(t, o)
	w.run("t2b")
	full1, _ := cp.counts()

	made := w.brtCreate(map[string]any{"name": "Refreshed Index BV", "email_address": "hello@refreshed.example", "prospection_code_id": 1})
	tr := w.tribeCreateOrg("Lead", map[string]any{"Name": "Refreshed", "EmailAddress": "Hello@Refreshed.example"})
	w.reopen()
	res := w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModeBackfill})
	if c := counts(res, "bluerocktel"); c.Linked != 1 || c.Created != 0 || c.Failed != 0 {
		t.Fatalf("backfill: %+v; want the new TribeCRM record linked, nothing created", c)
	}
	if got := w.linkedBRT(tr.ID); got != "prospects:"+made.ID {
		t.Fatalf("linked to %q, want prospects:%s", got, made.ID)
	}
	if full, _ := cp.counts(); full != full1 {
		t.Fatalf("the backfill read BlueRockTel from the beginning %d times, want 0 (a refresh)", full-full1)
	}
}

// A BlueRockTel record the index knows but that was deleted there since is
// no candidate: the TribeCRM record that matches it is created (not
// dead-lettered), and the index forgets the deleted record.
func TestMatchedCandidateDeletedInTheTargetIsCreated(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 30, flows: oneWay})
	gone := w.brtCreate(map[string]any{"name": "Gone Away BV", "email_address": "bye@gone.example", "prospection_code_id": 1})
	w.run("t2b") // builds the index, with the record in it
	email := []state.IndexValue{{Key: funnel.FieldEmail, Value: engine.NormalizeMatch(funnel.FieldEmail, "bye@gone.example")}}
	if got, err := w.st.IndexLookup("bluerocktel", email); err != nil || len(got[0]) != 1 {
		t.Fatalf("index after the first run: %v, %v; want the record", got, err)
	}
	if err := w.brt.Delete(w.ctx, bluerocktel.EntityProspects, gone.ID); err != nil {
		t.Fatal(err)
	}
	tr := w.tribeCreateOrg("Lead", map[string]any{"Name": "Gone", "EmailAddress": "bye@gone.example"})
	res := w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModeBackfill})
	if c := counts(res, "bluerocktel"); c.Created != 1 || c.Failed != 0 || c.Linked != 0 {
		t.Fatalf("backfill: %+v; want the record created", c)
	}
	if dls, err := w.st.DeadLetters("t2b"); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters %v, %v; want none", dls, err)
	}
	made := w.linkedBRT(tr.ID)
	if made == "" || made == "prospects:"+gone.ID {
		t.Fatalf("TribeCRM %s linked to %q", tr.ID, made)
	}
	// The deleted record left the index; the created one is linked, and
	// the index keeps only records crmsync did not link.
	got, err := w.st.IndexLookup("bluerocktel", email)
	if err != nil || len(got[0]) != 0 {
		t.Fatalf("index after the backfill: %v, %v; want no record (the deleted one gone, %s linked)", got, err, made)
	}
}

// Two records of one page with the same e-mail are each created: the
// record the first one created is found (in the page in hand, before its
// page is committed), but it belongs to the first one's golden record
// (linkOwner counts the writes of uncommitted pages), so it is no candidate
// for the second. Nothing is dead-lettered as ambiguous.
//
// Before the overlapping pages (0ee3b5b) the second was linked to the
// first one's record instead: one created, one linked.
func TestTwoRecordsOfOnePageWithOneEmailAreEachCreated(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{concurrency: 1, flows: oneWay})
	one := w.tribeCreateOrg("Lead", map[string]any{"Name": "Twin One", "EmailAddress": "twins@page.example"})
	two := w.tribeCreateOrg("Lead", map[string]any{"Name": "Twin Two", "EmailAddress": "TWINS@page.example"})
	res := w.run("t2b")
	if c := counts(res, "bluerocktel"); c.Created != 2 || c.Linked != 0 || c.Failed != 0 || w.brtTotal() != 2 {
		t.Fatalf("counts %+v, BlueRockTel holds %d; want 2 created, 2 records", c, w.brtTotal())
	}
	if a, b := w.linkedBRT(one.ID), w.linkedBRT(two.ID); a == "" || b == "" || a == b {
		t.Fatalf("twins linked to %q and %q; want a record each", a, b)
	}
}

// A scheduled (not bulk) run whose page needs 25 or more creates uses the
// index too, refreshed with what changed in the target since the last run:
// a BlueRockTel record made meanwhile is matched by its name with other
// punctuation (which only the index folds; Find compares case only), and
// the target is not read from the beginning again.
func TestSyncPageWithManyCreatesUsesTheRefreshedIndex(t *testing.T) {
	t.Parallel()
	o := worldOpts{tribe: 10, pageSize: 50, flows: oneWay}
	cp := countTargetPulls(&o)
	w := newWorld(t, o)
	w.run("t2b") // first sync: builds the index
	full1, _ := cp.counts()
	made := w.brtCreate(map[string]any{"name": "Punct Holding B.V.", "prospection_code_id": 1})
	var match tribeRel
	for i := 0; i < 30; i++ {
		w.tribeCreateOrg("Lead", map[string]any{"Name": fmt.Sprintf("Bulk Page %d", i)})
		if i == 17 {
			match = w.tribeCreateOrg("Lead", map[string]any{"Name": "Punct Holding BV"})
		}
	}
	res := w.run("t2b")
	if c := counts(res, "bluerocktel"); c.Created != 30 || c.Linked != 1 || c.Failed != 0 {
		t.Fatalf("sync: %+v; want 30 created and 1 linked", c)
	}
	if got := w.linkedBRT(match.ID); got != "prospects:"+made.ID {
		t.Fatalf("linked to %q, want prospects:%s", got, made.ID)
	}
	if full, _ := cp.counts(); full != full1 {
		t.Fatalf("the sync read BlueRockTel from the beginning %d times, want 0", full-full1)
	}
}
