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
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
)

func TestPullSinceFiltersByUpdatedAtAndIsNotFullScan(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 40}, nil)
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
	t.Parallel()
	cases := []struct {
		name     string
		records  int
		ties     int
		page     int
		edits    emulator.PagingEdits
		freezeAt bool
	}{
		// Creates land on the tied timestamp among the records still
		// ahead (ids are random); the contract suite covers ties and edits
		// while paging only apart.
		{"1000 on one timestamp, writes share it", 1000, 1000, 50, emulator.PagingEdits{Creates: 3, Updates: 3, Deletes: 6}, true},
		{"deletes outpace the overlap", 2000, 1, 10, emulator.PagingEdits{Deletes: 6}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, emulator.Options{Records: tc.records, SeedTieGroup: tc.ties}, func(o *Options) { o.NoChildren = true })
			if tc.freezeAt {
				e.emu.Freeze(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) // where the seed starts
			}
			before := e.emu.IDs()
			e.emu.SetPagingEdits(tc.edits)
			seen, _, _ := scan(t, e.c, nil, tc.page)
			e.emu.SetPagingEdits(emulator.PagingEdits{})
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
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 300, SeedTieGroup: 1}, func(o *Options) { o.NoChildren = true; o.Overlap = 2 })
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
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 10}, func(o *Options) { o.NoChildren = true })
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
	t.Parallel()
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
	t.Parallel()
	for _, pageCap := range []int{2, 3, 7} {
		e := newEnv(t, emulator.Options{Records: 60, PageCap: pageCap}, func(o *Options) { o.NoChildren = true })
		before := e.emu.IDs()
		e.emu.SetPagingEdits(emulator.PagingEdits{Creates: 1, Deletes: 1})
		seen, _, _ := scan(t, e.c, nil, 0)
		e.emu.SetPagingEdits(emulator.PagingEdits{})
		for _, id := range intersect(before, e.emu.IDs()) {
			if seen[id] == 0 {
				t.Fatalf("cap %d: %s lost", pageCap, id)
			}
		}
	}
}

func TestPullQuietScanNeedsNoExtraRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 1000}, func(o *Options) { o.NoChildren = true })
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
