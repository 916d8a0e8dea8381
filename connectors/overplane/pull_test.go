package overplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
)

func TestPullPagesToEndEachRecordOnce(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 250}, nil)
	seen, cur, pages := scan(t, e.c, nil, 37)
	if len(seen) != 250 {
		t.Fatalf("distinct ids = %d, want 250", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times on a quiet store", id, n)
		}
	}
	for _, p := range pages {
		if !p.FullScan || p.Total != 250 {
			t.Fatalf("page FullScan=%v Total=%d, want true/250", p.FullScan, p.Total)
		}
	}
	var c scanCursor
	if err := json.Unmarshal(cur, &c); err != nil || c.V != 1 || !c.Done {
		t.Fatalf("final cursor %s: want a versioned done cursor", cur)
	}
}

func TestPullResumesFromSavedCursorAfterRestart(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 120}, nil)
	seen := map[string]int{}
	var cur connectors.Cursor
	for i := 0; i < 2; i++ {
		p, err := e.c.Pull(context.Background(), cur, connectors.PullOptions{PageSize: 25})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seen[r.ID]++
		}
		cur = p.Next
	}
	saved := append([]byte(nil), cur...) // what the engine would store
	// A new process: a new client with the stored cursor.
	c2, err := New(Options{BaseURL: e.srv.URL, Token: "dev-token", HTTP: newHTTP(2), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	rest, _, _ := scan(t, c2, saved, 25)
	for id, n := range rest {
		seen[id] += n
	}
	if len(seen) != 120 {
		t.Fatalf("distinct ids after resume = %d, want 120", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times", id, n)
		}
	}
}

func TestPullAfterDoneStartsNewScanWithEdits(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 60}, nil)
	_, done, _ := scan(t, e.c, nil, 50)
	id := e.emu.IDs()[42]
	if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect/"+id, map[string]any{"industry": "Quantum Widgets"}); st != 200 {
		t.Fatalf("PATCH status %d", st)
	}
	p, err := e.c.Pull(context.Background(), done, connectors.PullOptions{PageSize: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 50 || p.Done {
		t.Fatalf("first page of the next scan: %d records, done=%v; want 50 from offset 0", len(p.Records), p.Done)
	}
	seen, _, _ := scan(t, e.c, p.Next, 50)
	for _, r := range p.Records {
		seen[r.ID]++
	}
	if len(seen) != 60 {
		t.Fatalf("second scan saw %d ids, want 60", len(seen))
	}
	got, err := e.c.Get(context.Background(), EntityProspect, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fields["industry"] != "Quantum Widgets" || !got.UpdatedAt.After(got.CreatedAt) {
		t.Fatalf("edited record: industry=%v updated=%v created=%v", got.Fields["industry"], got.UpdatedAt, got.CreatedAt)
	}
	// The edit shows up in the new scan's records.
	found := false
	all := []connectors.Record{}
	cur := connectors.Cursor(done)
	for {
		pg, err := e.c.Pull(context.Background(), cur, connectors.PullOptions{PageSize: 50})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, pg.Records...)
		cur = pg.Next
		if pg.Done {
			break
		}
	}
	for _, r := range all {
		if r.ID == id && r.Fields["industry"] == "Quantum Widgets" {
			found = true
		}
	}
	if !found {
		t.Fatal("the edited record did not come back with its new value")
	}
}

func TestPullSinceFiltersByUpdatedAtAndIsNotFullScan(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 40}, nil)
	since := time.Now().Add(-time.Minute)
	id := e.emu.IDs()[30]
	e.raw(t, http.MethodPatch, "/api/crm/prospect/"+id, map[string]any{"fax": "1"})
	p, err := e.c.Pull(context.Background(), nil, connectors.PullOptions{PageSize: 100, Since: since})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 1 || p.Records[0].ID != id || p.FullScan || !p.Done {
		t.Fatalf("since pull: %d records, fullscan=%v done=%v; want only %s", len(p.Records), p.FullScan, p.Done, id)
	}
	// The scan after it is complete again.
	p, err = e.c.Pull(context.Background(), p.Next, connectors.PullOptions{PageSize: 100})
	if err != nil || len(p.Records) != 40 || !p.FullScan {
		t.Fatalf("next scan: %d records, fullscan=%v, err=%v", len(p.Records), p.FullScan, err)
	}
}

func TestPull5000OnOneTimestampSmallPagesLoseNothing(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 5000, SeedTieGroup: 5000}, func(o *Options) { o.NoChildren = true })
	seen, _, _ := scan(t, e.c, nil, 100)
	if len(seen) != 5000 {
		t.Fatalf("distinct ids = %d, want 5000", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("%s seen %d times with nothing changing", id, n)
		}
	}
}

// wholeScan returns the ids present before and after, i.e. those that
// existed for the whole scan (deleted ids never come back).
func intersect(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if in[x] {
			out = append(out, x)
		}
	}
	return out
}

