// Package statetest is the contract every state engine keeps: the
// behaviour of the bbolt state.Store that the engine, the CLI and the
// daemon rely on, run against any engine with Run. For tests only.
package statetest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
)

// Store is what a state engine offers (state.Storage).
type Store = state.Storage

// Engine is the engine under test.
type Engine struct {
	// New makes fresh, empty storage for one test and returns a function
	// that opens a Store on it. The suite calls open again after closing
	// the previous Store, to check what survives a restart, and closes
	// every Store it opened.
	New func(t *testing.T) (open func(t *testing.T) Store)
	// Resolution is how precisely the engine keeps the times of
	// fingerprints, intents, dead letters and a run's Finished (1ns for
	// bbolt, 1µs for PostgreSQL). Times inside records and a run's Started
	// (its key) are kept exactly by every engine.
	Resolution time.Duration
}

// t0 is a time with nanoseconds, for the values every engine keeps exactly.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// Run runs every contract test against e, each as a parallel subtest.
func Run(t *testing.T, e Engine) {
	if e.Resolution <= 0 {
		e.Resolution = time.Nanosecond
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, e *env)
	}{
		{"EmptyStoreReadsNothing", testEmpty},
		{"CursorRoundTrip", testCursor},
		{"RecordRoundTripAndLinks", testRecordLinks},
		{"PutRecordKeepsLinkTakenOverByAnotherRecord", testLinkTakenOver},
		{"LinkUnlinkInBatchOrder", testBatchOrder},
		{"LinksListsOneSystemOnly", testLinksOneSystem},
		{"FingerprintRoundTrip", testFingerprint},
		{"IntentsRoundTripAndSurviveReopen", testIntents},
		{"IntentsInABatchLastChangeWins", testBatchIntents},
		{"DeadLettersAttemptsDeleteDrop", testDeadLetters},
		{"RunsCappedNewestFirst", testRuns},
		{"RunsKeyedByStartToTheNanosecond", testRunKeys},
		{"ReopenSeesEverything", testReopen},
		{"InvalidChangeWritesNothing", testInvalidBatch},
		{"CommitCutByFailureWritesNothing", testCutCommit},
		{"ConcurrentReadsSeeWholeCommits", testConcurrentReads},
		{"TimesComeBackInUTC", testTimes},
		{"MatchIndexRowsMetaAndReset", testMatchIndex},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			open := e.New(t)
			en := &env{t: t, open: open, res: e.Resolution}
			en.s = en.reopen()
			tc.fn(t, en)
		})
	}
}

// env is one test's store and how to reopen it.
type env struct {
	t    *testing.T
	open func(t *testing.T) Store
	s    Store
	res  time.Duration
}

// reopen closes the current Store (if any) and opens a new one on the same
// storage.
func (e *env) reopen() Store {
	e.t.Helper()
	if e.s != nil {
		if err := e.s.Close(); err != nil {
			e.t.Fatalf("Close: %v", err)
		}
	}
	s := e.open(e.t)
	e.t.Cleanup(func() { _ = s.Close() })
	e.s = s
	return s
}

// tm rounds a time the way the engine keeps it.
func (e *env) tm(t time.Time) time.Time { return t.Truncate(e.res) }

func (e *env) commit(fill func(b *state.Batch)) {
	e.t.Helper()
	var b state.Batch
	fill(&b)
	if err := e.s.Commit(&b); err != nil {
		e.t.Fatalf("Commit: %v", err)
	}
}

// counts is Stats without "meta", whose meaning differs between engines.
func (e *env) counts() map[string]int {
	e.t.Helper()
	st, err := e.s.Stats()
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	delete(st, "meta")
	return st
}

func sampleRecord(id string) *funnel.Record {
	r := funnel.New(id)
	_ = r.Set(funnel.FieldKind, "organization")
	_ = r.Set(funnel.FieldStage, "lead")
	_ = r.Set(funnel.FieldName, "Acme B.V.")
	_ = r.Set(funnel.FieldActive, true)
	_ = r.Set(funnel.FieldUpdatedAt, t0)
	r.Fields["score"] = 0.1
	r.Fields["big"] = 1e21
	r.Fields["tags"] = []any{"a", "b"}
	r.Links["tribecrm"] = "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e"
	r.Links["overplane"] = "4711"
	r.Sources = map[string]funnel.Source{
		funnel.FieldName:  {System: "tribecrm", At: t0},
		funnel.FieldStage: {System: "overplane", At: t0.Add(-time.Hour)},
	}
	r.Gone = map[string]time.Time{"bluerocktel": t0.Add(time.Minute)}
	return r
}

