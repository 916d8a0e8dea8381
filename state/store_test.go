package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

func openT(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	return openT(t, path), path
}

func commit(t *testing.T, s *Store, fill func(b *Batch)) {
	t.Helper()
	var b Batch
	fill(&b)
	if err := s.Commit(&b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func sampleRecord(id string) *funnel.Record {
	r := funnel.New(id)
	_ = r.Set(funnel.FieldKind, "organization")
	_ = r.Set(funnel.FieldStage, "lead")
	_ = r.Set(funnel.FieldName, "Acme B.V.")
	_ = r.Set(funnel.FieldActive, true)
	_ = r.Set(funnel.FieldUpdatedAt, t0)
	r.Links["tribecrm"] = "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e"
	r.Links["overplane"] = "4711"
	r.Sources = map[string]funnel.Source{
		funnel.FieldName:  {System: "tribecrm", At: t0},
		funnel.FieldStage: {System: "overplane", At: t0.Add(-time.Hour)},
	}
	return r
}

func TestOpenCreatesFileAndDirectories(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "crmsync.db")
	s := openT(t, path)
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %v, want 0600", perm)
	}
	stats, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"meta": 2, "cursors": 0, "records": 0, "links": 0, "fingerprints": 0,
		"intents": 0, "deadletters": 0, "runs": 0}
	if !reflect.DeepEqual(stats, want) {
		t.Errorf("Stats() = %v, want %v", stats, want)
	}
}

func TestEmptyStoreReadsNothing(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	if c, err := s.Cursor("flow/a/tribecrm"); err != nil || c != nil {
		t.Errorf("Cursor = %q, %v; want nil, nil", c, err)
	}
	if id, err := s.Link("tribecrm", "x"); err != nil || id != "" {
		t.Errorf("Link = %q, %v; want empty", id, err)
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
	if err := s.Commit(&Batch{}); err != nil {
		t.Errorf("Commit(empty) = %v", err)
	}
	if err := s.Commit(nil); err != nil {
		t.Errorf("Commit(nil) = %v", err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	c := []byte(`{"ts":"2025-03-14T09:26:53Z","id":"42"}`)
	commit(t, s, func(b *Batch) {
		b.SetCursor("flow/leads/tribecrm", c)
		b.SetCursor("backfill/leads", []byte{})
	})
	c[0] = 'X' // the batch copied it
	got, err := s.Cursor("flow/leads/tribecrm")
	if err != nil || string(got) != `{"ts":"2025-03-14T09:26:53Z","id":"42"}` {
		t.Fatalf("Cursor = %q, %v", got, err)
	}
	empty, err := s.Cursor("backfill/leads")
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("empty cursor = %#v, %v; want non-nil empty", empty, err)
	}
	commit(t, s, func(b *Batch) { b.SetCursor("flow/leads/tribecrm", nil) })
	if got, _ := s.Cursor("flow/leads/tribecrm"); got != nil {
		t.Fatalf("cursor after SetCursor(nil) = %q, want nil", got)
	}
}

func TestRecordRoundTripAndLinks(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	r := sampleRecord("c0ffee00-0000-4000-8000-000000000001")
	commit(t, s, func(b *Batch) { b.PutRecord(r) })
	r.Fields[funnel.FieldName] = "changed after PutRecord" // the batch encoded it already

	got, err := s.Record(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleRecord(r.ID)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Record round trip:\n got %#v\nwant %#v", got, want)
	}
	for sys, ext := range want.Links {
		if id, err := s.Link(sys, ext); err != nil || id != r.ID {
			t.Errorf("Link(%s, %s) = %q, %v; want %q", sys, ext, id, err, r.ID)
		}
	}

	// The record moves to another overplane id and loses its tribecrm link:
	// the old links go, the new one comes.
	r2 := sampleRecord(r.ID)
	delete(r2.Links, "tribecrm")
	r2.Links["overplane"] = "4712"
	commit(t, s, func(b *Batch) { b.PutRecord(r2) })
	for _, c := range []struct{ sys, ext, want string }{
		{"tribecrm", "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e", ""},
		{"overplane", "4711", ""},
		{"overplane", "4712", r.ID},
	} {
		if id, _ := s.Link(c.sys, c.ext); id != c.want {
			t.Errorf("after relink: Link(%s, %s) = %q, want %q", c.sys, c.ext, id, c.want)
		}
	}
}

func TestPutRecordKeepsLinkTakenOverByAnotherRecord(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	a := funnel.New("a")
	a.Links["overplane"] = "1"
	commit(t, s, func(b *Batch) { b.PutRecord(a) })
	// Record b takes over overplane/1 (a merge), then a is rewritten without it.
	bRec := funnel.New("b")
	bRec.Links["overplane"] = "1"
	a2 := funnel.New("a")
	commit(t, s, func(b *Batch) {
		b.PutRecord(bRec)
		b.PutRecord(a2)
	})
	if id, _ := s.Link("overplane", "1"); id != "b" {
		t.Fatalf("Link(overplane, 1) = %q, want b (a must not remove b's link)", id)
	}
}

func TestLinkUnlink(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	commit(t, s, func(b *Batch) {
		b.Link("bluerocktel", "p-17", "id-1")
		b.Link("bluerocktel", "p-18", "id-2")
		b.Unlink("bluerocktel", "p-18")
		b.Unlink("bluerocktel", "never-linked")
	})
	if id, _ := s.Link("bluerocktel", "p-17"); id != "id-1" {
		t.Errorf("Link p-17 = %q", id)
	}
	if id, _ := s.Link("bluerocktel", "p-18"); id != "" {
		t.Errorf("Link p-18 after Unlink = %q, want empty", id)
	}
	// Keys are system-scoped: the same external id elsewhere is another link.
	if id, _ := s.Link("overplane", "p-17"); id != "" {
		t.Errorf("Link overplane/p-17 = %q, want empty", id)
	}
}

func TestFingerprintRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	payload := map[string]any{"name": "Acme", "id": float64(4711), "active": true,
		"address": map[string]any{"city": "Utrecht"}, "tags": []any{"a", "b"}, "none": nil}
	f := Fingerprint{Hash: funnel.FingerprintValues(payload), Payload: payload, Entity: "prospect", At: t0, Source: FingerprintWrite}
	commit(t, s, func(b *Batch) { b.PutFingerprint("overplane", "4711", f) })
	got, err := s.Fingerprint("overplane", "4711")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, f) {
		t.Fatalf("Fingerprint round trip:\n got %#v\nwant %#v", *got, f)
	}
	if h := funnel.FingerprintValues(got.Payload); h != f.Hash {
		t.Errorf("hash of stored payload = %s, want %s (payload must round-trip exactly)", h, f.Hash)
	}
	// Replaced, not accumulated.
	f2 := Fingerprint{Hash: "other", Source: FingerprintRead}
	commit(t, s, func(b *Batch) { b.PutFingerprint("overplane", "4711", f2) })
	got, _ = s.Fingerprint("overplane", "4711")
	if got.Hash != "other" || got.Source != FingerprintRead || got.Payload != nil || got.At.IsZero() {
		t.Errorf("replaced fingerprint = %#v", got)
	}
}

func TestIntentsRoundTripAndSurviveReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "crmsync.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := []Intent{
		{ID: "id-2", System: "tribecrm", Entity: "Relationship_Organization_CommercialRelationship_Lead",
			Match: map[string]string{"Organization.Name": "Acme"}, Payload: map[string]any{"Organization": map[string]any{"Name": "Acme"}},
			Flow: "leads", At: t0},
		{ID: "id-1", System: "tribecrm", Entity: "x", Flow: "leads", At: t0},
		{ID: "id-1", System: "bluerocktel", Entity: "prospects", Match: map[string]string{"email": "a@b.c"}, Flow: "leads", At: t0},
	}
	if err := s.PutIntents(in); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path)
	all, err := s.Intents("")
	if err != nil {
		t.Fatal(err)
	}
	want := []Intent{in[2], in[1], in[0]} // sorted by system, then id
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("Intents after reopen:\n got %#v\nwant %#v", all, want)
	}
	tribe, _ := s.Intents("tribecrm")
	if len(tribe) != 2 || tribe[0].ID != "id-1" || tribe[1].ID != "id-2" {
		t.Fatalf("Intents(tribecrm) = %#v", tribe)
	}
	commit(t, s, func(b *Batch) { b.DeleteIntent("tribecrm", "id-1") })
	tribe, _ = s.Intents("tribecrm")
	if len(tribe) != 1 || tribe[0].ID != "id-2" {
		t.Fatalf("Intents(tribecrm) after DeleteIntent = %#v", tribe)
	}
	if err := s.PutIntents([]Intent{{ID: "", System: "tribecrm"}}); err == nil {
		t.Fatal("PutIntents with an empty id succeeded")
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	d := DeadLetter{Flow: "leads", System: "bluerocktel", CanonicalID: "id-1", SourceSystem: "tribecrm", SourceID: "t-1",
		Op: "create", Error: "422: The email field must be a valid email address.", Payload: map[string]any{"email": "nope"},
		FirstAt: t0, LastAt: t0}
	commit(t, s, func(b *Batch) { b.PutDeadLetter(d) })
	key := DeadLetterKey(d)
	if key != "leads/bluerocktel/id-1" {
		t.Fatalf("DeadLetterKey = %q", key)
	}
	got, err := s.DeadLetter(key)
	if err != nil || got == nil {
		t.Fatalf("DeadLetter = %v, %v", got, err)
	}
	want := d
	want.Key, want.Attempts = key, 1
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("DeadLetter round trip:\n got %#v\nwant %#v", *got, want)
	}

	// Failing again: same entry, one more attempt, first time kept.
	again := d
	again.Error, again.FirstAt, again.LastAt = "422: still wrong", t0.Add(time.Hour), t0.Add(time.Hour)
	commit(t, s, func(b *Batch) { b.PutDeadLetter(again) })
	commit(t, s, func(b *Batch) { b.PutDeadLetter(again) })
	got, _ = s.DeadLetter(key)
	if got.Attempts != 3 || !got.FirstAt.Equal(t0) || !got.LastAt.Equal(t0.Add(time.Hour)) || got.Error != "422: still wrong" {
		t.Fatalf("after two more failures: %#v", got)
	}

	// Without a canonical id the source names it; other flows are apart.
	src := DeadLetter{Flow: "leads", System: "overplane", SourceSystem: "tribecrm", SourceID: "t-9", Error: "400"}
	other := DeadLetter{Flow: "customers", System: "overplane", CanonicalID: "id-7", Error: "400"}
	commit(t, s, func(b *Batch) {
		b.PutDeadLetter(src)
		b.PutDeadLetter(other)
	})
	leads, err := s.DeadLetters("leads")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, d := range leads {
		keys = append(keys, d.Key)
	}
	if strings.Join(keys, ",") != "leads/bluerocktel/id-1,leads/overplane/tribecrm:t-9" {
		t.Fatalf("DeadLetters(leads) keys = %v", keys)
	}
	all, _ := s.DeadLetters("")
	if len(all) != 3 || all[0].Key != "customers/overplane/id-7" {
		t.Fatalf("DeadLetters(\"\") = %v", all)
	}
	if all[0].Attempts != 1 || all[0].FirstAt.IsZero() || !all[0].FirstAt.Equal(all[0].LastAt) {
		t.Errorf("new dead letter without times: %#v", all[0])
	}

	// Delete in a batch (replay succeeded) and drop (operator).
	commit(t, s, func(b *Batch) { b.DeleteDeadLetter(key) })
	if err := s.DropDeadLetter("customers/overplane/id-7"); err != nil {
		t.Fatal(err)
	}
	if err := s.DropDeadLetter("no/such/key"); err != nil {
		t.Fatalf("DropDeadLetter(missing) = %v", err)
	}
	all, _ = s.DeadLetters("")
	if len(all) != 1 || all[0].Key != "leads/overplane/tribecrm:t-9" {
		t.Fatalf("after delete and drop: %v", all)
	}
}

