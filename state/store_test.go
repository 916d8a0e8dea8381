package state

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
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