func testEmpty(t *testing.T, e *env) {
	s := e.s
	if c, err := s.Cursor("flow/a/tribecrm"); err != nil || c != nil {
		t.Errorf("Cursor = %q, %v; want nil, nil", c, err)
	}
	if id, err := s.Link("tribecrm", "x"); err != nil || id != "" {
		t.Errorf("Link = %q, %v; want empty", id, err)
	}
	if l, err := s.Links("tribecrm"); err != nil || l == nil || len(l) != 0 {
		t.Errorf("Links = %#v, %v; want an empty map", l, err)
	}
	if r, err := s.Record("nope"); err != nil || r != nil {
		t.Errorf("Record = %v, %v; want nil", r, err)
	}
	if f, err := s.Fingerprint("tribecrm", "x"); err != nil || f != nil {
		t.Errorf("Fingerprint = %v, %v; want nil", f, err)
	}
	if in, err := s.Intents(""); err != nil || len(in) != 0 {
		t.Errorf("Intents = %v, %v; want none", in, err)
	}
	if d, err := s.DeadLetters(""); err != nil || len(d) != 0 {
		t.Errorf("DeadLetters = %v, %v; want none", d, err)
	}
	if d, err := s.DeadLetter("a/b/c"); err != nil || d != nil {
		t.Errorf("DeadLetter = %v, %v; want nil", d, err)
	}
	if r, err := s.LastRun("a"); err != nil || r != nil {
		t.Errorf("LastRun = %v, %v; want nil", r, err)
	}
	if r, err := s.Runs("", 0); err != nil || len(r) != 0 {
		t.Errorf("Runs = %v, %v; want none", r, err)
	}
	if err := s.Commit(&state.Batch{}); err != nil {
		t.Errorf("Commit(empty) = %v", err)
	}
	if err := s.Commit(nil); err != nil {
		t.Errorf("Commit(nil) = %v", err)
	}
	if err := s.PutIntents(nil); err != nil {
		t.Errorf("PutIntents(nil) = %v", err)
	}
	want := map[string]int{"cursors": 0, "records": 0, "links": 0, "fingerprints": 0, "intents": 0, "deadletters": 0, "runs": 0}
	if got := e.counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("Stats = %v, want %v", got, want)
	}
}

func testCursor(t *testing.T, e *env) {
	c := []byte(`{"ts":"2025-03-14T09:26:53Z","id":"42"}`)
	bin := []byte{0, 1, 2, 0xff, 0xfe}
	e.commit(func(b *state.Batch) {
		b.SetCursor("flow/leads/tribecrm", c)
		b.SetCursor("backfill/leads", []byte{})
		b.SetCursor("flow/leads/overplane", bin)
	})
	c[0] = 'X' // the batch copied it
	for round := 0; round < 2; round++ {
		got, err := e.s.Cursor("flow/leads/tribecrm")
		if err != nil || string(got) != `{"ts":"2025-03-14T09:26:53Z","id":"42"}` {
			t.Fatalf("round %d: Cursor = %q, %v", round, got, err)
		}
		empty, err := e.s.Cursor("backfill/leads")
		if err != nil || empty == nil || len(empty) != 0 {
			t.Fatalf("round %d: empty cursor = %#v, %v; want non-nil empty", round, empty, err)
		}
		if got, _ := e.s.Cursor("flow/leads/overplane"); !reflect.DeepEqual(got, []byte{0, 1, 2, 0xff, 0xfe}) {
			t.Fatalf("round %d: binary cursor = %v (cursors are opaque bytes)", round, got)
		}
		e.reopen()
	}
	e.commit(func(b *state.Batch) { b.SetCursor("flow/leads/tribecrm", nil) })
	if got, _ := e.s.Cursor("flow/leads/tribecrm"); got != nil {
		t.Fatalf("cursor after SetCursor(nil) = %q, want nil", got)
	}
}

