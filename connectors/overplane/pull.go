package overplane

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
)

const cursorVersion = 1

// maxEmptySteps bounds how many list requests one Pull makes while every
// record it reads was already returned (many creates during a scan).
const maxEmptySteps = 16

// scanCursor is the Pull cursor: where a full scan of the newest-first list
// stands. It is stored as JSON by the engine.
type scanCursor struct {
	V int `json:"v"`
	// ScanStart is when the scan's first page was requested (client clock).
	ScanStart time.Time `json:"scan_start,omitzero"`
	// Offset is the list position just after the last page read.
	Offset int `json:"offset"`
	// LastCreated and LastID are the sort key of the last record returned:
	// the scan continues with records that sort after it.
	LastCreated time.Time `json:"last_created,omitzero"`
	LastID      string    `json:"last_id,omitempty"`
	// Total is the API's total with the last page (a drop hints at deletes).
	Total int `json:"total"`
	// Since, when set, restricts this scan to records updated at or after it
	// (a backfill --since); the scans after it are complete again.
	Since time.Time `json:"since,omitzero"`
	// Cap is the page size cap the server showed (a short page with
	// has_more), 0 while unknown.
	Cap int `json:"cap,omitempty"`
	// Unordered is set once the API returned a page out of the assumed
	// order; the scan then re-reads a fixed overlap instead.
	Unordered bool `json:"unordered,omitempty"`
	// Done marks a completed scan: the next Pull starts a new one.
	Done bool `json:"done,omitempty"`
}

// sortKey is a record's position key in the list: created_at desc, id desc.
type sortKey struct {
	created time.Time
	id      string
}

// after reports whether k sorts after o (comes later in the list).
func (k sortKey) after(o sortKey) bool {
	if !k.created.Equal(o.created) {
		return k.created.Before(o.created)
	}
	return k.id < o.id
}

// listReply is one list reply (prospects or a child table). Data is
// decoded by decodeList (the reply must hold a "data" array); has_more and
// total are optional.
type listReply struct {
	Data    []map[string]any `json:"-"`
	HasMore bool             `json:"has_more"`
	Total   *int             `json:"total"`
}

// decodeList reads a list reply of the GET to rawURL. A 200 without its
// "data" array (an error body, "data": null, ...) is a retryable error
// naming the request, never an empty list.
func decodeList(rawURL string, resp *httpx.Response) (*listReply, error) {
	var lr listReply
	data, err := httpx.DecodeList[map[string]any](System, httpx.OpName(http.MethodGet, rawURL), resp.Body, "data", &lr)
	if err != nil {
		return nil, err
	}
	lr.Data = data
	return &lr, nil
}

func (l *listReply) total() int {
	if l.Total == nil {
		return -1
	}
	return *l.Total
}

// readCursor decodes a stored cursor. A nil, unreadable or completed cursor
// starts a new scan: for a full scan that never loses a record.
func (c *Client) readCursor(cur connectors.Cursor, since time.Time) scanCursor {
	fresh := scanCursor{V: cursorVersion, ScanStart: c.now().UTC(), Total: -1}
	if len(cur) == 0 {
		if !since.IsZero() {
			fresh.Since = since.UTC()
		}
		return fresh
	}
	var sc scanCursor
	if err := json.Unmarshal(cur, &sc); err != nil || sc.V != cursorVersion {
		c.log.Warn().Msg("unreadable pull cursor; starting a new full scan")
		return fresh
	}
	if sc.Done {
		return fresh
	}
	return sc
}

// Pull returns the next page of the current full scan. Records carry their
// child rows unless Options.NoChildren is set.
func (c *Client) Pull(ctx context.Context, cur connectors.Cursor, opts connectors.PullOptions) (connectors.Page, error) {
	sc := c.readCursor(cur, opts.Since)
	limit := opts.PageSize
	if limit <= 0 {
		limit = c.pageSize
	}
	raws, total, done, err := c.scanStep(ctx, &sc, limit)
	if err != nil {
		return connectors.Page{}, err
	}
	recs := make([]connectors.Record, 0, len(raws))
	for _, raw := range raws {
		rec, err := toRecord(raw)
		if err != nil {
			return connectors.Page{}, c.fail("pull", connectors.Retryable, "%v", err)
		}
		if !sc.Since.IsZero() && rec.UpdatedAt.Before(sc.Since) {
			continue
		}
		recs = append(recs, rec)
	}
	if recs, err = c.attachAll(ctx, recs); err != nil {
		return connectors.Page{}, err
	}
	page := connectors.Page{Records: recs, Done: done, Total: total, FullScan: sc.Since.IsZero()}
	if done {
		sc = scanCursor{V: cursorVersion, ScanStart: sc.ScanStart, Total: total, Done: true}
		c.cache.prune(c.now())
	}
	if page.Next, err = json.Marshal(sc); err != nil {
		return connectors.Page{}, c.fail("pull", connectors.Rejected, "encode cursor: %v", err)
	}
	c.log.Debug().Int("records", len(recs)).Int("offset", sc.Offset).Int("total", total).Bool("done", done).Msg("pulled page")
	return page, nil
}

