package overplane

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
	"github.com/crmsync/crmsync/funnel"
)

// countingEnv is an emulator behind a server that counts GETs by path, and
// a client whose clock the test moves.
type countingEnv struct {
	*env
	mu   sync.Mutex
	gets map[string]int
	now  time.Time
}

func newCountingEnv(t *testing.T, records int, maxAge time.Duration) *countingEnv {
	t.Helper()
	ce := &countingEnv{gets: map[string]int{}, now: time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)}
	emu := emulator.New(emulator.Options{Records: records})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			ce.mu.Lock()
			ce.gets[r.URL.Path]++
			ce.mu.Unlock()
		}
		emu.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h := newHTTP(4)
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: h, Logger: zerolog.Nop(), ChildMaxAge: maxAge, Now: ce.clock})
	if err != nil {
		t.Fatal(err)
	}
	ce.env = &env{emu: emu, srv: srv, c: c, h: h}
	return ce
}

func (ce *countingEnv) clock() time.Time {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	return ce.now
}

func (ce *countingEnv) advance(d time.Duration) {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	ce.now = ce.now.Add(d)
}

// take returns the GETs since the last call: of the prospect list and of
// the two child tables.
func (ce *countingEnv) take() (list, children int) {
	ce.mu.Lock()
	defer ce.mu.Unlock()
	list = ce.gets[prospectPath]
	children = ce.gets[leadPath] + ce.gets[oppPath]
	ce.gets = map[string]int{}
	return list, children
}

// scanAll pulls one whole scan from a done cursor and returns each
// record's content fingerprint.
func (ce *countingEnv) scanAll(t *testing.T, cur connectors.Cursor) (map[string]string, connectors.Cursor) {
	t.Helper()
	_, next, pages := scan(t, ce.c, cur, 0)
	out := map[string]string{}
	for _, p := range pages {
		for _, r := range p.Records {
			out[r.ID] = funnel.FingerprintValues(r.Fields)
		}
	}
	return out, next
}

// An idle re-run of 100 prospects reads the prospect list and no child
// table: the rows read by the previous scan are returned again while each
// prospect's updated_at is unchanged, with the same content.
func TestIdleScanReadsNoChildTables(t *testing.T) {
	t.Parallel()
	ce := newCountingEnv(t, 100, 0)
	first, cur := ce.scanAll(t, nil)
	list, children := ce.take()
	t.Logf("first scan of %d prospects: %d list GETs, %d child GETs", len(first), list, children)
	if len(first) != 100 || children < 200 {
		t.Fatalf("first scan: %d prospects, %d child GETs (want 100 and at least 2 per prospect)", len(first), children)
	}
	ce.advance(time.Minute)
	idle, _ := ce.scanAll(t, cur)
	list, children = ce.take()
	t.Logf("idle scan: %d list GETs, %d child GETs", list, children)
	if children != 0 {
		t.Errorf("idle scan of 100 unchanged prospects made %d child-table GETs, want 0", children)
	}
	if list > 2 {
		t.Errorf("idle scan made %d list GETs for 100 prospects", list)
	}
	for id, fp := range first {
		if idle[id] != fp {
			t.Errorf("prospect %s: idle scan returned other content than the first scan", id)
		}
	}
}

// Today's cost, kept for comparison: without the cache every scan reads
// both child tables of every prospect.
func TestWithoutCacheEveryScanReadsEveryChildTable(t *testing.T) {
	t.Parallel()
	ce := newCountingEnv(t, 100, -1)
	_, cur := ce.scanAll(t, nil)
	ce.take()
	ce.scanAll(t, cur)
	if _, children := ce.take(); children < 200 {
		t.Errorf("ChildMaxAge -1: idle scan made %d child GETs, want 2 per prospect", children)
	}
}

// firstLead returns a prospect that has a lead row, and that row's id.
func firstLead(t *testing.T, ce *countingEnv) (string, string) {
	t.Helper()
	for _, id := range ce.emu.IDs() {
		if rows := ce.emu.Children("prospect-lead", id); len(rows) > 0 {
			return id, rows[0]["id"].(string)
		}
	}
	t.Fatal("no prospect with a lead row")
	return "", ""
}

func leadName(t *testing.T, ce *countingEnv, cur connectors.Cursor, id string) (string, connectors.Cursor) {
	t.Helper()
	_, next, pages := scan(t, ce.c, cur, 0)
	for _, p := range pages {
		for _, r := range p.Records {
			if r.ID == id {
				rows := rowsOf(t, r, "leads")
				name, _ := rows[0]["lead_name"].(string)
				return name, next
			}
		}
	}
	t.Fatalf("prospect %s not pulled", id)
	return "", nil
}

