package state_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
)

func openStore(t *testing.T, path string) *state.Store {
	t.Helper()
	s, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func tempStore(t *testing.T) *state.Store {
	t.Helper()
	return openStore(t, filepath.Join(t.TempDir(), "crmsync.db"))
}

// exportT is an export held in memory (tests only: Export streams).
func exportT(t *testing.T, x state.Exporter) []state.Op {
	t.Helper()
	var out []state.Op
	if err := x.Export(context.Background(), func(o state.Op) error {
		out = append(out, o)
		return nil
	}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return out
}

var (
	expT0      = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC) // nanoseconds on purpose
	expSystems = []string{"tribecrm", "overplane"}
	expExt     = []string{"1", "2", "3", "4", "5"}
	expRecs    = []string{"a", "b", "c", "d"}
)

func pickOne[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// fillRandom commits random batches over a few keys, so that changes
// collide (a link taken over, a record's link unlinked, a dead letter
// failing again, a dropped one, runs of two flows).
func fillRandom(t *testing.T, s state.Storage, seed uint64, rounds int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	for round := 0; round < rounds; round++ {
		var b state.Batch
		for n := 1 + rng.IntN(20); n > 0; n-- {
			randomOp(rng, &b)
		}
		if err := s.Commit(&b); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if rng.IntN(5) == 0 {
			dl := state.DeadLetter{Flow: "f", System: pickOne(rng, expSystems), CanonicalID: pickOne(rng, expRecs)}
			if err := s.DropDeadLetter(state.DeadLetterKey(dl)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func randomOp(rng *rand.Rand, b *state.Batch) {
	sys, ext, id := pickOne(rng, expSystems), pickOne(rng, expExt), pickOne(rng, expRecs)
	at := expT0.Add(time.Duration(rng.IntN(1000)) * time.Second)
	switch rng.IntN(10) {
	case 0, 1, 2:
		r := funnel.New(id)
		r.Fields["n"] = float64(rng.IntN(100))
		r.Fields["name"] = fmt.Sprintf("Org %d", rng.IntN(9))
		r.Sources = map[string]funnel.Source{"n": {System: sys, At: at}}
		if rng.IntN(4) == 0 {
			r.Gone = map[string]time.Time{"overplane": at}
		}
		for _, s := range expSystems {
			if rng.IntN(3) > 0 {
				r.Links[s] = pickOne(rng, expExt)
			}
		}
		b.PutRecord(r)
	case 3:
		b.Link(sys, ext, id)
	case 4:
		b.Unlink(sys, ext)
	case 5:
		k := pickOne(rng, []string{"flow/f/tribecrm", "backfill/f", "flow/g/overplane"})
		switch rng.IntN(4) {
		case 0:
			b.SetCursor(k, nil)
		case 1:
			b.SetCursor(k, []byte{})
		default:
			b.SetCursor(k, []byte(fmt.Sprint(rng.IntN(1000))))
		}
	case 6:
		h := fmt.Sprint(rng.IntN(1000))
		b.PutFingerprint(sys, ext, state.Fingerprint{Hash: h, Entity: "org", Source: state.FingerprintRead, At: at,
			Payload: map[string]any{"h": h, "n": 1.5}})
	case 7:
		d := state.DeadLetter{Flow: "f", System: sys, CanonicalID: id, Op: "update", Error: "e", FirstAt: at, LastAt: at,
			Pending: rng.IntN(2) == 0, Payload: map[string]any{"x": "y"}}
		if rng.IntN(4) == 0 {
			b.DeleteDeadLetter(state.DeadLetterKey(d))
			return
		}
		b.PutDeadLetter(d)
	case 8:
		if rng.IntN(2) == 0 {
			b.DeleteIntent(sys, id)
			return
		}
		b.PutIntent(state.Intent{ID: id, System: sys, Entity: "org", Flow: "f", At: at,
			Match: map[string]string{"name": "x"}, Payload: map[string]any{"name": "x"}})
	default:
		f := pickOne(rng, []string{"f", "g"})
		b.PutRun(state.Run{Flow: f, Mode: "sync", Started: at, Finished: at.Add(time.Second),
			Counts: map[string]map[string]int{sys: {"pulled": rng.IntN(9)}}})
	}
}

// readAll is everything the Storage interface can read over the keys
// fillRandom uses, for comparing two stores through their readers.
func readAll(t *testing.T, s state.Storage) map[string]any {
	t.Helper()
	out := map[string]any{}
	must := func(k string, v any, err error) {
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = v
	}
	for _, id := range expRecs {
		r, err := s.Record(id)
		must("record "+id, r, err)
	}
	for _, sys := range expSystems {
		l, err := s.Links(sys)
		must("links "+sys, l, err)
		for _, ext := range expExt {
			f, err := s.Fingerprint(sys, ext)
			must("fingerprint "+sys+"/"+ext, f, err)
		}
		for _, id := range expRecs {
			d, err := s.DeadLetter("f/" + sys + "/" + id)
			must("dead letter "+sys+"/"+id, d, err)
		}
	}
	for _, k := range []string{"flow/f/tribecrm", "backfill/f", "flow/g/overplane"} {
		c, err := s.Cursor(k)
		must("cursor "+k, c, err)
	}
	in, err := s.Intents("")
	must("intents", in, err)
	runs, err := s.Runs("", 0)
	must("runs", runs, err)
	st, err := s.Stats()
	must("stats", st, err)
	return out
}

// A bbolt store copied into an empty one reads back identically through
// every reader (dead letters keep their attempts, first time, pending and
// dropped flags; a record keeps a link the index lost), and the two
// exports compare equal.
func TestCopyBboltToBboltIsExact(t *testing.T) {
	t.Parallel()
	src, dst := tempStore(t), tempStore(t)
	fillRandom(t, src, 1, 80)
	counts, err := state.Copy(context.Background(), src, dst, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := src.Stats()
	for _, k := range state.CopiedKinds() {
		if counts[k] != stats[k] {
			t.Errorf("copied %d %s, the source holds %d", counts[k], k, stats[k])
		}
	}
	want, got := readAll(t, src), readAll(t, dst)
	for k, v := range want {
		if !reflect.DeepEqual(v, got[k]) {
			t.Errorf("%s:\n source %#v\n copy   %#v", k, v, got[k])
		}
	}
	res, err := state.CompareExports(context.Background(), src, dst, state.CompareOptions{})
	if err != nil {
		t.Fatalf("CompareExports: %v", err)
	}
	if res.Compared == 0 || res.Extra != 0 {
		t.Errorf("CompareExports = %+v", res)
	}
	// Copying again over the copy (a rerun with --force after a partial
	// copy) changes nothing: a dead letter is not counted as failing again.
	if _, err := state.Copy(context.Background(), src, dst, 500, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := state.CompareExports(context.Background(), src, dst, state.CompareOptions{}); err != nil {
		t.Fatalf("after a second copy: %v", err)
	}
}

// PutDeadLetter counts an attempt; RestoreDeadLetter keeps the entry as it
// was, which is what a copy needs.
func TestRestoreDeadLetterKeepsHistory(t *testing.T) {
	t.Parallel()
	s := tempStore(t)
	first := expT0.Add(-48 * time.Hour)
	d := state.DeadLetter{Flow: "f", System: "overplane", CanonicalID: "a", Op: "create", Error: "422",
		Attempts: 7, FirstAt: first, LastAt: expT0, Dropped: true}
	for i := 0; i < 2; i++ { // the second replaces the first as it is
		var b state.Batch
		b.RestoreDeadLetter(d)
		if err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.DeadLetter(state.DeadLetterKey(d))
	if err != nil || got == nil {
		t.Fatalf("DeadLetter: %v, %v", got, err)
	}
	if got.Attempts != 7 || !got.FirstAt.Equal(first) || !got.LastAt.Equal(expT0) || !got.Dropped {
		t.Errorf("restored %+v", got)
	}
	if dls, _ := s.DeadLetters(""); len(dls) != 0 {
		t.Errorf("a dropped entry is listed: %+v", dls)
	}
}

// A record whose link was unlinked afterwards keeps claiming it; the copy
// must not put the link back into the index.
func TestExportKeepsAnUnindexedLinkOut(t *testing.T) {
	t.Parallel()
	src, dst := tempStore(t), tempStore(t)
	var b state.Batch
	r := funnel.New("a")
	r.Links["tribecrm"] = "1"
	b.PutRecord(r)
	b.Unlink("tribecrm", "1")
	if err := src.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := state.Copy(context.Background(), src, dst, 0, nil); err != nil {
		t.Fatal(err)
	}
	if id, _ := dst.Link("tribecrm", "1"); id != "" {
		t.Errorf("copy links tribecrm/1 to %q; the source has no such link", id)
	}
	if got, _ := dst.Record("a"); got == nil || got.Links["tribecrm"] != "1" {
		t.Errorf("copied record %+v lost its own link", got)
	}
}

// CompareExports names the first entry that differs, and one that only
// one side holds (unless ExtraOK, for the destination).
func TestCompareExportsNamesTheFirstDifference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := tempStore(t), tempStore(t)
	fillRandom(t, a, 2, 30)
	if _, err := state.Copy(ctx, a, b, 0, nil); err != nil {
		t.Fatal(err)
	}
	var batch state.Batch
	batch.PutFingerprint("tribecrm", "9", state.Fingerprint{Hash: "extra", At: expT0})
	if err := b.Commit(&batch); err != nil {
		t.Fatal(err)
	}
	_, err := state.CompareExports(ctx, a, b, state.CompareOptions{})
	var m *state.MismatchError
	if !errors.As(err, &m) || m.Key != "fingerprint tribecrm/9" || !strings.Contains(m.Problem, "only in the destination") {
		t.Fatalf("CompareExports = %v, want fingerprint tribecrm/9 only in the destination", err)
	}
	res, err := state.CompareExports(ctx, a, b, state.CompareOptions{ExtraOK: true})
	if err != nil || res.Extra != 1 {
		t.Fatalf("ExtraOK: %+v, %v", res, err)
	}
	if _, err := state.CompareExports(ctx, b, a, state.CompareOptions{ExtraOK: true}); !errors.As(err, &m) || !strings.Contains(m.Problem, "only in the source") {
		t.Fatalf("an entry only the source holds: %v", err)
	}
	batch.Reset()
	batch.SetCursor("flow/f/tribecrm", []byte("changed"))
	if err := b.Commit(&batch); err != nil {
		t.Fatal(err)
	}
	if _, err := state.CompareExports(ctx, a, b, state.CompareOptions{ExtraOK: true}); !errors.As(err, &m) || m.Key != "cursor flow/f/tribecrm" || !strings.Contains(m.Problem, "differs") {
		t.Fatalf("a changed cursor: %v", err)
	}
}

// Times are compared to the resolution asked for: PostgreSQL keeps
// microseconds.
func TestCompareExportsResolution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := tempStore(t), tempStore(t)
	for i, s := range []*state.Store{a, b} {
		var batch state.Batch
		batch.PutFingerprint("tribecrm", "1", state.Fingerprint{Hash: "h", At: expT0.Add(time.Duration(i) * 100 * time.Nanosecond)})
		if err := s.Commit(&batch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := state.CompareExports(ctx, a, b, state.CompareOptions{}); err == nil {
		t.Error("times 100ns apart compare equal at nanosecond resolution")
	}
	if _, err := state.CompareExports(ctx, a, b, state.CompareOptions{Resolution: time.Microsecond}); err != nil {
		t.Errorf("at microsecond resolution: %v", err)
	}
}

// An export stops at fn's first error and returns it as it is.
func TestExportStopsAtFnError(t *testing.T) {
	t.Parallel()
	s := tempStore(t)
	fillRandom(t, s, 3, 10)
	stop := errors.New("stop")
	n := 0
	err := s.Export(context.Background(), func(state.Op) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Fatalf("Export = %v after %d calls, want stop after 1", err, n)
	}
}

// Compact keeps every entry and gives back the pages of deleted ones.
func TestCompactShrinksAndKeepsEverything(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "crmsync.db")
	s := openStore(t, path)
	fillRandom(t, s, 4, 40)
	bulk := strings.Repeat("x", 2000)
	for round := 0; round < 20; round++ {
		var b state.Batch
		for i := 0; i < 500; i++ {
			b.PutDeadLetter(state.DeadLetter{Flow: "bulk", System: "overplane", CanonicalID: fmt.Sprintf("r%d-%d", round, i),
				Error: "e", Payload: map[string]any{"blob": bulk}})
		}
		if err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 20; round++ {
		var b state.Batch
		for i := 0; i < 500; i++ {
			b.DeleteDeadLetter(fmt.Sprintf("bulk/overplane/r%d-%d", round, i))
		}
		if err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	keep := tempStore(t)
	if _, err := state.Copy(ctx, s, keep, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil { // as an operator may have set it
		t.Fatal(err)
	}
	res, err := state.Compact(ctx, path, state.Options{})
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	t.Logf("compacted %d bytes into %d", res.Before, res.After)
	if res.After*4 > res.Before {
		t.Errorf("compacted %d bytes into %d: want a quarter or less after deleting 20 MB of dead letters", res.Before, res.After)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != res.After || fi.Mode().Perm() != 0o640 {
		t.Errorf("file after: %v, %v; Compact says %d bytes, and the mode was 0640", fi, err, res.After)
	}
	after := openStore(t, path)
	if _, err := state.CompareExports(ctx, keep, after, state.CompareOptions{}); err != nil {
		t.Errorf("the compacted file differs from before: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".crmsync-compact-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A file in use is not compacted, and stays as it was.
func TestCompactRefusesALockedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "crmsync.db")
	s := openStore(t, path)
	fillRandom(t, s, 5, 10)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = state.Compact(context.Background(), path, state.Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, state.ErrLocked) {
		t.Fatalf("Compact of a file in use = %v, want ErrLocked", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("the file in use changed")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".crmsync-compact-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// BenchmarkCopyAndCompare copies a store of 2,000 records (each with three
// links and three fingerprints) into an empty one and compares the two
// exports (ns/record: copy and compare, per record, fsyncs included).
func BenchmarkCopyAndCompare(b *testing.B) {
	const records = 2000
	ctx := context.Background()
	dir := b.TempDir()
	src, err := state.Open(filepath.Join(dir, "src.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	var batch state.Batch
	for i := 0; i < records; i++ {
		r := funnel.New(fmt.Sprintf("rec-%05d", i))
		r.Fields["name"] = fmt.Sprintf("Org %d", i)
		r.Sources = map[string]funnel.Source{"name": {System: "tribecrm", At: expT0}}
		for _, sys := range []string{"tribecrm", "overplane", "bluerocktel"} {
			r.Links[sys] = sys + "-" + r.ID
			batch.PutFingerprint(sys, sys+"-"+r.ID, state.Fingerprint{Hash: "h", At: expT0, Payload: map[string]any{"name": r.ID}})
		}
		batch.PutRecord(r)
	}
	if err := src.Commit(&batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		dst, err := state.Open(filepath.Join(dir, fmt.Sprintf("dst-%d.db", n)), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := state.Copy(ctx, src, dst, 0, nil); err != nil {
			b.Fatal(err)
		}
		if _, err := state.CompareExports(ctx, src, dst, state.CompareOptions{}); err != nil {
			b.Fatal(err)
		}
		_ = dst.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
}
