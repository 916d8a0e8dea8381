package pgstate_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
	"github.com/crmsync/crmsync/state/statetest"
)

// Random batches over a few keys (so changes collide: a record relinked
// twice in one batch, a link taken over and then dropped, a cursor set
// and cleared) leave PostgreSQL exactly as they leave bbolt. PostgreSQL
// applies a batch's changes grouped by table (plan.go); this checks that
// grouping against bbolt's one-by-one order.
func TestRandomBatchesSameAsBbolt(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).Schema(t)
	p := openT(t, dsn, pgstate.Options{})
	b, err := state.Open(filepath.Join(t.TempDir(), "crmsync.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rng := rand.New(rand.NewPCG(13, 1))
	for round := 0; round < 60; round++ {
		in := []state.Intent{{ID: pick(rng, recIDs), System: pick(rng, systems), Entity: "e", At: sameT0}}
		if err := b.PutIntents(in); err != nil {
			t.Fatal(err)
		}
		if err := p.PutIntents(in); err != nil {
			t.Fatal(err)
		}
		var batch state.Batch
		var log []string
		for n := 1 + rng.IntN(25); n > 0; n-- {
			log = append(log, randomChange(rng, &batch))
		}
		if err := b.Commit(&batch); err != nil {
			t.Fatalf("round %d: bbolt: %v", round, err)
		}
		if err := p.Commit(&batch); err != nil {
			t.Fatalf("round %d: postgres: %v", round, err)
		}
		if diff := compareStores(b, p); diff != "" {
			t.Fatalf("round %d: after %v\n%s", round, log, diff)
		}
	}
}

var (
	sameT0   = time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.UTC) // whole microseconds: both engines keep it exactly
	systems  = []string{"tribecrm", "overplane"}
	extIDs   = []string{"1", "2", "3", "4"}
	recIDs   = []string{"a", "b", "c"}
	curKeys  = []string{"flow/f/tribecrm", "backfill/f"}
	dlFlows  = []string{"f", "g"}
	runFlows = []string{"f", "g"}
)

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// randomChange adds one random change to b and says what it was.
func randomChange(rng *rand.Rand, b *state.Batch) string {
	sys, ext, id := pick(rng, systems), pick(rng, extIDs), pick(rng, recIDs)
	at := sameT0.Add(time.Duration(rng.IntN(5)) * time.Minute)
	switch rng.IntN(9) {
	case 0, 1, 2:
		r := funnel.New(id)
		r.Fields["n"] = float64(rng.IntN(100))
		for _, s := range systems {
			if rng.IntN(3) > 0 {
				r.Links[s] = pick(rng, extIDs)
			}
		}
		b.PutRecord(r)
		return fmt.Sprintf("PutRecord(%s %v)", id, r.Links)
	case 3:
		b.Link(sys, ext, id)
		return "Link(" + sys + "/" + ext + "→" + id + ")"
	case 4:
		b.Unlink(sys, ext)
		return "Unlink(" + sys + "/" + ext + ")"
	case 5:
		k := pick(rng, curKeys)
		if rng.IntN(3) == 0 {
			b.SetCursor(k, nil)
			return "SetCursor(" + k + ", nil)"
		}
		v := fmt.Sprint(rng.IntN(1000))
		b.SetCursor(k, []byte(v))
		return "SetCursor(" + k + ", " + v + ")"
	case 6:
		h := fmt.Sprint(rng.IntN(1000))
		b.PutFingerprint(sys, ext, state.Fingerprint{Hash: h, At: at, Payload: map[string]any{"h": h}})
		return "PutFingerprint(" + sys + "/" + ext + ")"
	case 7:
		d := state.DeadLetter{Flow: pick(rng, dlFlows), System: sys, CanonicalID: id, Error: "e", FirstAt: at, LastAt: at}
		if rng.IntN(3) == 0 {
			b.DeleteDeadLetter(state.DeadLetterKey(d))
			return "DeleteDeadLetter(" + state.DeadLetterKey(d) + ")"
		}
		b.PutDeadLetter(d)
		return "PutDeadLetter(" + state.DeadLetterKey(d) + ")"
	default:
		if rng.IntN(2) == 0 {
			b.DeleteIntent(sys, id)
			return "DeleteIntent(" + sys + "/" + id + ")"
		}
		f := pick(rng, runFlows)
		b.PutRun(state.Run{Flow: f, Mode: "sync", Started: at, Finished: at.Add(time.Second)})
		return "PutRun(" + f + ")"
	}
}

// compareStores reads everything the key space can hold from both and
// describes the first difference ("" when none).
func compareStores(a, b statetest.Store) string {
	type read func(s statetest.Store) (any, error)
	var reads []struct {
		what string
		fn   read
	}
	add := func(what string, fn read) {
		reads = append(reads, struct {
			what string
			fn   read
		}{what, fn})
	}
	for _, id := range recIDs {
		add("Record "+id, func(s statetest.Store) (any, error) { return s.Record(id) })
	}
	for _, sys := range systems {
		add("Links "+sys, func(s statetest.Store) (any, error) { return s.Links(sys) })
		for _, ext := range extIDs {
			add("Fingerprint "+sys+"/"+ext, func(s statetest.Store) (any, error) { return s.Fingerprint(sys, ext) })
		}
	}
	for _, k := range curKeys {
		add("Cursor "+k, func(s statetest.Store) (any, error) { return s.Cursor(k) })
	}
	add("DeadLetters", func(s statetest.Store) (any, error) { return s.DeadLetters("") })
	add("Runs", func(s statetest.Store) (any, error) { return s.Runs("", 0) })
	add("Intents", func(s statetest.Store) (any, error) { return s.Intents("") })
	add("Stats", func(s statetest.Store) (any, error) {
		st, err := s.Stats()
		delete(st, "meta")
		return st, err
	})
	for _, r := range reads {
		va, errA := r.fn(a)
		vb, errB := r.fn(b)
		if errA != nil || errB != nil {
			return fmt.Sprintf("%s: errors %v / %v", r.what, errA, errB)
		}
		if !reflect.DeepEqual(va, vb) {
			return fmt.Sprintf("%s:\n  bbolt    %#v\n  postgres %#v", r.what, va, vb)
		}
	}
	return ""
}