func testRecordLinks(t *testing.T, e *env) {
	r := sampleRecord("c0ffee00-0000-4000-8000-000000000001")
	e.commit(func(b *state.Batch) { b.PutRecord(r) })
	r.Fields[funnel.FieldName] = "changed after PutRecord" // the batch encoded it already

	got, err := e.s.Record(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleRecord(r.ID)
	if !reflect.DeepEqual(got, roundTrip(t, want)) {
		t.Fatalf("Record round trip:\n got %#v\nwant %#v", got, want)
	}
	for sys, ext := range want.Links {
		if id, err := e.s.Link(sys, ext); err != nil || id != r.ID {
			t.Errorf("Link(%s, %s) = %q, %v; want %q", sys, ext, id, err, r.ID)
		}
	}
	// The record moves to another overplane id and loses its tribecrm link:
	// the old links go, the new one comes.
	r2 := sampleRecord(r.ID)
	delete(r2.Links, "tribecrm")
	r2.Links["overplane"] = "4712"
	e.commit(func(b *state.Batch) { b.PutRecord(r2) })
	for _, c := range []struct{ sys, ext, want string }{
		{"tribecrm", "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e", ""},
		{"overplane", "4711", ""},
		{"overplane", "4712", r.ID},
	} {
		if id, _ := e.s.Link(c.sys, c.ext); id != c.want {
			t.Errorf("after relink: Link(%s, %s) = %q, want %q", c.sys, c.ext, id, c.want)
		}
	}
	if got, _ := e.s.Record(r.ID); !reflect.DeepEqual(got.Links, map[string]string{"overplane": "4712"}) {
		t.Errorf("record links after relink = %v", got.Links)
	}
	// A bare record reads back with empty (non-nil) fields and links.
	e.commit(func(b *state.Batch) { b.PutRecord(&funnel.Record{ID: "bare"}) })
	bare, err := e.s.Record("bare")
	if err != nil || bare == nil || bare.Fields == nil || bare.Links == nil || len(bare.Fields)+len(bare.Links) != 0 ||
		bare.Sources != nil || bare.Gone != nil {
		t.Fatalf("bare record = %#v, %v", bare, err)
	}
	if n := e.counts()["records"]; n != 2 {
		t.Errorf("records = %d, want 2", n)
	}
}

// roundTrip is what a record reads back as: its values as JSON decodes them.
func roundTrip(t *testing.T, r *funnel.Record) *funnel.Record {
	t.Helper()
	out := *r
	out.Fields = map[string]any{}
	for k, v := range r.Fields {
		switch v := v.(type) {
		case time.Time:
			out.Fields[k] = v.Format(time.RFC3339Nano)
		default:
			out.Fields[k] = v
		}
	}
	return &out
}

func testLinkTakenOver(t *testing.T, e *env) {
	a := funnel.New("a")
	a.Links["overplane"] = "1"
	e.commit(func(b *state.Batch) { b.PutRecord(a) })
	// Record b takes over overplane/1 (a merge), then a is rewritten without it.
	bRec := funnel.New("b")
	bRec.Links["overplane"] = "1"
	a2 := funnel.New("a")
	e.commit(func(b *state.Batch) {
		b.PutRecord(bRec)
		b.PutRecord(a2)
	})
	if id, _ := e.s.Link("overplane", "1"); id != "b" {
		t.Fatalf("Link(overplane, 1) = %q, want b (a must not remove b's link)", id)
	}
}

func testBatchOrder(t *testing.T, e *env) {
	var b state.Batch
	b.Link("overplane", "1", "a")
	b.Unlink("overplane", "1")
	b.Link("overplane", "2", "a")
	b.Link("overplane", "2", "b")
	b.Link("bluerocktel", "p-17", "id-1")
	b.Unlink("bluerocktel", "never-linked")
	b.SetCursor("k", []byte("1"))
	b.SetCursor("k", []byte("2"))
	b.DeleteDeadLetter("f/s/x")
	b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "s", CanonicalID: "x", Error: "e"})
	b.PutRecord(sampleRecord("r"))
	b.Unlink("overplane", "4711") // after the record linked it
	if err := e.s.Commit(&b); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ sys, ext, want string }{
		{"overplane", "1", ""}, {"overplane", "2", "b"}, {"bluerocktel", "p-17", "id-1"},
		{"overplane", "p-17", ""}, // links are per system
		{"overplane", "4711", ""}, {"tribecrm", "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e", "r"},
	} {
		if id, _ := e.s.Link(c.sys, c.ext); id != c.want {
			t.Errorf("Link(%s, %s) = %q, want %q", c.sys, c.ext, id, c.want)
		}
	}
	if c, _ := e.s.Cursor("k"); string(c) != "2" {
		t.Errorf("cursor = %q, want 2", c)
	}
	if d, _ := e.s.DeadLetter("f/s/x"); d == nil {
		t.Error("dead letter deleted before it was put")
	}
	// Link changes the index only: the record keeps its own links.
	if r, _ := e.s.Record("r"); r == nil || r.Links["overplane"] != "4711" {
		t.Errorf("record after Unlink = %#v, want its links unchanged", r)
	}
}

func testLinksOneSystem(t *testing.T, e *env) {
	e.commit(func(b *state.Batch) {
		b.Link("tribecrm", "t1", "c1")
		b.Link("tribecrm", "t2", "c2")
		b.Link("tribecrmx", "t3", "c3") // a system whose name extends another's must not leak in
		b.Link("overplane", "o1", "c1")
	})
	got, err := e.s.Links("tribecrm")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"t1": "c1", "t2": "c2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Links(tribecrm) = %v, want %v", got, want)
	}
}

