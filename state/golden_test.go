package state

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/crmsync/crmsync/funnel"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the current encoding")

// The golden files pin the bytes Commit and PutIntents store, so a format
// change is a deliberate act: bump SchemaVersion, add a migration, then run
// `go test ./state -run TestGolden -update`. They are indented for reading;
// the stored value is the same JSON without the whitespace.
func TestGoldenEncoding(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	payload := map[string]any{"Organization": map[string]any{"Name": "Acme B.V.", "ChamberOfCommerceNumber": "12345678"},
		"Prospect": true, "Score": float64(42.5), "Tags": []any{"a", "b"}}
	rec := sampleRecord("6f1c2a8e-3b4d-4c5e-8f90-a1b2c3d4e5f6")
	// Every field from one read of one system: the common case, stored as
	// one source group that leaves its fields out.
	oneSource := realisticGolden("00185933-765e-44a2-834c-adb9afa63c6a", 1, t0)
	oneSource.Links = map[string]string{"tribecrm": "32e7e318-205c-4322-90ec-cfde336c3580", "bluerocktel": "customers:4"}
	fp := Fingerprint{Hash: funnel.FingerprintValues(payload), Payload: payload, Entity: "Relationship_Organization_CommercialRelationship_Lead",
		At: t0, Source: FingerprintWrite}
	in := Intent{ID: rec.ID, System: "bluerocktel", Entity: "prospects", Match: map[string]string{"email": "info@acme.example"},
		Payload: map[string]any{"name": "Acme B.V.", "email": "info@acme.example"}, Flow: "leads", At: t0}
	dl := DeadLetter{Flow: "leads", System: "bluerocktel", CanonicalID: rec.ID, SourceSystem: "tribecrm", SourceID: "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e",
		Op: "create", Error: "422 Unprocessable Content: The email field must be a valid email address.",
		Payload: map[string]any{"email": "not-an-email"}, FirstAt: t0, LastAt: t0.Add(time.Hour)}
	run := Run{Flow: "leads", Mode: "sync", Started: t0, Finished: t0.Add(2*time.Second + 500*time.Millisecond),
		Counts: map[string]map[string]int{"tribecrm": {"read": 120, "skipped": 3}, "bluerocktel": {"created": 2, "updated": 7, "dead_letters": 1}}}

	if err := s.PutIntents([]Intent{in}); err != nil {
		t.Fatal(err)
	}
	commit(t, s, func(b *Batch) {
		b.PutRecord(rec)
		b.PutRecord(oneSource)
		b.PutFingerprint("tribecrm", "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e", fp)
		b.PutDeadLetter(dl)
		b.PutRun(run)
	})

	dlWant := dl
	dlWant.Key, dlWant.Attempts = DeadLetterKey(dl), 1
	cases := []struct {
		name   string
		bucket []byte
		key    []byte
		want   any
		decode func([]byte) (any, error)
	}{
		{"record", bucketRecords, []byte(rec.ID), rec, func(b []byte) (any, error) { return decodeRecord(rec.ID, b) }},
		{"record-one-source", bucketRecords, []byte(oneSource.ID), oneSource,
			func(b []byte) (any, error) { return decodeRecord(oneSource.ID, b) }},
		{"fingerprint", bucketFingerprints, pairKey("tribecrm", "0b6c9a0e-1111-4e5e-9c59-1c1a2b3c4d5e"), &fp,
			func(b []byte) (any, error) { return decodeFingerprint(b) }},
		{"intent", bucketIntents, pairKey("bluerocktel", rec.ID), in, func(b []byte) (any, error) { return decodeIntent(b) }},
		{"deadletter", bucketDeadLetters, []byte(DeadLetterKey(dl)), dlWant, func(b []byte) (any, error) { return decodeDeadLetter(b) }},
		{"run", bucketRuns, runKey("leads", t0), run, func(b []byte) (any, error) { return decodeRun(b) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stored []byte
			if err := s.db.View(func(tx *bbolt.Tx) error {
				stored = bytes.Clone(tx.Bucket(c.bucket).Get(c.key))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if stored == nil {
				t.Fatalf("nothing stored under %s/%q", c.bucket, c.key)
			}
			file := filepath.Join("testdata", c.name+".golden.json")
			if *update {
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, stored, "", "  "); err != nil {
					t.Fatal(err)
				}
				pretty.WriteByte('\n')
				if err := os.WriteFile(file, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, golden); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if !bytes.Equal(compact.Bytes(), stored) {
				t.Errorf("stored %s value differs from %s (a format change needs a schema version bump and a migration):\nstored %s\ngolden %s",
					c.name, file, stored, compact.Bytes())
			}
			// And the golden bytes still decode to the value (old files keep reading).
			got, err := c.decode(compact.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("golden %s decodes to\n%#v\nwant\n%#v", c.name, got, c.want)
			}
		})
	}
}

// Values written by schema version 1 (crmsync before the compact records)
// still decode to what was stored. The files are what version 1 wrote; they
// are never regenerated.
func TestGoldenV1ValuesDecode(t *testing.T) {
	t.Parallel()
	golden, err := os.ReadFile(filepath.Join("testdata", "record-v1.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, golden); err != nil {
		t.Fatal(err)
	}
	want := sampleRecord("6f1c2a8e-3b4d-4c5e-8f90-a1b2c3d4e5f6")
	got, err := decodeRecord("key-is-not-used-by-v1", compact.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("v1 record decodes to\n%#v\nwant\n%#v", got, want)
	}
}

// The key formats documented in doc.go.
func TestKeyFormats(t *testing.T) {
	t.Parallel()
	if k := string(pairKey("tribecrm", "0b6c")); k != "tribecrm\x000b6c" {
		t.Errorf("link/fingerprint/intent key = %q", k)
	}
	started := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	want := append([]byte("leads\x00"), 0x18, 0x16, 0xc1, 0x1e, 0xee, 0xf3, 0x32, 0x06)
	if k := runKey("leads", started); !bytes.Equal(k, want) {
		t.Errorf("run key = %x, want %x (flow, NUL, big-endian %d)", k, want, started.UnixNano())
	}
	if k := DeadLetterKey(DeadLetter{Flow: "leads", System: "overplane", CanonicalID: "c1", SourceSystem: "tribecrm", SourceID: "t1"}); k != "leads/overplane/c1" {
		t.Errorf("dead letter key = %q", k)
	}
	if k := DeadLetterKey(DeadLetter{Flow: "leads", System: "overplane", SourceSystem: "tribecrm", SourceID: "t1"}); k != "leads/overplane/tribecrm:t1" {
		t.Errorf("dead letter key without canonical id = %q", k)
	}
}
