package state

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/crmsync/crmsync/funnel"
)

var writeV1File = flag.String("write-v1-file", "", "write the schema-version-1 contents to this path (run on a version-1 build)")

// v1Contents is what testdata/schema-v1.db holds: it was written by
// schema version 1 (crmsync main at 94997bc) with writeV1Contents, through
// the public API, and is never regenerated.
type v1Contents struct {
	cursor  []byte
	records []*funnel.Record
	fps     map[string]Fingerprint // key: system "/" external id
	intent  Intent
	dl      DeadLetter
	run     Run
}

func v1FileContents() v1Contents {
	at := time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)
	mixed := sampleRecord("6f1c2a8e-3b4d-4c5e-8f90-a1b2c3d4e5f6")
	one := realisticGolden("00185933-765e-44a2-834c-adb9afa63c6a", 1, at)
	one.Links = map[string]string{"tribecrm": "32e7e318-205c-4322-90ec-cfde336c3580", "bluerocktel": "customers:4"}
	gone := realisticGolden("7a2b3c4d-0000-4c5e-8f90-a1b2c3d4e5f6", 2, at)
	gone.Links = map[string]string{"tribecrm": "4b5c6d7e-e313-4fb2-ad2e-d07e864d5c41"}
	gone.Gone = map[string]time.Time{"overplane": at.Add(time.Hour)}
	delete(gone.Fields, funnel.FieldWebsite) // emptied by the source: its source stays
	src := realisticSourceFingerprint(one, at)
	_, br := realisticTargetPayloads(one)
	return v1Contents{
		cursor:  []byte(`{"v":1,"pos":{"t":"2026-01-02T00:20:00.000Z"}}`),
		records: []*funnel.Record{mixed, one, gone},
		fps: map[string]Fingerprint{
			"tribecrm/32e7e318-205c-4322-90ec-cfde336c3580": src,
			"bluerocktel/customers:4":                       {Hash: funnel.FingerprintValues(br), Payload: br, Entity: "customers", At: at, Source: FingerprintWrite},
		},
		intent: Intent{ID: gone.ID, System: "bluerocktel", Entity: "customers", Match: map[string]string{"email": gone.Str(funnel.FieldEmail)},
			Payload: br, Flow: "tribecrm-to-others", At: at},
		dl: DeadLetter{Key: "tribecrm-to-others/bluerocktel/" + mixed.ID, Flow: "tribecrm-to-others", System: "bluerocktel", CanonicalID: mixed.ID,
			SourceSystem: "tribecrm", SourceEntity: "Relationship_Organization_CommercialRelationship_Lead", SourceID: "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e",
			Op: "create", Pending: true, Error: "503 Service Unavailable", Payload: map[string]any{"name": "Acme B.V."}, Attempts: 1, FirstAt: at, LastAt: at},
		run: Run{Flow: "tribecrm-to-others", Mode: "sync", Started: at, Finished: at.Add(time.Second),
			Counts: map[string]map[string]int{"bluerocktel": {"created": 1}}},
	}
}

func writeV1Contents(t *testing.T, path string, c v1Contents) {
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutIntents([]Intent{c.intent}); err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.SetCursor("flow/tribecrm-to-others/tribecrm", c.cursor)
	for _, r := range c.records {
		b.PutRecord(r)
	}
	for k, f := range c.fps {
		sys, ext, _ := bytes.Cut([]byte(k), []byte("/"))
		b.PutFingerprint(string(sys), string(ext), f)
	}
	b.PutDeadLetter(c.dl)
	b.PutRun(c.run)
	if err := s.Commit(&b); err != nil {
		t.Fatal(err)
	}
}

// TestWriteV1File writes testdata/schema-v1.db when asked (on a version-1
// build only; the file in testdata is what main wrote).
func TestWriteV1File(t *testing.T) {
	if *writeV1File == "" {
		t.Skip("-write-v1-file not set")
	}
	if SchemaVersion != 1 {
		t.Fatal("only a schema-version-1 build writes the version-1 file")
	}
	writeV1Contents(t, *writeV1File, v1FileContents())
}

