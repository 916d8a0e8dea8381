package engine_test

import (
	"flag"
	"testing"
	"time"

	"github.com/crmsync/crmsync/engine"
)

// tiesLong runs the 5,000-record version of the one-timestamp test: about
// 27 s of CPU under -race, a fifth of the engine package's, for the same
// check at a larger size. Every connector's contract suite (conntest
// Ties5000) still pulls 5,000 records on one timestamp by default.
//
//	go test ./engine -run OnOneTimestamp -ties.long
var tiesLong = flag.Bool("ties.long", false, "also run TestFiveThousandRecordsOnOneTimestampNoneLost (5,000 records through the engine)")

// TestThousandRecordsOnOneTimestampNoneLost: 1,000 TribeCRM records on one
// LastMutationDate, read in pages of 100 (the tie spans ten pages, and the
// emulator has no page cap), all reach BlueRockTel, once each, and a
// backfill of them writes nothing. TestFiveThousandRecordsOnOneTimestampNoneLost
// checks the same at 5,000 with -ties.long.
func TestThousandRecordsOnOneTimestampNoneLost(t *testing.T) {
	t.Parallel()
	recordsOnOneTimestampNoneLost(t, 1000)
}

func recordsOnOneTimestampNoneLost(t *testing.T, n int) {
	t.Helper()
	const pageSize = 100
	if n <= 2*pageSize {
		t.Fatalf("%d records on one timestamp do not span several pages of %d", n, pageSize)
	}
	w := newWorld(t, worldOpts{tribe: n, pageSize: pageSize, flows: oneWay})
	// TribeCRM's emulator, by the methods the test needs: every
	// relationship on one LastMutationDate, and every later write on it too.
	tribe, ok := w.srv.Handlers["tribecrm"].(interface {
		Freeze(time.Time)
		Touch(ids ...string)
	})
	if !ok {
		t.Fatalf("the tribecrm emulator (%T) has no Freeze and Touch", w.srv.Handlers["tribecrm"])
	}
	tribe.Freeze(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	tribe.Touch()
	started := time.Now()
	res := w.run("t2b")
	syncRate := float64(n) / time.Since(started).Seconds()
	if c := counts(res, "bluerocktel"); c.Created != n || c.Failed != 0 {
		t.Fatalf("counts %+v; want %d created", c, n)
	}
	if got := w.brtTotal(); got != n {
		t.Fatalf("BlueRockTel holds %d records, want %d", got, n)
	}
	links, _ := w.st.Links("tribecrm")
	if len(links) != n {
		t.Fatalf("%d TribeCRM records linked, want %d", len(links), n)
	}

	// A backfill of all of them: reads every one, writes nothing.
	started = time.Now()
	res = w.runFlow(w.flow("t2b"), engine.RunOptions{Mode: engine.ModeBackfill})
	d := time.Since(started)
	if c := counts(res, "tribecrm"); c.Pulled < n || writes(res) != 0 {
		t.Fatalf("backfill pulled %d and made %d writes; want %d and 0", c.Pulled, writes(res), n)
	}
	t.Logf("first sync of %d (all created): %.0f records/s; backfill of %d (in sync): %.0f records/s", n, syncRate, n, float64(n)/d.Seconds())
}