func testFingerprint(t *testing.T, e *env) {
	payload := map[string]any{"name": "Acme", "id": float64(4711), "active": true, "ratio": 0.3,
		"address": map[string]any{"city": "Utrecht"}, "tags": []any{"a", "b"}, "none": nil, "unicode": "Zürich ✓"}
	f := state.Fingerprint{Hash: funnel.FingerprintValues(payload), Payload: payload, Entity: "prospect", At: t0, Source: state.FingerprintWrite}
	e.commit(func(b *state.Batch) { b.PutFingerprint("overplane", "4711", f) })
	got, err := e.s.Fingerprint("overplane", "4711")
	if err != nil || got == nil {
		t.Fatal(got, err)
	}
	want := f
	want.At = e.tm(t0)
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("Fingerprint round trip:\n got %#v\nwant %#v", *got, want)
	}
	if h := funnel.FingerprintValues(got.Payload); h != f.Hash {
		t.Errorf("hash of stored payload = %s, want %s (payload must round-trip exactly)", h, f.Hash)
	}
	// Replaced, not accumulated; a zero time is set.
	before := time.Now().Add(-time.Second)
	e.commit(func(b *state.Batch) {
		b.PutFingerprint("overplane", "4711", state.Fingerprint{Hash: "other", Source: state.FingerprintRead})
	})
	got, _ = e.s.Fingerprint("overplane", "4711")
	if got.Hash != "other" || got.Source != state.FingerprintRead || got.Payload != nil || got.At.Before(before) {
		t.Errorf("replaced fingerprint = %#v", got)
	}
	if n := e.counts()["fingerprints"]; n != 1 {
		t.Errorf("fingerprints = %d, want 1", n)
	}
}

func testIntents(t *testing.T, e *env) {
	in := []state.Intent{
		{ID: "id-2", System: "tribecrm", Entity: "Relationship_Organization_CommercialRelationship_Lead",
			Match: map[string]string{"Organization.Name": "Acme"}, Payload: map[string]any{"Organization": map[string]any{"Name": "Acme"}},
			Flow: "leads", At: t0},
		{ID: "id-1", System: "tribecrm", Entity: "x", Flow: "leads", At: t0},
		{ID: "id-1", System: "bluerocktel", Entity: "prospects", Match: map[string]string{"email": "a@b.c"}, Flow: "leads", At: t0},
	}
	if err := e.s.PutIntents(in); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	all, err := e.s.Intents("")
	if err != nil {
		t.Fatal(err)
	}
	want := []state.Intent{in[2], in[1], in[0]} // sorted by system, then id
	for i := range want {
		want[i].At = e.tm(want[i].At)
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("Intents after reopen:\n got %#v\nwant %#v", all, want)
	}
	tribe, _ := e.s.Intents("tribecrm")
	if len(tribe) != 2 || tribe[0].ID != "id-1" || tribe[1].ID != "id-2" {
		t.Fatalf("Intents(tribecrm) = %#v", tribe)
	}
	// Same system and id: replaced.
	if err := e.s.PutIntents([]state.Intent{{ID: "id-1", System: "tribecrm", Entity: "y", At: t0}}); err != nil {
		t.Fatal(err)
	}
	if tribe, _ = e.s.Intents("tribecrm"); len(tribe) != 2 || tribe[0].Entity != "y" {
		t.Fatalf("Intents(tribecrm) after re-put = %#v", tribe)
	}
	e.commit(func(b *state.Batch) { b.DeleteIntent("tribecrm", "id-1") })
	tribe, _ = e.s.Intents("tribecrm")
	if len(tribe) != 1 || tribe[0].ID != "id-2" {
		t.Fatalf("Intents(tribecrm) after DeleteIntent = %#v", tribe)
	}
	// All or nothing: one bad intent and none is written.
	err = e.s.PutIntents([]state.Intent{{ID: "id-9", System: "overplane"}, {ID: "", System: "tribecrm"}})
	if err == nil {
		t.Fatal("PutIntents with an empty id succeeded")
	}
	if got, _ := e.s.Intents("overplane"); len(got) != 0 {
		t.Fatalf("a failed PutIntents wrote %v", got)
	}
}

// testBatchIntents: Batch.PutIntent (the engine's write-ahead puts golden
// records and intents in one commit) and DeleteIntent, in batch order.
func testBatchIntents(t *testing.T, e *env) {
	put := func(id, entity string) state.Intent {
		return state.Intent{ID: id, System: "bluerocktel", Entity: entity, Flow: "f", At: t0,
			Match: map[string]string{"email": id + "@x.example"}, Payload: map[string]any{"name": id}}
	}
	e.commit(func(b *state.Batch) {
		b.PutRecord(sampleRecord("c-1"))
		b.PutIntent(put("c-1", "prospects"))
		b.PutIntent(put("c-2", "prospects"))
		b.DeleteIntent("bluerocktel", "c-2") // put then delete: gone
		b.DeleteIntent("bluerocktel", "c-3")
		b.PutIntent(put("c-3", "customers")) // delete then put: there
		b.PutIntent(put("c-1", "customers")) // put twice: the last
	})
	e.reopen()
	got, err := e.s.Intents("bluerocktel")
	if err != nil {
		t.Fatal(err)
	}
	want := []state.Intent{put("c-1", "customers"), put("c-3", "customers")}
	for i := range want {
		want[i].At = e.tm(want[i].At)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Intents after the batch:\n got %#v\nwant %#v", got, want)
	}
	if r, err := e.s.Record("c-1"); err != nil || r == nil {
		t.Fatalf("the record committed with its intent: %v %v", r, err)
	}
}

