package bluerocktel

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
	"github.com/crmsync/crmsync/connectors/emukit"
)

// countingEnv is an env whose server counts the list requests it receives
// (counted before they are answered, so the count is exact once the
// client has its reply).
type countingEnv struct {
	*env
	lists atomic.Int64
}

func newCountingEnv(t *testing.T, eo brtemu.Options) *countingEnv {
	t.Helper()
	ce := &countingEnv{env: &env{emu: brtemu.New(eo)}}
	ce.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/prospects") || strings.HasSuffix(r.URL.Path, "/customers")) {
			ce.lists.Add(1)
		}
		ce.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(ce.srv.Close)
	c, err := New(Options{BaseURL: ce.srv.URL, Token: "dev-token", HTTP: newHTTP(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ce.cli = c
	return ce
}

// An incremental scan reads the overlap below the high-water mark only
// while the mark is younger than the overlap at the time the last scan
// read it: once a scan has started more than the overlap after the newest
// record, the next one stops at the mark. A quiet BlueRockTel then costs
// one list request per collection and returns nothing.
func TestQuietPassesStopReReadingTheOverlap(t *testing.T) {
	t.Parallel()
	clk := emukit.NewManualClock(time.Now().UTC())
	e := newCountingEnv(t, brtemu.Options{Records: 120, Customers: 30, Now: clk.Now})
	_, cur, _ := pullAll(t, e.cli, nil, 50)
	// Fifteen edits in the same instant: a scan that re-reads the overlap
	// returns all of them again.
	edited := map[string]bool{}
	for _, ent := range []string{EntityProspects, EntityCustomers} {
		ids := e.emu.IDs(ent)
		n := map[string]int{EntityProspects: 10, EntityCustomers: 5}[ent]
		for _, id := range ids[:n] {
			e.emu.Edit(ent, id, map[string]any{"comment": "edited just now"})
			edited[ent+"/"+itoa64(id)] = true
		}
	}
	next, cur, _ := pullAll(t, e.cli, cur, 50)
	for _, r := range next {
		delete(edited, r.Entity+"/"+r.ID)
	}
	if len(edited) != 0 {
		t.Fatalf("edits not pulled: %v", edited)
	}
	// A pass within the overlap of the edits reads them again (company on
	// their timestamp may have committed late).
	clk.Add(5 * time.Second)
	if again, c, _ := pullAll(t, e.cli, cur, 50); len(again) < 15 {
		t.Errorf("the pass within the overlap of the edits read %d records, want the 15 edits again", len(again))
	} else {
		cur = c
	}
	for pass := 1; pass <= 3; pass++ {
		clk.Add(time.Minute)
		e.lists.Store(0)
		quiet, c, _ := pullAll(t, e.cli, cur, 50)
		cur = c
		if len(quiet) != 0 {
			t.Errorf("quiet pass %d, long after the last edit, returned %d records (the overlap below the mark, read again)", pass, len(quiet))
		}
		if n := e.lists.Load(); n != 2 {
			t.Errorf("quiet pass %d made %d list requests, want one per collection (2)", pass, n)
		}
	}
	// A later edit is still read.
	id := e.emu.IDs(EntityProspects)[50]
	e.emu.Edit(EntityProspects, id, map[string]any{"comment": "edited later"})
	if late, _, _ := pullAll(t, e.cli, cur, 50); idSet(late, EntityProspects)[itoa64(id)] != 1 {
		t.Errorf("an edit after the quiet passes was not pulled: %v", idSet(late, ""))
	}
}

// A write stamped with the high-water mark's own updated_at after the scan
// that read it, with a lower id (ties with a frozen clock, late commits),
// sorts below the mark and is still read by the next scan: the server's
// Date shows that scan started less than the overlap after the mark.
func TestWriteOnTheCursorTimestampAfterThePassIsRead(t *testing.T) {
	t.Parallel()
	clk := emukit.NewManualClock(time.Now().UTC())
	e := newCountingEnv(t, brtemu.Options{Records: 60, Customers: 10, Now: clk.Now})
	_, cur, _ := pullAll(t, e.cli, nil, 0)
	clk.Add(time.Minute)
	e.emu.Freeze(clk.Now())
	ids := e.emu.IDs(EntityProspects)
	lo, hi := ids[0], ids[1]
	if lo > hi {
		lo, hi = hi, lo
	}
	// hi first: the scan's mark is (T, hi); lo, written later on T, sorts
	// after it in the newest-first order.
	e.emu.Edit(EntityProspects, hi, map[string]any{"comment": "first on T"})
	next, cur, _ := pullAll(t, e.cli, cur, 0)
	if idSet(next, EntityProspects)[itoa64(hi)] == 0 {
		t.Fatal("the first write was not pulled")
	}
	e.emu.Edit(EntityProspects, lo, map[string]any{"comment": "second on T"})
	last, _, _ := pullAll(t, e.cli, cur, 0)
	var got any
	for _, r := range last {
		if r.Entity == EntityProspects && r.ID == itoa64(lo) {
			got = r.Fields["comment"]
		}
	}
	if got != "second on T" {
		t.Errorf("a write on the mark's timestamp after the scan was lost: comment %v", got)
	}
}