func (c *Client) list(ctx context.Context, offset, limit int) (*listReply, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}}
	return c.getList(ctx, prospectPath, q)
}

// getList reads one list reply of path; a 2xx without its list is sent
// again like a 5xx (see httpx.Client.Do), never taken as an empty list.
func (c *Client) getList(ctx context.Context, path string, q url.Values) (*listReply, error) {
	var lr *listReply
	_, err := c.doChecked(ctx, http.MethodGet, path, q, nil, func(resp *httpx.Response) error {
		var err error
		lr, err = decodeList(c.base+path, resp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return lr, nil
}

// pageKeys returns the sort keys of a page and whether the page is strictly
// in the assumed order.
func (c *Client) pageKeys(data []map[string]any) ([]sortKey, bool, error) {
	keys := make([]sortKey, len(data))
	ordered := true
	for i, raw := range data {
		id, _ := raw["id"].(string)
		if id == "" {
			return nil, false, c.fail("pull", connectors.Retryable, "list item without id")
		}
		t, err := parseTime(raw["created_at"])
		if err != nil {
			return nil, false, c.fail("pull", connectors.Retryable, "prospect %s created_at: %v", id, err)
		}
		keys[i] = sortKey{t, id}
		if i > 0 && !keys[i].after(keys[i-1]) {
			ordered = false
		}
	}
	return keys, ordered, nil
}

// scanStep reads the page that follows sc and advances sc. It returns the
// records not returned before in this scan, the API's total and whether the
// scan is complete.
//
// Invariant: every record that sorts after sc's last key and exists for the
// whole scan is still ahead. A continuation window starts `back` records
// before sc.Offset (so its first record is normally the last one returned);
// if its first record already sorts after the last key (deletes above us
// shifted the list up), the window is moved back until it overlaps.
func (c *Client) scanStep(ctx context.Context, sc *scanCursor, limit int) ([]map[string]any, int, bool, error) {
	overlap := max(c.overlap, 1)
	if sc.Cap > 1 {
		overlap = min(overlap, sc.Cap-1)
	}
	back, empty, widened := 0, 0, false
	if sc.LastID != "" {
		back = overlap
	}
	for {
		o := max(sc.Offset-back, 0)
		req := limit + (sc.Offset - o)
		if req > maxLimit {
			req = max(limit, maxLimit)
		}
		if sc.Cap > 0 {
			req = min(req, sc.Cap)
		}
		lr, err := c.list(ctx, o, req)
		if err != nil {
			return nil, -1, false, err
		}
		if lr.HasMore && len(lr.Data) > 0 && len(lr.Data) < req {
			sc.Cap = len(lr.Data)
		}
		keys, ordered, err := c.pageKeys(lr.Data)
		if err != nil {
			return nil, -1, false, err
		}
		total := lr.total()
		done := !lr.HasMore || len(lr.Data) == 0
		if sc.LastID == "" { // first page of the scan
			if !ordered {
				c.unordered(sc)
			}
			sc.advance(o, keys, total)
			return lr.Data, total, done, nil
		}
		if sc.Unordered || !ordered {
			c.unordered(sc)
			if drop := sc.Total - total; drop > 0 && o > 0 && !widened && sc.Total >= 0 && total >= 0 {
				widened, back = true, back+drop
				continue
			}
			sc.advance(o, keys, total)
			return lr.Data, total, done, nil
		}
		last := sortKey{sc.LastCreated, sc.LastID}
		if o > 0 && (len(keys) == 0 || keys[0].after(last)) {
			// The window may start past records we have not read yet.
			drop := 0
			if sc.Total >= 0 && total >= 0 {
				drop = max(sc.Total-total, 0)
			}
			back = max(2*back, back+drop+overlap, 1)
			sc.Total = total
			continue
		}
		out := make([]map[string]any, 0, len(keys))
		for i, k := range keys {
			if k.after(last) {
				out = append(out, lr.Data[i])
			}
		}
		if len(out) > 0 {
			sc.advance(o, keys, total)
		} else {
			sc.Offset, sc.Total = o+len(keys), total
		}
		if len(out) == 0 && !done && empty < maxEmptySteps {
			// Everything here was returned before (creates pushed records
			// down): read on, keeping a window that makes progress.
			empty++
			back = min(overlap, len(keys)-1)
			continue
		}
		return out, total, done, nil
	}
}

// advance moves sc past a window read at offset o.
func (sc *scanCursor) advance(o int, keys []sortKey, total int) {
	sc.Offset = o + len(keys)
	sc.Total = total
	if n := len(keys); n > 0 {
		sc.LastCreated, sc.LastID = keys[n-1].created, keys[n-1].id
	}
}

func (c *Client) unordered(sc *scanCursor) {
	if !sc.Unordered {
		c.log.Warn().Msg("prospect list is not ordered by created_at desc, id desc as assumed; scanning with a fixed overlap")
		sc.Unordered = true
	}
}