// An edit of a child row that does not move the prospect's updated_at (the
// emulator's behaviour) is returned once the rows are older than their max
// age, never later.
func TestChildEditWithoutParentChangeIsSeenWithinMaxAge(t *testing.T) {
	t.Parallel()
	const maxAge = 10 * time.Minute
	ce := newCountingEnv(t, 30, maxAge)
	_, cur := ce.scanAll(t, nil)
	id, row := firstLead(t, ce)
	ce.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+row, map[string]any{"lead_name": "Edited Behind"})
	seen := false
	for step := time.Duration(0); step <= maxAge; step += time.Minute {
		var name string
		name, cur = leadName(t, ce, cur, id)
		if name == "Edited Behind" {
			seen = true
			break
		}
		ce.advance(time.Minute)
	}
	if !seen {
		t.Errorf("a child-row edit was not returned within ChildMaxAge (%s)", maxAge)
	}
}

// A prospect whose updated_at moved has its child tables read again on the
// next scan, so a row edited together with it is returned at once.
func TestChangedProspectHasItsChildTablesReadAgain(t *testing.T) {
	t.Parallel()
	ce := newCountingEnv(t, 30, time.Hour)
	_, cur := ce.scanAll(t, nil)
	ce.take()
	id, row := firstLead(t, ce)
	ce.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+row, map[string]any{"lead_name": "Edited With Parent"})
	ce.raw(t, http.MethodPatch, "/api/crm/prospect/"+id, map[string]any{"website": "https://moved.example"})
	ce.advance(time.Second)
	name, _ := leadName(t, ce, cur, id)
	if name != "Edited With Parent" {
		t.Errorf("lead row of a changed prospect: %q, want the edit", name)
	}
	if _, children := ce.take(); children != 2 {
		t.Errorf("scan after one prospect changed made %d child GETs, want 2 (its two tables)", children)
	}
}

// crmsync's own writes of child rows are never hidden by rows remembered
// before them: the next scan returns what Update wrote.
func TestOwnChildWritesAreReturnedByTheNextScan(t *testing.T) {
	t.Parallel()
	ce := newCountingEnv(t, 30, time.Hour)
	_, cur := ce.scanAll(t, nil)
	id, _ := firstLead(t, ce)
	got, err := ce.c.Update(context.Background(), EntityProspect, id, map[string]any{"leads": map[string]any{"0": map[string]any{"lead_name": "Written By Us"}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := rowsOf(t, got, "leads")[0]["lead_name"]; n != "Written By Us" {
		t.Fatalf("Update returned lead_name %v", n)
	}
	name, _ := leadName(t, ce, cur, id)
	if name != "Written By Us" {
		t.Errorf("next scan after Update returned lead_name %q, want what Update wrote", name)
	}
}

// A scan that read a prospect's rows before a concurrent Update changed
// them cannot store the older rows over the write.
func TestStaleReadCannotReplaceAWrite(t *testing.T) {
	t.Parallel()
	cc := newChildCache(time.Hour)
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	before := cc.begin() // a scan starts reading
	cc.forget("p1", at)  // an Update writes the rows
	cc.store(before, "p1", at, at, map[string]any{"leads": []any{"old"}})
	if f, ok := cc.lookup("p1", at, at); ok {
		t.Errorf("rows read before a write were kept: %v", f)
	}
	after := cc.begin()
	cc.store(after, "p1", at, at, map[string]any{"leads": []any{"new"}})
	if f, ok := cc.lookup("p1", at, at); !ok || fmt.Sprint(f["leads"]) != "[new]" {
		t.Errorf("rows read after the write not kept: %v %v", f, ok)
	}
	if _, ok := cc.lookup("p1", at.Add(time.Second), at); ok {
		t.Error("rows returned for another updated_at")
	}
}

// Rows of prospects no scan returns any more (deleted behind the client's
// back) are dropped once expired, when a scan completes.
func TestExpiredRowsAreDroppedAtTheEndOfAScan(t *testing.T) {
	t.Parallel()
	ce := newCountingEnv(t, 20, time.Hour)
	_, cur := ce.scanAll(t, nil)
	if n := ce.c.cache.size(); n != 20 {
		t.Fatalf("after the first scan %d prospects remembered, want 20", n)
	}
	gone := ce.emu.IDs()[0]
	ce.raw(t, http.MethodDelete, "/api/crm/prospect/"+gone, nil)
	ce.advance(2 * time.Hour)
	ce.scanAll(t, cur)
	if n := ce.c.cache.size(); n != 19 {
		t.Errorf("after a scan past the max age %d prospects remembered, want the 19 that exist", n)
	}
}