func testDeadLetters(t *testing.T, e *env) {
	d := state.DeadLetter{Flow: "leads", System: "bluerocktel", CanonicalID: "id-1", SourceSystem: "tribecrm", SourceEntity: "Lead",
		SourceID: "t-1", Op: "create", Error: "422: The email field must be a valid email address.", Payload: map[string]any{"email": "nope"},
		Pending: true, FirstAt: t0, LastAt: t0}
	e.commit(func(b *state.Batch) { b.PutDeadLetter(d) })
	key := state.DeadLetterKey(d)
	got, err := e.s.DeadLetter(key)
	if err != nil || got == nil {
		t.Fatalf("DeadLetter = %v, %v", got, err)
	}
	want := d
	want.Key, want.Attempts, want.FirstAt, want.LastAt = key, 1, e.tm(t0), e.tm(t0)
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("DeadLetter round trip:\n got %#v\nwant %#v", *got, want)
	}
	// Failing again: same entry, one more attempt, first time kept.
	again := d
	again.Error, again.FirstAt, again.LastAt, again.Pending = "422: still wrong", t0.Add(time.Hour), t0.Add(time.Hour), false
	e.commit(func(b *state.Batch) { b.PutDeadLetter(again) })
	e.commit(func(b *state.Batch) { b.PutDeadLetter(again) })
	got, _ = e.s.DeadLetter(key)
	if got.Attempts != 3 || !got.FirstAt.Equal(e.tm(t0)) || !got.LastAt.Equal(e.tm(t0.Add(time.Hour))) ||
		got.Error != "422: still wrong" || got.Pending {
		t.Fatalf("after two more failures: %#v", got)
	}
	// Without a canonical id the source names it; other flows are apart;
	// an empty payload stays an empty payload.
	src := state.DeadLetter{Flow: "leads", System: "overplane", SourceSystem: "tribecrm", SourceID: "t-9", Error: "400", Payload: map[string]any{}}
	other := state.DeadLetter{Flow: "customers", System: "overplane", CanonicalID: "id-7", Error: "400"}
	prefix := state.DeadLetter{Flow: "lead", System: "overplane", CanonicalID: "id-8", Error: "400"}
	e.commit(func(b *state.Batch) {
		b.PutDeadLetter(src)
		b.PutDeadLetter(other)
		b.PutDeadLetter(prefix)
	})
	leads, err := e.s.DeadLetters("leads")
	if err != nil {
		t.Fatal(err)
	}
	if k := keys(leads); k != "leads/bluerocktel/id-1,leads/overplane/tribecrm:t-9" {
		t.Fatalf("DeadLetters(leads) keys = %v", k)
	}
	if leads[1].Payload == nil || len(leads[1].Payload) != 0 || leads[0].Payload["email"] != "nope" {
		t.Errorf("payloads = %#v, %#v", leads[0].Payload, leads[1].Payload)
	}
	all, _ := e.s.DeadLetters("")
	if k := keys(all); k != "customers/overplane/id-7,lead/overplane/id-8,leads/bluerocktel/id-1,leads/overplane/tribecrm:t-9" {
		t.Fatalf("DeadLetters(\"\") keys = %v", k)
	}
	if all[0].Attempts != 1 || all[0].FirstAt.IsZero() || !all[0].FirstAt.Equal(all[0].LastAt) || all[0].Payload != nil {
		t.Errorf("new dead letter without times: %#v", all[0])
	}
	// Delete in a batch (replay succeeded) and drop (operator).
	e.commit(func(b *state.Batch) { b.DeleteDeadLetter(key) })
	if err := e.s.DropDeadLetter("customers/overplane/id-7"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"no/such/key", ""} {
		if err := e.s.DropDeadLetter(k); err != nil {
			t.Fatalf("DropDeadLetter(%q) = %v", k, err)
		}
	}
	all, _ = e.s.DeadLetters("")
	if k := keys(all); k != "lead/overplane/id-8,leads/overplane/tribecrm:t-9" {
		t.Fatalf("after delete and drop: %v", k)
	}
	if d, _ := e.s.DeadLetter(key); d != nil {
		t.Fatalf("deleted dead letter = %#v", d)
	}
	dropped, _ := e.s.DeadLetter("customers/overplane/id-7")
	if dropped == nil || !dropped.Dropped || dropped.Pending || dropped.Error != "400" {
		t.Fatalf("dropped entry = %#v; want kept as a dropped marker", dropped)
	}
	// Failing again after a drop: the entry is back, counting on.
	e.commit(func(b *state.Batch) { b.PutDeadLetter(other) })
	if back, _ := e.s.DeadLetter("customers/overplane/id-7"); back == nil || back.Dropped || back.Attempts != 2 {
		t.Fatalf("dead letter after a new failure = %#v", back)
	}
	if n := e.counts()["deadletters"]; n != 3 {
		t.Errorf("deadletters = %d, want 3 (the dropped marker counts)", n)
	}
}