func TestRunsHistoryCappedNewestFirst(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const n = MaxRunsPerFlow + 25
	// Several commits, some with more than one run, as a daemon would.
	for i := 0; i < n; i += 5 {
		commit(t, s, func(b *Batch) {
			for j := i; j < i+5 && j < n; j++ {
				b.PutRun(Run{Flow: "leads", Mode: "sync", Started: t0.Add(time.Duration(j) * time.Minute),
					Finished: t0.Add(time.Duration(j)*time.Minute + time.Second),
					Counts:   map[string]map[string]int{"tribecrm": {"read": j}, "overplane": {"created": 1}}})
			}
		})
	}
	commit(t, s, func(b *Batch) {
		b.PutRun(Run{Flow: "customers", Mode: "backfill", Started: t0, Error: "auth: 401"})
	})
	runs, err := s.Runs("leads", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != MaxRunsPerFlow {
		t.Fatalf("kept %d runs of leads, want %d", len(runs), MaxRunsPerFlow)
	}
	if !runs[0].Started.Equal(t0.Add((n-1)*time.Minute)) || !runs[len(runs)-1].Started.Equal(t0.Add(25*time.Minute)) {
		t.Fatalf("runs span %v .. %v; want newest first, oldest 25 dropped", runs[0].Started, runs[len(runs)-1].Started)
	}
	last, err := s.LastRun("leads")
	if err != nil || last == nil {
		t.Fatal(last, err)
	}
	want := Run{Flow: "leads", Mode: "sync", Started: t0.Add((n - 1) * time.Minute), Finished: t0.Add((n-1)*time.Minute + time.Second),
		Counts: map[string]map[string]int{"tribecrm": {"read": n - 1}, "overplane": {"created": 1}}}
	if !reflect.DeepEqual(*last, want) {
		t.Fatalf("LastRun:\n got %#v\nwant %#v", *last, want)
	}
	three, _ := s.Runs("leads", 3)
	if len(three) != 3 || !three[2].Started.Equal(t0.Add((n-3)*time.Minute)) {
		t.Fatalf("Runs(leads, 3) = %v", three)
	}
	cust, _ := s.LastRun("customers")
	if cust == nil || cust.Error != "auth: 401" || cust.Mode != "backfill" {
		t.Fatalf("LastRun(customers) = %#v", cust)
	}
	all, _ := s.Runs("", 2)
	if len(all) != 2 || all[0].Flow != "leads" {
		t.Fatalf("Runs(\"\", 2) = %v", all)
	}
	// The same run committed twice (a retried commit) is one run.
	commit(t, s, func(b *Batch) { b.PutRun(Run{Flow: "customers", Mode: "sync", Started: t0, Error: ""}) })
	custRuns, _ := s.Runs("customers", 0)
	if len(custRuns) != 1 || custRuns[0].Error != "" {
		t.Fatalf("runs of customers after re-put = %v", custRuns)
	}
}

func TestReopenSeesEverything(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := sampleRecord("id-1")
	f := Fingerprint{Hash: "h", Payload: map[string]any{"a": "b"}, Entity: "prospect", At: t0, Source: FingerprintRead}
	dl := DeadLetter{Flow: "leads", System: "overplane", CanonicalID: "id-1", Error: "boom", FirstAt: t0, LastAt: t0}
	run := Run{Flow: "leads", Mode: "sync", Started: t0, Finished: t0.Add(time.Second)}
	var b Batch
	b.SetCursor("flow/leads/tribecrm", []byte("c1"))
	b.PutRecord(r)
	b.Link("bluerocktel", "77", "id-1")
	b.PutFingerprint("overplane", "4711", f)
	b.PutDeadLetter(dl)
	b.PutRun(run)
	if err := s.Commit(&b); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}

	for _, ro := range []bool{false, true} {
		s, err := Open(path, Options{ReadOnly: ro})
		if err != nil {
			t.Fatalf("reopen (read-only %v): %v", ro, err)
		}
		if c, _ := s.Cursor("flow/leads/tribecrm"); string(c) != "c1" {
			t.Errorf("cursor = %q", c)
		}
		if got, _ := s.Record("id-1"); !reflect.DeepEqual(got, r) {
			t.Errorf("record = %#v", got)
		}
		if id, _ := s.Link("bluerocktel", "77"); id != "id-1" {
			t.Errorf("link = %q", id)
		}
		if id, _ := s.Link("overplane", "4711"); id != "id-1" {
			t.Errorf("record link = %q", id)
		}
		if got, _ := s.Fingerprint("overplane", "4711"); got == nil || !reflect.DeepEqual(*got, f) {
			t.Errorf("fingerprint = %#v", got)
		}
		if got, _ := s.DeadLetter("leads/overplane/id-1"); got == nil || got.Error != "boom" || got.Attempts != 1 {
			t.Errorf("dead letter = %#v", got)
		}
		if got, _ := s.LastRun("leads"); got == nil || !reflect.DeepEqual(*got, run) {
			t.Errorf("run = %#v", got)
		}
		if after, _ := s.Stats(); !reflect.DeepEqual(after, before) {
			t.Errorf("stats %v, before close %v", after, before)
		}
		if ro {
			var b Batch
			b.SetCursor("x", []byte("y"))
			if err := s.Commit(&b); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Commit on read-only store = %v, want ErrReadOnly", err)
			}
			if err := s.PutIntents([]Intent{{ID: "a", System: "b"}}); !errors.Is(err, ErrReadOnly) {
				t.Errorf("PutIntents on read-only store = %v, want ErrReadOnly", err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadOnlyMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing.db")
	_, err := Open(path, Options{ReadOnly: true})
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open read-only missing file = %v; want a not-exist error naming the path", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Fatal("read-only Open created the file")
	}
}

// Readers running while pages commit see whole pages: a cursor at page p
// means every record of page p is there.
func TestConcurrentReadsSeeWholeCommits(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	const pages = 30
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
				c, err := s.Cursor("flow/crash/overplane")
				if err != nil {
					errs <- err
					return
				}
				if c == nil {
					continue
				}
				p, _ := strconv.Atoi(string(c))
				for i := 0; i < crashPerPage; i++ {
					if r, err := s.Record(fmt.Sprintf("p%d-%d", p, i)); err != nil || r == nil {
						errs <- fmt.Errorf("cursor at page %d but record %d is %v, %v", p, i, r, err)
						return
					}
				}
			}
		}()
	}
	for p := 1; p <= pages; p++ {
		var b Batch
		crashPage(&b, p)
		if err := s.Commit(&b); err != nil {
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