func copyV1File(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "schema-v1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "crmsync.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func schemaVersionOf(t *testing.T, path string) string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	_ = db.View(func(tx *bbolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(metaVersion))
		return nil
	})
	return v
}

// checkV1Contents reads back everything the version-1 file holds.
func checkV1Contents(t *testing.T, s *Store, want v1Contents) {
	t.Helper()
	if c, err := s.Cursor("flow/tribecrm-to-others/tribecrm"); err != nil || !bytes.Equal(c, want.cursor) {
		t.Errorf("cursor = %q, %v", c, err)
	}
	for _, r := range want.records {
		got, err := s.Record(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("record %s =\n%#v\nwant\n%#v", r.ID, got, r)
		}
		for sys, ext := range r.Links {
			if id, err := s.Link(sys, ext); err != nil || id != r.ID {
				t.Errorf("link %s/%s = %q, %v", sys, ext, id, err)
			}
		}
	}
	for k, f := range want.fps {
		sys, ext, _ := bytes.Cut([]byte(k), []byte("/"))
		got, err := s.Fingerprint(string(sys), string(ext))
		if err != nil || got == nil || !reflect.DeepEqual(*got, f) {
			t.Errorf("fingerprint %s = %#v, %v, want %#v", k, got, err, f)
		}
	}
	if ins, err := s.Intents(""); err != nil || len(ins) != 1 || !reflect.DeepEqual(ins[0], want.intent) {
		t.Errorf("intents = %#v, %v", ins, err)
	}
	if d, err := s.DeadLetter(want.dl.Key); err != nil || d == nil || !reflect.DeepEqual(*d, want.dl) {
		t.Errorf("dead letter = %#v, %v", d, err)
	}
	if r, err := s.LastRun(want.run.Flow); err != nil || r == nil || !reflect.DeepEqual(*r, want.run) {
		t.Errorf("last run = %#v, %v", r, err)
	}
}

// A state file written by schema version 1 (crmsync main before the compact
// records) keeps working: read-only it reads as it is, read-write it is
// stamped version 2 without rewriting anything, every value reads back, and
// a record written again is stored in format 2.
func TestSchemaV1FileKeepsWorking(t *testing.T) {
	t.Parallel()
	path := copyV1File(t)
	want := v1FileContents()

	ro, err := Open(path, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open of a version-1 file: %v", err)
	}
	checkV1Contents(t, ro, want)
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if v := schemaVersionOf(t, path); v != "1" {
		t.Fatalf("a read-only Open changed schema_version to %q", v)
	}

	s := openT(t, path)
	checkV1Contents(t, s, want)
	var v string
	_ = s.db.View(func(tx *bbolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get(metaVersion))
		return nil
	})
	if v != strconv.Itoa(SchemaVersion) {
		t.Fatalf("schema_version after a read-write Open = %q, want %d", v, SchemaVersion)
	}

	// Rewrite one record: stored as format 2, still the same record, and
	// links it dropped are gone.
	r := want.records[1].Clone()
	delete(r.Links, "bluerocktel")
	commit(t, s, func(b *Batch) { b.PutRecord(r) })
	if got, err := s.Record(r.ID); err != nil || !reflect.DeepEqual(got, r) {
		t.Errorf("rewritten record = %#v, %v", got, err)
	}
	if id, err := s.Link("bluerocktel", "customers:4"); err != nil || id != "" {
		t.Errorf("link dropped by the rewrite = %q, %v", id, err)
	}
	var stored []byte
	_ = s.db.View(func(tx *bbolt.Tx) error {
		stored = bytes.Clone(tx.Bucket(bucketRecords).Get([]byte(r.ID)))
		return nil
	})
	if !bytes.HasPrefix(stored, []byte(`{"v":2,`)) {
		t.Errorf("rewritten record stored as %s, want format 2", stored)
	}
}