func keys(ds []state.DeadLetter) string {
	k := make([]string, len(ds))
	for i, d := range ds {
		k[i] = d.Key
	}
	return strings.Join(k, ",")
}

func testRuns(t *testing.T, e *env) {
	const n = state.MaxRunsPerFlow + 25
	minute := func(j int) time.Time { return t0.Add(time.Duration(j) * time.Minute) }
	// Several commits, some with more than one run, as a daemon would.
	for i := 0; i < n; i += 5 {
		e.commit(func(b *state.Batch) {
			for j := i; j < i+5 && j < n; j++ {
				b.PutRun(state.Run{Flow: "leads", Mode: "sync", Started: minute(j), Finished: minute(j).Add(time.Second),
					Counts: map[string]map[string]int{"tribecrm": {"read": j}, "overplane": {"created": 1}}})
			}
		})
	}
	e.commit(func(b *state.Batch) {
		b.PutRun(state.Run{Flow: "customers", Mode: "backfill", Started: t0, Error: "auth: 401"})
	})
	runs, err := e.s.Runs("leads", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != state.MaxRunsPerFlow {
		t.Fatalf("kept %d runs of leads, want %d", len(runs), state.MaxRunsPerFlow)
	}
	if !runs[0].Started.Equal(minute(n-1)) || !runs[len(runs)-1].Started.Equal(minute(25)) {
		t.Fatalf("runs span %v .. %v; want newest first, oldest 25 dropped", runs[0].Started, runs[len(runs)-1].Started)
	}
	last, err := e.s.LastRun("leads")
	if err != nil || last == nil {
		t.Fatal(last, err)
	}
	want := state.Run{Flow: "leads", Mode: "sync", Started: minute(n - 1), Finished: e.tm(minute(n - 1).Add(time.Second)),
		Counts: map[string]map[string]int{"tribecrm": {"read": n - 1}, "overplane": {"created": 1}}}
	if !reflect.DeepEqual(*last, want) {
		t.Fatalf("LastRun:\n got %#v\nwant %#v", *last, want)
	}
	three, _ := e.s.Runs("leads", 3)
	if len(three) != 3 || !three[2].Started.Equal(minute(n-3)) {
		t.Fatalf("Runs(leads, 3) = %v", three)
	}
	cust, _ := e.s.LastRun("customers")
	if cust == nil || cust.Error != "auth: 401" || cust.Mode != "backfill" || !cust.Finished.IsZero() || cust.Counts != nil {
		t.Fatalf("LastRun(customers) = %#v", cust)
	}
	all, _ := e.s.Runs("", 2)
	if len(all) != 2 || all[0].Flow != "leads" || !all[1].Started.Equal(minute(n-2)) {
		t.Fatalf("Runs(\"\", 2) = %v", all)
	}
	if every, _ := e.s.Runs("", 0); len(every) != state.MaxRunsPerFlow+1 {
		t.Fatalf("Runs(\"\", 0) = %d runs, want %d", len(every), state.MaxRunsPerFlow+1)
	}
	// The same run committed twice (a retried commit) is one run.
	e.commit(func(b *state.Batch) { b.PutRun(state.Run{Flow: "customers", Mode: "sync", Started: t0}) })
	custRuns, _ := e.s.Runs("customers", 0)
	if len(custRuns) != 1 || custRuns[0].Error != "" || custRuns[0].Mode != "sync" {
		t.Fatalf("runs of customers after re-put = %v", custRuns)
	}
}

func testRunKeys(t *testing.T, e *env) {
	e.commit(func(b *state.Batch) {
		b.PutRun(state.Run{Flow: "a", Mode: "sync", Started: t0})
		b.PutRun(state.Run{Flow: "a", Mode: "sync", Started: t0.Add(time.Nanosecond)})
		b.PutRun(state.Run{Flow: "b", Mode: "sync", Started: t0})
	})
	runs, err := e.s.Runs("", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.Flow+"@"+r.Started.Format(time.RFC3339Nano))
	}
	want := []string{"a@2025-03-14T09:26:53.589793239Z", "a@2025-03-14T09:26:53.589793238Z", "b@2025-03-14T09:26:53.589793238Z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Runs = %v, want %v (newest first, then by flow)", got, want)
	}
}

