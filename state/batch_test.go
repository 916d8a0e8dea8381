package state

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/crmsync/crmsync/funnel"
)

// A batch with one value that cannot be encoded writes none of its changes,
// including the ones added before it.
func TestCommitAllOrNothingOnEncodingFailure(t *testing.T) {
	t.Parallel()
	bad := []struct {
		name string
		add  func(b *Batch)
		msg  string
	}{
		{"NaN field", func(b *Batch) {
			r := funnel.New("bad")
			r.Fields["score"] = math.NaN()
			b.PutRecord(r)
		}, "unsupported value"},
		{"channel in fingerprint payload", func(b *Batch) {
			b.PutFingerprint("overplane", "1", Fingerprint{Hash: "h", Payload: map[string]any{"c": make(chan int)}})
		}, "unsupported type"},
		{"func in dead letter payload", func(b *Batch) {
			b.PutDeadLetter(DeadLetter{Flow: "f", System: "s", CanonicalID: "c", Payload: map[string]any{"f": func() {}}})
		}, "unsupported type"},
		{"empty link id", func(b *Batch) {
			r := funnel.New("x")
			r.Links["tribecrm"] = ""
			b.PutRecord(r)
		}, "empty id"},
		{"NUL in system", func(b *Batch) { b.Link("trib\x00ecrm", "1", "x") }, "NUL"},
		{"dead letter without ids", func(b *Batch) { b.PutDeadLetter(DeadLetter{Flow: "f", System: "s"}) }, "canonical id"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t)
			before, _ := s.Stats()
			var b Batch
			b.SetCursor("flow/leads/tribecrm", []byte("advanced"))
			b.PutRecord(sampleRecord("good"))
			b.PutFingerprint("tribecrm", "t-1", Fingerprint{Hash: "h"})
			b.PutRun(Run{Flow: "leads", Started: t0})
			tc.add(&b)
			b.Link("overplane", "after", "good") // added after the bad one
			if b.Empty() {
				t.Fatal("batch with changes reports Empty")
			}
			err := s.Commit(&b)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "nothing written") {
				t.Fatalf("Commit = %v; want an error mentioning %q and that nothing was written", err, tc.msg)
			}
			after, _ := s.Stats()
			if !reflect.DeepEqual(after, before) {
				t.Fatalf("stats after failed commit %v, before %v", after, before)
			}
			if c, _ := s.Cursor("flow/leads/tribecrm"); c != nil {
				t.Fatalf("cursor advanced by a failed commit: %q", c)
			}
		})
	}
}

// A failure inside the transaction (here: a stored record that no longer
// decodes, found while PutRecord looks for stale links) rolls back the
// changes already applied in that transaction.
func TestCommitAllOrNothingInsideTransaction(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRecords).Put([]byte("broken"), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.SetCursor("flow/leads/tribecrm", []byte("advanced"))
	b.PutRecord(sampleRecord("good"))
	b.PutRecord(funnel.New("broken"))
	err := s.Commit(&b)
	if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("Commit = %v; want a corruption error naming the record", err)
	}
	if c, _ := s.Cursor("flow/leads/tribecrm"); c != nil {
		t.Fatalf("cursor written by a rolled-back commit: %q", c)
	}
	if r, _ := s.Record("good"); r != nil {
		t.Fatal("record written by a rolled-back commit")
	}
	if id, _ := s.Link("overplane", "4711"); id != "" {
		t.Fatal("link written by a rolled-back commit")
	}
	if _, err := s.Record("broken"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), s.Path()) {
		t.Fatalf("Record(broken) = %v; want ErrCorrupt naming the file", err)
	}
}

// Changes apply in the order they were added.
func TestBatchOrderAndReset(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	var b Batch
	b.Link("overplane", "1", "a")
	b.Unlink("overplane", "1")
	b.Link("overplane", "2", "a")
	b.Link("overplane", "2", "b")
	b.SetCursor("k", []byte("1"))
	b.SetCursor("k", []byte("2"))
	b.DeleteDeadLetter("f/s/x")
	b.PutDeadLetter(DeadLetter{Flow: "f", System: "s", CanonicalID: "x", Error: "e"})
	if b.Len() != 8 {
		t.Fatalf("Len = %d", b.Len())
	}
	if err := s.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.Link("overplane", "1"); id != "" {
		t.Errorf("overplane/1 = %q, want unlinked", id)
	}
	if id, _ := s.Link("overplane", "2"); id != "b" {
		t.Errorf("overplane/2 = %q, want b", id)
	}
	if c, _ := s.Cursor("k"); string(c) != "2" {
		t.Errorf("cursor = %q, want 2", c)
	}
	if d, _ := s.DeadLetter("f/s/x"); d == nil {
		t.Error("dead letter deleted before it was put")
	}
	b.Reset()
	if !b.Empty() || b.Len() != 0 {
		t.Fatal("Reset left changes")
	}
	b.PutDeadLetter(DeadLetter{Flow: "f", System: "s"}) // invalid
	b.Reset()
	if !b.Empty() {
		t.Fatal("Reset kept the error")
	}
}

// The engine's write-ahead: the golden record and the intents of its
// creates land in one commit, or, when one of them is invalid, none does
// (so an intent never names a record that is not there).
func TestWriteAheadRecordAndIntentsTogether(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rec := sampleRecord("c1")
	in := Intent{ID: "c1", System: "bluerocktel", Entity: "prospects", Match: map[string]string{"email": "a@b.example"},
		Payload: map[string]any{"name": "Acme"}, Flow: "leads", At: t0}

	var bad Batch
	bad.PutRecord(rec)
	bad.PutIntent(in)
	bad.PutIntent(Intent{ID: "c1", System: "bad\x00system"})
	if err := s.Commit(&bad); err == nil {
		t.Fatal("a write-ahead with an invalid intent committed")
	}
	if r, _ := s.Record("c1"); r != nil {
		t.Error("the record of a failed write-ahead was written")
	}
	if ins, _ := s.Intents(""); len(ins) != 0 {
		t.Errorf("a failed write-ahead wrote %d intents", len(ins))
	}

	var b Batch
	b.PutRecord(rec)
	b.PutIntent(in)
	b.PutIntent(Intent{ID: "c1", System: "overplane", At: t0})
	if err := s.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Record("c1"); err != nil || r == nil {
		t.Fatalf("record after the write-ahead = %v, %v", r, err)
	}
	ins, err := s.Intents("")
	if err != nil || len(ins) != 2 || !reflect.DeepEqual(ins[0], in) || ins[1].System != "overplane" {
		t.Fatalf("intents after the write-ahead = %#v, %v", ins, err)
	}
}
