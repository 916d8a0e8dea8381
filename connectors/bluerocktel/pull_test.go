package bluerocktel

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
)

// Paging under faults, resume, incremental pulls, page caps, edits while
// paging and 5,000 ties are contract-suite cases (contract_test.go). These
// tests are BlueRockTel's own: both collections in one pass, both
// spellings, the early stop, Since, and the offset arithmetic of
// newest-first scans under deletes and a server that ignores per_page.

func TestPullEverythingOnceBothNamings(t *testing.T) {
	t.Parallel()
	for _, n := range bothNamings {
		t.Run(string(n), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, brtemu.Options{Records: 250, Customers: 45, Naming: emuNaming(n)}, nil)
			recs, cur, pages := pullAll(t, e.cli, nil, 20)
			if ids := idSet(recs, EntityProspects); len(ids) != 250 {
				t.Fatalf("distinct prospects %d, want 250", len(ids))
			}
			if ids := idSet(recs, EntityCustomers); len(ids) != 45 {
				t.Fatalf("distinct customers %d, want 45", len(ids))
			}
			if len(recs) != 295 {
				t.Fatalf("%d records for 295", len(recs))
			}
			for i, p := range pages {
				if !p.FullScan || (p.Done != (i == len(pages)-1)) {
					t.Fatalf("page %d: FullScan=%v Done=%v", i, p.FullScan, p.Done)
				}
				for _, r := range p.Records {
					// Total covers the collections read so far in this pass.
					if want := map[string]int{EntityProspects: 250, EntityCustomers: 295}[r.Entity]; p.Total != want {
						t.Fatalf("%s page Total=%d, want %d", r.Entity, p.Total, want)
					}
				}
			}
			// Prospects first, then customers; newest first within each.
			for i := 1; i < len(recs); i++ {
				if recs[i].Entity == recs[i-1].Entity && recs[i].UpdatedAt.After(recs[i-1].UpdatedAt) {
					t.Fatal("records not newest first")
				}
				if recs[i].Entity == EntityProspects && recs[i-1].Entity == EntityCustomers {
					t.Fatal("entities interleaved")
				}
			}
			if _, ok := recs[0].Fields["main_contact_last_name"]; !ok {
				t.Errorf("fields not snake_case: %v", recs[0].Fields)
			}
			// Nothing changed: the next pull is one page inside the overlap window.
			again, _, pages := pullAll(t, e.cli, cur, 20)
			if len(pages) != 2 || len(again) > 20 || pages[0].FullScan {
				t.Errorf("idle incremental pull: %d pages, %d records, full=%v", len(pages), len(again), pages[0].FullScan)
			}
		})
	}
}

