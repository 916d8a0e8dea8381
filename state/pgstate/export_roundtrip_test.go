package pgstate_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
)

func openBolt(t *testing.T) *state.Store {
	t.Helper()
	s, err := state.Open(filepath.Join(t.TempDir(), "crmsync.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// fillForExport commits random batches (randomChange) plus what they lack
// for a copy: times with nanoseconds, dead letters failing several times
// and dropped, a record whose link was unlinked, an empty cursor.
func fillForExport(t *testing.T, s state.Storage, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	ns := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	for round := 0; round < 50; round++ {
		var b state.Batch
		for n := 1 + rng.IntN(20); n > 0; n-- {
			randomChange(rng, &b)
		}
		at := ns.Add(time.Duration(round) * time.Minute)
		b.PutFingerprint(pick(rng, systems), pick(rng, extIDs), state.Fingerprint{Hash: "h", At: at, Payload: map[string]any{"n": 2.5}})
		b.PutDeadLetter(state.DeadLetter{Flow: "h", System: pick(rng, systems), CanonicalID: pick(rng, recIDs), Error: "e",
			FirstAt: at, LastAt: at.Add(time.Second), Pending: rng.IntN(2) == 0})
		b.PutRun(state.Run{Flow: "h", Mode: "backfill", Started: at, Finished: at.Add(time.Second), Error: "boom",
			Counts: map[string]map[string]int{"tribecrm": {"pulled": round}}})
		if err := s.Commit(&b); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if err := s.DropDeadLetter("h/tribecrm/a"); err != nil {
		t.Fatal(err)
	}
	var b state.Batch
	r := funnel.New("unindexed")
	r.Links["overplane"] = "99"
	b.PutRecord(r)
	b.Unlink("overplane", "99")
	b.SetCursor("empty", []byte{})
	b.PutIntent(state.Intent{ID: "a", System: "overplane", Entity: "org", Flow: "f", At: ns, Match: map[string]string{"name": "x"}})
	if err := s.Commit(&b); err != nil {
		t.Fatal(err)
	}
}

func compareT(t *testing.T, what string, a, b state.Exporter, res time.Duration) {
	t.Helper()
	r, err := state.CompareExports(context.Background(), a, b, state.CompareOptions{Resolution: res})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.Compared < 20 {
		t.Fatalf("%s: only %d entries compared", what, r.Compared)
	}
}

// bbolt → PostgreSQL → bbolt keeps everything: PostgreSQL's export equals
// the first file's to the microsecond (what it keeps), the second file's
// exactly, and every reader answers the same on PostgreSQL and on the
// second file.
func TestExportRoundTripBboltPostgresBbolt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first := openBolt(t)
	fillForExport(t, first, 11)
	pg := openT(t, pg.Get(t).Schema(t), pgstate.Options{MaxConns: 4})
	if _, err := state.Copy(ctx, first, pg, 37, nil); err != nil {
		t.Fatalf("bbolt → postgres: %v", err)
	}
	second := openBolt(t)
	if _, err := state.Copy(ctx, pg, second, 37, nil); err != nil {
		t.Fatalf("postgres → bbolt: %v", err)
	}
	compareT(t, "bbolt vs postgres", first, pg, time.Microsecond)
	compareT(t, "postgres vs bbolt", pg, second, time.Nanosecond)
	compareT(t, "bbolt vs bbolt", first, second, time.Microsecond)
	if diff := compareStores(second, pg); diff != "" {
		t.Fatalf("readers differ:\n%s", diff)
	}
	if id, _ := pg.Link("overplane", "99"); id != "" {
		t.Errorf("postgres links overplane/99 to %q; the source has no such link", id)
	}
	if d, _ := pg.DeadLetter("h/tribecrm/a"); d == nil || !d.Dropped {
		t.Errorf("dropped dead letter copied as %+v", d)
	}
	// Copying again over the copy changes nothing (no attempt counted).
	if _, err := state.Copy(ctx, first, pg, 500, nil); err != nil {
		t.Fatal(err)
	}
	compareT(t, "after a second copy", first, pg, time.Microsecond)
}

// RestoreDeadLetter on PostgreSQL replaces an entry as it is.
func TestRestoreDeadLetterPostgres(t *testing.T) {
	t.Parallel()
	s := openT(t, pg.Get(t).Schema(t), pgstate.Options{})
	first := sameT0.Add(-time.Hour)
	d := state.DeadLetter{Flow: "f", System: "overplane", CanonicalID: "a", Error: "e", Attempts: 4, FirstAt: first, LastAt: sameT0, Dropped: true}
	for i := 0; i < 2; i++ {
		var b state.Batch
		b.RestoreDeadLetter(d)
		if err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.DeadLetter("f/overplane/a")
	if err != nil || got == nil {
		t.Fatalf("DeadLetter: %v, %v", got, err)
	}
	if got.Attempts != 4 || !got.FirstAt.Equal(first) || !got.Dropped {
		t.Errorf("restored %+v", got)
	}
}
