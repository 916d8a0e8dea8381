package tribecrm

import (
	"net/http"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// An incremental pass re-reads the overlap behind each step's saved
// position only while that position is younger than the overlap at the
// time it was read: once a pass has read a step more than the overlap after
// its newest row, the next pass starts exactly after that row. A quiet
// TribeCRM then costs one empty request per step and returns nothing.
func TestQuietPassesStopReReadingTheOverlap(t *testing.T) {
	t.Parallel()
	clk := emukit.NewManualClock(time.Now().UTC())
	e := newEnv(t, emulator.Options{Records: 120, Now: clk.Now}, nil)
	first := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 50})
	id := e.em.IDs(orgLead)[0]
	if st, body := e.raw(t, http.MethodPut, "/v1/odata/"+orgLead+"("+id+")", map[string]any{"Name": "Edited just now"}); st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	next := pullPass(t, e.c, first.next, connectors.PullOptions{PageSize: 50})
	if _, ok := next.latest[id]; !ok {
		t.Fatal("the edit was not pulled")
	}
	// Passes within the overlap of the edit read it again (it may have
	// company on its timestamp that committed late).
	cur := next.next
	clk.Add(5 * time.Second)
	again := pullPass(t, e.c, cur, connectors.PullOptions{PageSize: 50})
	cur = again.next
	for pass := 1; pass <= 3; pass++ {
		clk.Add(time.Minute)
		e.resetRequests()
		quiet := pullPass(t, e.c, cur, connectors.PullOptions{PageSize: 50})
		cur = quiet.next
		if len(quiet.all) != 0 {
			t.Errorf("quiet pass %d, long after the last edit, returned %d records (the overlap behind the cursor, read again)", pass, len(quiet.all))
		}
		if n, steps := len(e.requests()), len(e.c.steps()); n != steps {
			t.Errorf("quiet pass %d made %d requests, want one per step (%d)", pass, n, steps)
		}
	}
}

// A write stamped with the cursor's own timestamp after the pass that read
// it (ties with a frozen clock, commit lag) is still read by the next
// pass: the server's Date shows the pass read that timestamp less than the
// overlap after it.
func TestWriteOnTheCursorTimestampAfterThePassIsRead(t *testing.T) {
	t.Parallel()
	clk := emukit.NewManualClock(time.Now().UTC())
	e := newEnv(t, emulator.Options{Records: 60, Now: clk.Now}, nil)
	first := pullPass(t, e.c, nil, connectors.PullOptions{})
	clk.Add(time.Minute)
	e.em.Freeze(clk.Now())
	ids := e.em.IDs(orgLead)
	lo, hi := ids[0], ids[1]
	if lo > hi {
		lo, hi = hi, lo
	}
	// hi first: the pass saves (T, hi); lo, written later on T, sorts
	// before the saved position.
	if st, body := e.raw(t, http.MethodPut, "/v1/odata/"+orgLead+"("+hi+")", map[string]any{"Name": "First on T"}); st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	next := pullPass(t, e.c, first.next, connectors.PullOptions{})
	if _, ok := next.latest[hi]; !ok {
		t.Fatal("the first write was not pulled")
	}
	if st, body := e.raw(t, http.MethodPut, "/v1/odata/"+orgLead+"("+lo+")", map[string]any{"Name": "Second on T"}); st != 200 {
		t.Fatalf("%d %v", st, body)
	}
	last := pullPass(t, e.c, next.next, connectors.PullOptions{})
	if r, ok := last.latest[lo]; !ok || r.Fields["Name"] != "Second on T" {
		t.Errorf("a write on the cursor's timestamp after the pass was lost: %v", r.Fields["Name"])
	}
}