func testReopen(t *testing.T, e *env) {
	r := sampleRecord("id-1")
	f := state.Fingerprint{Hash: "h", Payload: map[string]any{"a": "b"}, Entity: "prospect", At: t0, Source: state.FingerprintRead}
	dl := state.DeadLetter{Flow: "leads", System: "overplane", CanonicalID: "id-1", Error: "boom", FirstAt: t0, LastAt: t0}
	run := state.Run{Flow: "leads", Mode: "sync", Started: t0, Finished: t0.Add(time.Second)}
	var b state.Batch
	b.SetCursor("flow/leads/tribecrm", []byte("c1"))
	b.PutRecord(r)
	b.Link("bluerocktel", "77", "id-1")
	b.PutFingerprint("overplane", "4711", f)
	b.PutDeadLetter(dl)
	b.PutRun(run)
	if err := e.s.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if err := e.s.PutIntents([]state.Intent{{ID: "id-2", System: "overplane", At: t0}}); err != nil {
		t.Fatal(err)
	}
	before := e.counts()
	want := map[string]int{"cursors": 1, "records": 1, "links": 3, "fingerprints": 1, "intents": 1, "deadletters": 1, "runs": 1}
	if !reflect.DeepEqual(before, want) {
		t.Errorf("Stats = %v, want %v", before, want)
	}
	s := e.reopen()
	if c, _ := s.Cursor("flow/leads/tribecrm"); string(c) != "c1" {
		t.Errorf("cursor = %q", c)
	}
	if got, _ := s.Record("id-1"); !reflect.DeepEqual(got, roundTrip(t, r)) {
		t.Errorf("record = %#v", got)
	}
	if id, _ := s.Link("bluerocktel", "77"); id != "id-1" {
		t.Errorf("link = %q", id)
	}
	if id, _ := s.Link("overplane", "4711"); id != "id-1" {
		t.Errorf("record link = %q", id)
	}
	f.At = e.tm(f.At)
	if got, _ := s.Fingerprint("overplane", "4711"); got == nil || !reflect.DeepEqual(*got, f) {
		t.Errorf("fingerprint = %#v", got)
	}
	if got, _ := s.DeadLetter("leads/overplane/id-1"); got == nil || got.Error != "boom" || got.Attempts != 1 {
		t.Errorf("dead letter = %#v", got)
	}
	run.Finished = e.tm(run.Finished)
	if got, _ := s.LastRun("leads"); got == nil || !reflect.DeepEqual(*got, run) {
		t.Errorf("run = %#v", got)
	}
	if in, _ := s.Intents(""); len(in) != 1 || in[0].ID != "id-2" {
		t.Errorf("intents = %#v", in)
	}
	if after := e.counts(); !reflect.DeepEqual(after, before) {
		t.Errorf("stats %v, before close %v", after, before)
	}
}

// fillGood adds a valid page whose effects failed commits must not leave.
func fillGood(b *state.Batch) {
	b.SetCursor("flow/leads/tribecrm", []byte("advanced"))
	b.PutRecord(sampleRecord("good"))
	b.PutFingerprint("tribecrm", "t-1", state.Fingerprint{Hash: "h"})
	b.PutRun(state.Run{Flow: "leads", Started: t0})
	b.PutDeadLetter(state.DeadLetter{Flow: "leads", System: "overplane", CanonicalID: "good", Error: "e"})
	b.DeleteIntent("overplane", "seed")
}

// wantNothingOfGood checks that none of fillGood's changes is stored and
// the seed intent is still there.
func wantNothingOfGood(t *testing.T, e *env) {
	t.Helper()
	if c, _ := e.s.Cursor("flow/leads/tribecrm"); c != nil {
		t.Errorf("cursor advanced by a failed commit: %q", c)
	}
	if r, _ := e.s.Record("good"); r != nil {
		t.Error("record written by a failed commit")
	}
	if id, _ := e.s.Link("overplane", "4711"); id != "" {
		t.Error("link written by a failed commit")
	}
	if in, _ := e.s.Intents("overplane"); len(in) != 1 {
		t.Errorf("intent deleted by a failed commit: %v", in)
	}
	want := map[string]int{"cursors": 0, "records": 0, "links": 0, "fingerprints": 0, "intents": 1, "deadletters": 0, "runs": 0}
	if got := e.counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("stats after failed commit %v, want %v", got, want)
	}
}

func seedIntent(t *testing.T, e *env) {
	t.Helper()
	if err := e.s.PutIntents([]state.Intent{{ID: "seed", System: "overplane", At: t0}}); err != nil {
		t.Fatal(err)
	}
}

