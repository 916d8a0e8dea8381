package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/crmsync/crmsync/funnel"
)

// packedStore fills a store with n realistic records, each with a source
// fingerprint and a create intent, in commits of 50 (a dictionary is made
// once a bucket reaches dictMinValues values).
func packedStore(t *testing.T, path string, n int) (recs []*funnel.Record, fps []Fingerprint, ins []Intent) {
	t.Helper()
	s := openT(t, path)
	for start := 0; start < n; start += 50 {
		var b Batch
		for i := start; i < min(start+50, n); i++ {
			g := realisticGolden(fmt.Sprintf("%08x-3b4d-4c5e-8f90-%012x", i*2654435761%(1<<32), i), i, t0)
			g.Links["tribecrm"] = fmt.Sprintf("%08x-e313-4fb2-ad2e-%012x", i*40503%(1<<32), i)
			fp := realisticSourceFingerprint(g, t0)
			in := Intent{ID: g.ID, System: "bluerocktel", Entity: "customers", Match: map[string]string{"email": g.Str(funnel.FieldEmail)},
				Payload: fp.Payload, Flow: "f", At: t0}
			b.PutRecord(g)
			b.PutFingerprint("tribecrm", g.Links["tribecrm"], fp)
			b.PutIntent(in)
			recs, fps, ins = append(recs, g), append(fps, fp), append(ins, in)
		}
		if err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return recs, fps, ins
}

func checkPackedContents(t *testing.T, s *Store, recs []*funnel.Record, fps []Fingerprint, ins []Intent) {
	t.Helper()
	for i, want := range recs {
		got, err := s.Record(want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d = %#v, %v; want %#v", i, got, err, want)
		}
		f, err := s.Fingerprint("tribecrm", want.Links["tribecrm"])
		if err != nil || f == nil || !reflect.DeepEqual(*f, fps[i]) {
			t.Fatalf("fingerprint %d = %#v, %v; want %#v", i, f, err, fps[i])
		}
	}
	got, err := s.Intents("bluerocktel")
	if err != nil || len(got) != len(ins) {
		t.Fatalf("intents: %d, %v; want %d", len(got), err, len(ins))
	}
	byID := map[string]Intent{}
	for _, in := range got {
		byID[in.ID] = in
	}
	for _, want := range ins {
		if !reflect.DeepEqual(byID[want.ID], want) {
			t.Fatalf("intent %s = %#v, want %#v", want.ID, byID[want.ID], want)
		}
	}
}

// Once a bucket has a dictionary its values are stored compressed, much
// shorter than their JSON, and everything reads back exactly: in the
// store that wrote them, after a reopen (nothing cached), read-only, after
// a copy into another store and after compaction.
func TestPackedValuesReadBackExactly(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	recs, fps, ins := packedStore(t, path, 600)

	s := openT(t, path)
	var packed, total, packedLen, jsonLen int
	_ = s.db.View(func(tx *bbolt.Tx) error {
		for _, g := range recs {
			v := tx.Bucket(bucketRecords).Get([]byte(g.ID))
			total++
			if v[0] == packS2 {
				packed++
				j, _ := encodeRecord(g)
				packedLen, jsonLen = packedLen+len(v), jsonLen+len(j)
			}
		}
		return nil
	})
	if packed < total-dictMinValues {
		t.Errorf("%d of %d records stored compressed, want all but the first %d at most", packed, total, dictMinValues)
	}
	if packedLen*2 > jsonLen {
		t.Errorf("compressed records take %d bytes, their JSON %d: want under half", packedLen, jsonLen)
	}
	checkPackedContents(t, s, recs, fps, ins)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	checkPackedContents(t, ro, recs, fps, ins)
	cp := openT(t, filepath.Join(t.TempDir(), "copy.db"))
	if _, err := Copy(context.Background(), ro, cp, 0, nil); err != nil {
		t.Fatal(err)
	}
	checkPackedContents(t, cp, recs, fps, ins)
	if _, err := CompareExports(context.Background(), ro, cp, CompareOptions{}); err != nil {
		t.Errorf("copy differs: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(context.Background(), path, Options{}); err != nil {
		t.Fatal(err)
	}
	checkPackedContents(t, openT(t, path), recs, fps, ins)
}

// Records rewritten in a bucket that has a dictionary keep their links
// right: PutRecord reads the stored (compressed) record to drop the links
// it no longer has.
func TestPackedRecordRewriteDropsLinks(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	recs, _, _ := packedStore(t, path, 600)
	s := openT(t, path)
	r := recs[550].Clone()
	old := r.Links["tribecrm"]
	r.Links["tribecrm"] = "9d6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e"
	commit(t, s, func(b *Batch) { b.PutRecord(r) })
	if id, err := s.Link("tribecrm", old); err != nil || id != "" {
		t.Errorf("dropped link = %q, %v", id, err)
	}
	if id, err := s.Link("tribecrm", r.Links["tribecrm"]); err != nil || id != r.ID {
		t.Errorf("new link = %q, %v", id, err)
	}
	if got, err := s.Record(r.ID); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("rewritten record = %#v, %v", got, err)
	}
}

// A JSON value (written by an older version) reads beside compressed ones;
// a compressed value whose dictionary is gone is reported as corruption.
func TestPackedAndJSONValuesTogether(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	recs, _, _ := packedStore(t, path, 600)
	s := openT(t, path)
	legacy := recs[599].Clone()
	legacy.Fields[funnel.FieldName] = "Written By An Older Version"
	j, err := encodeRecord(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketRecords).Put([]byte(legacy.ID), j) }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Record(legacy.ID); err != nil || !reflect.DeepEqual(got, legacy) {
		t.Errorf("JSON record beside compressed ones = %#v, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Delete(dictMetaKey(bucketRecords, dictFirstID))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, path)
	_, err = s.Record(recs[550].ID)
	if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte("dictionary 1 of records")) {
		t.Errorf("record whose dictionary is gone: %v, want ErrCorrupt naming the dictionary", err)
	}
}

// Link values: canonical UUIDs stored in 17 bytes, anything else exactly
// as given, and the two marker bytes never confused with an id.
func TestLinkValues(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ids := []string{"6f1c2a8e-3b4d-4c5e-8f90-a1b2c3d4e5f6", "6F1C2A8E-3B4D-4C5E-8F90-A1B2C3D4E5F6", "4711",
		"6f1c2a8e-3b4d-4c5e-8f90-a1b2c3d4e5fg", "\x01abcdefghijklmnop", "\x02x", "\x01"}
	commit(t, s, func(b *Batch) {
		for i, id := range ids {
			b.Link("sys", fmt.Sprint(i), id)
		}
	})
	all, err := s.Links("sys")
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if got, err := s.Link("sys", fmt.Sprint(i)); err != nil || got != id || all[fmt.Sprint(i)] != id {
			t.Errorf("link %d = %q (%q in Links), %v; want %q", i, got, all[fmt.Sprint(i)], err, id)
		}
	}
	var stored []byte
	_ = s.db.View(func(tx *bbolt.Tx) error {
		stored = bytes.Clone(tx.Bucket(bucketLinks).Get(pairKey("sys", "0")))
		return nil
	})
	if len(stored) != 17 {
		t.Errorf("a UUID link takes %d bytes, want 17", len(stored))
	}
	// A value written before schema 3 is the id itself.
	if got := decodeLinkValue([]byte("6f1c2a8e-3b4d-4c5e-8f90-a1b2c3d4e5f6")); got != ids[0] {
		t.Errorf("old-format link value reads as %q", got)
	}
}
