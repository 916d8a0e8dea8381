package bluerocktel

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

func TestPullEverythingOnceBothNamings(t *testing.T) {
	for _, n := range bothNamings {
		t.Run(string(n), func(t *testing.T) {
			e := newEnv(t, EmulatorOptions{Records: 250, Customers: 45, Naming: n}, nil)
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

func TestIncrementalPullReturnsEdited(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 300}, nil)
	_, cur, _ := pullAll(t, e.cli, nil, 50)
	ctx := context.Background()
	if _, err := e.cli.Update(ctx, EntityProspects, "17", map[string]any{"comment": "new budget"}); err != nil {
		t.Fatal(err)
	}
	e.emu.Edit(EntityProspects, 200, map[string]any{"phone": "+33 9 99"})
	recs, _, pages := pullAll(t, e.cli, cur, 50)
	ids := idSet(recs, EntityProspects)
	if ids["17"] == 0 || ids["200"] == 0 {
		t.Fatalf("edited records missing: %v", ids)
	}
	if len(recs) > 20 || len(pages) != 2 || pages[0].FullScan {
		t.Errorf("incremental pull read %d records over %d pages", len(recs), len(pages))
	}
	for _, r := range recs {
		if r.ID == "200" && r.Fields["phone"] != "+33 9 99" {
			t.Errorf("stale record: %v", r.Fields["phone"])
		}
	}
}

func TestPullSinceStartsThere(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 100}, nil)
	since := seedBase.Add(90 * time.Minute)
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
	if len(recs) == 0 || len(recs) > 12 {
		t.Fatalf("since pull read %d records", len(recs))
	}
	for _, r := range recs {
		if r.UpdatedAt.Before(since) {
			t.Errorf("record %s older than since", r.ID)
		}
	}
}

func TestPullResumeFromSavedCursor(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 230}, nil)
	ctx := context.Background()
	var cur connectors.Cursor
	seen := map[string]int{}
	for i := 0; i < 2; i++ {
		pg, err := e.cli.Pull(ctx, cur, connectors.PullOptions{PageSize: 25})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range pg.Records {
			seen[r.ID]++
		}
		cur = pg.Next
	}
	// The stored cursor must not have moved the high-water mark mid-scan.
	var st cursorV1
	if err := json.Unmarshal(cur, &st); err != nil || st.V != 1 {
		t.Fatalf("cursor %s: %v", cur, err)
	}
	if st.Entities[EntityProspects].HW != nil || st.Entities[EntityProspects].Scan == nil {
		t.Fatalf("mid-scan cursor moved the mark: %s", cur)
	}
	// "Crash": a new client (new process) resumes from the stored bytes.
	c2 := e.newClient(t, nil)
	recs, _, _ := pullAll(t, c2, cur, 25)
	for _, r := range recs {
		seen[r.ID]++
	}
	if len(seen) != 230 {
		t.Fatalf("after resume saw %d of 230", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("id %s seen %d times without any change", id, n)
		}
	}
}

// A scan interrupted after page 2, while others edit, create and delete,
// then resumed from the stored cursor, loses no record.
func TestPullInterruptedScanWithChangesLosesNone(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 400}, nil)
	ctx := context.Background()
	_, cur, _ := pullAll(t, e.cli, nil, 100) // establish a high-water mark
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

func TestPullFiveThousandTiesLoseNothing(t *testing.T) {
	ts := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, EmulatorOptions{Records: 5000, SeedTimestamp: ts}, nil)
	recs, cur, _ := pullAll(t, e.cli, nil, 37)
	if ids := idSet(recs, ""); len(ids) != 5000 {
		t.Fatalf("distinct %d of 5000", len(ids))
	}
	// Edits on the same frozen timestamp are still found by the next scan.
	e.emu.Freeze(ts)
	e.emu.Edit(EntityProspects, 4321, map[string]any{"comment": "tie"})
	e.emu.Unfreeze()
	recs, _, _ = pullAll(t, e.cli, cur, 500)
	found := false
	for _, r := range recs {
		if r.ID == "4321" && r.Fields["comment"] == "tie" {
			found = true
		}
	}
	if !found {
		t.Error("edit on a tied timestamp missed")
	}
}

// Records edited while a scan pages jump to the front, behind the reader;
// the scan that follows must return them (nothing lost across the two).
func TestPullEditsDuringPagingLoseNothing(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 600}, nil)
	e.emu.EditDuringPaging(4) // the oldest (unread) records jump to the front
	first, cur, _ := pullAll(t, e.cli, nil, 25)
	e.emu.EditDuringPaging(0)
	second, _, _ := pullAll(t, e.cli, cur, 25)
	latest := map[string]string{}
	for _, r := range append(first, second...) {
		c, _ := r.Fields["comment"].(string)
		latest[r.ID] = c
	}
	if len(latest) != 600 {
		t.Fatalf("two scans saw %d of 600", len(latest))
	}
	edited := 0
	for _, id := range e.emu.IDs(EntityProspects) {
		r, _ := e.emu.Record(EntityProspects, id)
		c, _ := r["comment"].(string)
		if strings.HasPrefix(c, "edited") {
			edited++
			if latest[itoa64(id)] != c {
				t.Errorf("record %d: last pulled comment %q, server has %q", id, latest[itoa64(id)], c)
			}
		}
	}
	if edited == 0 {
		t.Fatal("nothing was edited during paging")
	}
}

func TestPullDeletesDuringPagingLoseNothing(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 500}, nil)
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
	e := newEnv(t, EmulatorOptions{Records: 1}, nil)
	if _, err := e.cli.Pull(context.Background(), connectors.Cursor(`{"v":9}`), connectors.PullOptions{}); err == nil {
		t.Error("cursor of another version accepted")
	}
}

func TestPullWithServerPageCap(t *testing.T) {
	e := newEnv(t, EmulatorOptions{Records: 170, PageCap: 30}, nil)
	recs, _, pages := pullAll(t, e.cli, nil, 100)
	if ids := idSet(recs, EntityProspects); len(ids) != 170 || len(recs) != 170 {
		t.Fatalf("distinct %d / records %d of 170", len(ids), len(recs))
	}
	if len(pages) < 6 {
		t.Errorf("%d pages for 170 records at a cap of 30", len(pages))
	}
}

// A server that ignores per_page (always 15) must not stall the scan, even
// while records are deleted ahead of it.
func TestPullServerIgnoringPerPage(t *testing.T) {
	emu := NewEmulator(EmulatorOptions{Records: 300})
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