func TestPullEditsDuringPagingLoseNothing(t *testing.T) {
	cases := []struct {
		name     string
		records  int
		ties     int
		page     int
		edits    PagingEdits
		freezeAt bool
	}{
		{"5000 on one timestamp, writes share it", 5000, 5000, 100, PagingEdits{Creates: 3, Updates: 3, Deletes: 6}, true},
		{"distinct timestamps, small pages", 1200, 3, 20, PagingEdits{Creates: 2, Updates: 2, Deletes: 3}, false},
		{"deletes outpace the overlap", 2000, 1, 10, PagingEdits{Deletes: 6}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, EmulatorOptions{Records: tc.records, SeedTieGroup: tc.ties}, func(o *Options) { o.NoChildren = true })
			if tc.freezeAt {
				e.emu.Freeze(seedBase)
			}
			before := e.emu.IDs()
			e.emu.SetPagingEdits(tc.edits)
			seen, _, _ := scan(t, e.c, nil, tc.page)
			e.emu.SetPagingEdits(PagingEdits{})
			created, updated, deleted := e.emu.PagingEdited()
			if len(deleted) == 0 || (tc.edits.Creates > 0 && len(created) == 0) || (tc.edits.Updates > 0 && len(updated) == 0) {
				t.Fatalf("paging edits did not happen: %d created, %d updated, %d deleted", len(created), len(updated), len(deleted))
			}
			whole := intersect(before, e.emu.IDs())
			for _, id := range whole {
				if seen[id] == 0 {
					t.Fatalf("%s existed for the whole scan but was not pulled (%d deletes, %d creates)", id, len(deleted), len(created))
				}
			}
			t.Logf("%d whole-scan records all seen; %d distinct pulled; %d created, %d deleted", len(whole), len(seen), len(created), len(deleted))
		})
	}
}

func TestPullDeletesAboveThePositionBeyondTheOverlap(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 300, SeedTieGroup: 1}, func(o *Options) { o.NoChildren = true; o.Overlap = 2 })
	before := e.emu.IDs()
	seen := map[string]int{}
	var cur connectors.Cursor
	for i := 0; ; i++ {
		p, err := e.c.Pull(context.Background(), cur, connectors.PullOptions{PageSize: 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seen[r.ID]++
		}
		if p.Done {
			break
		}
		cur = p.Next
		// Delete 15 records we already read (all above our position).
		ids := e.emu.IDs()
		for j := 0; j < 15 && j < len(ids); j++ {
			if seen[ids[j]] > 0 {
				e.raw(t, http.MethodDelete, "/api/crm/prospect/"+ids[j], nil)
			}
		}
	}
	for _, id := range intersect(before, e.emu.IDs()) {
		if seen[id] == 0 {
			t.Fatalf("%s was skipped after deletes above the scan position", id)
		}
	}
}

func TestPullUnreadableCursorStartsNewScan(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 10}, func(o *Options) { o.NoChildren = true })
	for _, cur := range []string{`garbage`, `{"v":99}`} {
		p, err := e.c.Pull(context.Background(), connectors.Cursor(cur), connectors.PullOptions{})
		if err != nil || len(p.Records) != 10 || !p.Done {
			t.Fatalf("cursor %s: %d records, err %v", cur, len(p.Records), err)
		}
	}
}

// TestPullUnassumedOrderStillLosesNothing serves a list whose ties are
// ordered by ascending id (not the assumed descending): the client must
// notice and degrade to overlap re-reads without losing records.
func TestPullUnassumedOrderStillLosesNothing(t *testing.T) {
	type item struct{ ID, At string }
	var items []item
	for i := 0; i < 300; i++ {
		items = append(items, item{fmt.Sprintf("prospect_%05d", i), "2026-01-01T00:00:00Z"})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		if off > 0 { // someone deleted one record we already read
			items = append(items[:0], items[1:]...)
		}
		lo, hi := min(off, len(items)), min(off+limit, len(items))
		data := []map[string]any{}
		for _, it := range items[lo:hi] {
			data = append(data, map[string]any{"id": it.ID, "created_at": it.At, "updated_at": it.At, "company": "X"})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "has_more": hi < len(items), "total": len(items)})
	}))
	defer srv.Close()
	c, _ := New(Options{BaseURL: srv.URL, Token: "tok-123", HTTP: newHTTP(0), NoChildren: true, Logger: zerolog.Nop()})
	seen, _, _ := scan(t, c, nil, 25)
	mu.Lock()
	defer mu.Unlock()
	for _, it := range items { // survivors
		if seen[it.ID] == 0 {
			t.Fatalf("%s lost in degraded mode", it.ID)
		}
	}
}

func TestPullAdaptsToASmallServerPageCap(t *testing.T) {
	for _, pageCap := range []int{2, 3, 7} {
		e := newEnv(t, EmulatorOptions{Records: 60, PageCap: pageCap}, func(o *Options) { o.NoChildren = true })
		before := e.emu.IDs()
		e.emu.SetPagingEdits(PagingEdits{Creates: 1, Deletes: 1})
		seen, _, _ := scan(t, e.c, nil, 0)
		e.emu.SetPagingEdits(PagingEdits{})
		for _, id := range intersect(before, e.emu.IDs()) {
			if seen[id] == 0 {
				t.Fatalf("cap %d: %s lost", pageCap, id)
			}
		}
	}
}

func TestPullQuietScanNeedsNoExtraRequests(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 1000}, func(o *Options) { o.NoChildren = true })
	_, _, pages := scan(t, e.c, nil, 0)
	if len(pages) != 11 { // 100, then 95 new per page (5 overlap) ...
		t.Fatalf("%d pages for 1000 records at 100 per request", len(pages))
	}
	for _, p := range pages[1 : len(pages)-1] {
		if len(p.Records) != 95 {
			t.Fatalf("continuation page has %d records, want 95", len(p.Records))
		}
	}
}