func TestPullSinceStartsThere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 100}, nil)
	// Since is the 10th newest record's updated_at: Pull starts there.
	var ups []time.Time
	for _, id := range e.emu.IDs(EntityProspects) {
		r, _ := e.emu.Record(EntityProspects, id)
		ups = append(ups, r["updated_at"].(time.Time))
	}
	slices.SortFunc(ups, func(a, b time.Time) int { return b.Compare(a) })
	since := ups[9]
	var recs []connectors.Record
	var cur connectors.Cursor
	for {
		pg, err := e.cli.Pull(context.Background(), cur, connectors.PullOptions{Since: since, PageSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		if pg.FullScan {
			t.Error("a pull since a time is not a full scan")
		}
		recs = append(recs, pg.Records...)
		cur = pg.Next
		if pg.Done {
			break
		}
	}
	want := 0
	for _, u := range ups {
		if !u.Before(since) {
			want++
		}
	}
	if len(recs) != want {
		t.Fatalf("since pull read %d records, want the %d updated at or after since", len(recs), want)
	}
	for _, r := range recs {
		if r.UpdatedAt.Before(since) {
			t.Errorf("record %s older than since", r.ID)
		}
	}
}

// A scan interrupted after page 2, while others edit, create and delete,
// then resumed from the stored cursor, loses no record.
func TestPullInterruptedScanWithChangesLosesNone(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 400}, nil)
	ctx := context.Background()
	_, cur, _ := pullAll(t, e.cli, nil, 100) // establish a high-water mark
	var st0 cursorV1
	if err := json.Unmarshal(cur, &st0); err != nil || st0.Entities[EntityProspects].HW == nil {
		t.Fatalf("cursor after a complete scan has no high-water mark: %s", cur)
	}
	hw := st0.Entities[EntityProspects].HW.UpdatedAt
	// Many changes since: 150 edits spread over the table.
	for id := int64(1); id <= 400; id += 3 {
		if id%2 == 0 {
			e.emu.Edit(EntityProspects, id, map[string]any{"comment": "wave 1"})
		}
	}
	for id := int64(1); id <= 400; id += 4 {
		e.emu.Edit(EntityProspects, id, map[string]any{"comment": "wave 2"})
	}
	changed := map[string]bool{}
	for _, id := range e.emu.IDs(EntityProspects) {
		r, _ := e.emu.Record(EntityProspects, id)
		if r["comment"] == "wave 1" || r["comment"] == "wave 2" {
			changed[itoa64(id)] = true
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		pg, err := e.cli.Pull(ctx, cur, connectors.PullOptions{PageSize: 15})
		if err != nil {
			t.Fatal(err)
		}
		if pg.Done {
			t.Fatal("scan ended too early for this test")
		}
		for _, r := range pg.Records {
			seen[r.ID] = true
		}
		cur = pg.Next
	}
	// The stored mid-scan cursor keeps the old high-water mark and the
	// scan's position: only the answer that ends a scan moves the mark.
	var st cursorV1
	if err := json.Unmarshal(cur, &st); err != nil || st.V != 1 {
		t.Fatalf("cursor %s: %v", cur, err)
	}
	if es := st.Entities[EntityProspects]; es.HW == nil || !es.HW.UpdatedAt.Equal(hw) || es.Scan == nil || es.Scan.Offset == 0 {
		t.Fatalf("mid-scan cursor moved the mark or lost the position: %s", cur)
	}
	// While the process is down: deletes of already-read records (shifting
	// the unread ones up), new records and more edits.
	deleted := map[string]bool{}
	for id := range seen {
		if len(deleted) == 12 {
			break
		}
		var n int64
		_ = json.Unmarshal([]byte(id), &n)
		e.emu.Remove(EntityProspects, n)
		deleted[id] = true
	}
	c2 := e.newClient(t, nil)
	recs, _, _ := pullAll(t, c2, cur, 15)
	for _, r := range recs {
		seen[r.ID] = true
	}
	for id := range changed {
		if !seen[id] && !deleted[id] {
			t.Errorf("changed record %s lost", id)
		}
	}
}

func TestPullDeletesDuringPagingLoseNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 500}, nil)
	var calls atomic.Int32
	next := int64(500)
	// After each page another user deletes the three newest records, which
	// the client has already read: unread records slide up a page.
	e.emu.OnList(func(string) {
		calls.Add(1)
		for k := 0; k < 3 && next > 0; next-- {
			if e.emu.Remove(EntityProspects, next) {
				k++
			}
		}
	})
	recs, _, pages := pullAll(t, e.cli, nil, 20)
	e.emu.OnList(nil)
	got := idSet(recs, "")
	for _, id := range e.emu.IDs(EntityProspects) {
		if got[itoa64(id)] == 0 {
			t.Errorf("surviving record %d never read", id)
		}
	}
	if len(pages) < 5 {
		t.Errorf("only %d pages: no step back happened", len(pages))
	}
}

func TestPullRejectsForeignCursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 1}, nil)
	if _, err := e.cli.Pull(context.Background(), connectors.Cursor(`{"v":9}`), connectors.PullOptions{}); err == nil {
		t.Error("cursor of another version accepted")
	}
}

// A server that ignores per_page (always 15) must not stall the scan, even
// while records are deleted ahead of it.
func TestPullServerIgnoringPerPage(t *testing.T) {
	t.Parallel()
	emu := brtemu.New(brtemu.Options{Records: 300})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("per_page") {
			q.Set("per_page", "15")
			r.URL.RawQuery = q.Encode()
		}
		emu.ServeHTTP(w, r)
	}))
	defer srv.Close()
	next := int64(300)
	emu.OnList(func(string) {
		for k := 0; k < 2 && next > 0; next-- {
			if emu.Remove(EntityProspects, next) {
				k++
			}
		}
	})
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP()})
	if err != nil {
		t.Fatal(err)
	}
	recs, _, _ := pullAll(t, c, nil, 40)
	got := idSet(recs, "")
	for _, id := range emu.IDs(EntityProspects) {
		if got[itoa64(id)] == 0 {
			t.Errorf("record %d never read", id)
		}
	}
}

func TestPageForStartsAtOrBeforeTarget(t *testing.T) {
	t.Parallel()
	for _, max := range []int{1, 2, 15, 100} {
		for target := 0; target < 1000; target++ {
			page, size := pageFor(target, max)
			start := (page - 1) * size
			if size < 1 || size > max || start > target || start+size <= target {
				t.Fatalf("pageFor(%d,%d) = page %d size %d", target, max, page, size)
			}
		}
	}
}