// A batch with one change that cannot be encoded or is invalid writes none
// of its changes, including the ones added before it.
func testInvalidBatch(t *testing.T, e *env) {
	seedIntent(t, e)
	bad := []struct {
		name string
		add  func(b *state.Batch)
		msg  string
	}{
		{"NaN field", func(b *state.Batch) {
			r := funnel.New("bad")
			r.Fields["score"] = math.NaN()
			b.PutRecord(r)
		}, "unsupported value"},
		{"channel in fingerprint payload", func(b *state.Batch) {
			b.PutFingerprint("overplane", "1", state.Fingerprint{Hash: "h", Payload: map[string]any{"c": make(chan int)}})
		}, "unsupported type"},
		{"empty link id", func(b *state.Batch) {
			r := funnel.New("x")
			r.Links["tribecrm"] = ""
			b.PutRecord(r)
		}, "empty id"},
		{"NUL in system", func(b *state.Batch) { b.Link("trib\x00ecrm", "1", "x") }, "NUL"},
		{"dead letter without ids", func(b *state.Batch) { b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "s"}) }, "canonical id"},
	}
	for _, tc := range bad {
		var b state.Batch
		fillGood(&b)
		tc.add(&b)
		b.Link("overplane", "after", "good") // added after the bad one
		err := e.s.Commit(&b)
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "nothing written") {
			t.Fatalf("%s: Commit = %v; want an error mentioning %q and that nothing was written", tc.name, err, tc.msg)
		}
		wantNothingOfGood(t, e)
	}
}

// A change the store itself refuses while applying the batch (a key too
// long for any engine's index) rolls back the changes already applied in
// that commit; the store goes on working.
func testCutCommit(t *testing.T, e *env) {
	seedIntent(t, e)
	raw := make([]byte, 40000)
	_, _ = rand.Read(raw)
	huge := hex.EncodeToString(raw) // incompressible, longer than bbolt's and PostgreSQL's key limits
	var b state.Batch
	fillGood(&b)
	b.SetCursor(huge, []byte("x"))
	b.Link("overplane", "after", "good")
	if err := e.s.Commit(&b); err == nil || !strings.Contains(err.Error(), "nothing written") {
		t.Fatalf("Commit with a %d-byte key = %v; want an error saying nothing was written", len(huge), err)
	}
	wantNothingOfGood(t, e)
	if id, _ := e.s.Link("overplane", "after"); id != "" {
		t.Error("link after the failure written")
	}
	b.Reset()
	fillGood(&b)
	if err := e.s.Commit(&b); err != nil {
		t.Fatalf("Commit after a failed one: %v", err)
	}
	if c, _ := e.s.Cursor("flow/leads/tribecrm"); string(c) != "advanced" {
		t.Fatalf("cursor = %q after a good commit", c)
	}
}

// Readers running while pages commit see whole pages: a cursor at page p
// means every record of page p is there.
func testConcurrentReads(t *testing.T, e *env) {
	const pages, perPage = 20, 30
	done := make(chan struct{})
	errs := make(chan error, 2)
	for g := 0; g < 2; g++ {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				c, err := e.s.Cursor("flow/crash/overplane")
				if err != nil {
					errs <- err
					return
				}
				if c == nil {
					continue
				}
				p, _ := strconv.Atoi(string(c))
				for i := 0; i < perPage; i++ {
					if r, err := e.s.Record(fmt.Sprintf("p%d-%d", p, i)); err != nil || r == nil {
						errs <- fmt.Errorf("cursor at page %d but record %d is %v, %v", p, i, r, err)
						return
					}
				}
			}
		}()
	}
	for p := 1; p <= pages; p++ {
		var b state.Batch
		for i := 0; i < perPage; i++ {
			id := fmt.Sprintf("p%d-%d", p, i)
			r := sampleRecord(id)
			r.Links = map[string]string{"overplane": "o-" + id}
			b.PutRecord(r)
		}
		b.SetCursor("flow/crash/overplane", []byte(strconv.Itoa(p)))
		if err := e.s.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for g := 0; g < 2; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// Times given in any zone come back in UTC, within the engine's resolution.
func testTimes(t *testing.T, e *env) {
	zone := time.FixedZone("CET", 3600)
	at := t0.In(zone)
	e.commit(func(b *state.Batch) {
		b.PutFingerprint("s", "1", state.Fingerprint{Hash: "h", At: at})
		b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "s", CanonicalID: "c", FirstAt: at, LastAt: at})
		b.PutRun(state.Run{Flow: "f", Started: at, Finished: at})
	})
	if err := e.s.PutIntents([]state.Intent{{ID: "c", System: "s", At: at}}); err != nil {
		t.Fatal(err)
	}
	f, _ := e.s.Fingerprint("s", "1")
	d, _ := e.s.DeadLetter("f/s/c")
	r, _ := e.s.LastRun("f")
	in, _ := e.s.Intents("s")
	if f == nil || d == nil || r == nil || len(in) != 1 {
		t.Fatalf("fingerprint %v, dead letter %v, run %v, intents %v", f, d, r, in)
	}
	for name, got := range map[string]time.Time{"fingerprint": f.At, "first": d.FirstAt, "last": d.LastAt,
		"finished": r.Finished, "intent": in[0].At} {
		if got.Location() != time.UTC || !got.Equal(e.tm(t0)) {
			t.Errorf("%s time = %v (%v), want %v", name, got, got.Location(), e.tm(t0))
		}
	}
	if !r.Started.Equal(t0) || r.Started.Location() != time.UTC {
		t.Errorf("run started = %v, want %v exactly (it is the run's key)", r.Started, t0)
	}
}
