package bluerocktel

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

// How Pull finds changes
//
// The list endpoints cannot filter on updated_at, so Pull sorts newest first
// (sort=-updated_at,-id: the id makes the order total, so records sharing a
// timestamp keep their places between pages) and reads from the top until
// it meets a record older than its bound (early stop, see "The overlap"),
// or the end of the list.
//
// Offset paging under concurrent writes: an edit or a create moves a record
// to the front, which can only push unread records further back (they are
// read again: duplicates, harmless). Only deletes (a conversion deletes the
// prospect) ahead of the read position pull unread records forward, into
// ranges already read, and they shift them by at most the drop in "total"
// between two answers. The scan therefore tracks the position from which
// every unread record lies (Offset); when total drops by d it moves that
// position back by d and, if the answer did not reach back that far,
// reads from there again. After a drop it also starts the next request d
// records early (a margin), so that steady deletes do not stall it.
// Laravel pages by page number, so per_page is chosen (at most the page
// size asked for) to make a page start at or just before the position
// wanted. This relies on the server's clock never going backwards.
//
// High-water mark: while a scan is in progress the cursor keeps the old
// mark plus the scan's position, so a crash mid-scan resumes where it
// stopped and still reads everything down to the old mark. Only the answer
// that ends the scan moves the mark, to the newest record of the scan's
// first answer: anything written after that has a later updated_at and is
// read by the next scan, even when this scan missed it.
//
// The overlap. A record becomes visible at most Options.Overlap (1 s)
// after its updated_at (writes committed late, clock skew between the web
// and database servers). A scan can therefore miss only records that
// became visible after its first request, and those are stamped after
// R-Overlap, where R is the server's time when the scan sent its first
// request (the reply's Date header, whole seconds, less the request's
// duration): every record stamped earlier was visible, and the scan reads
// everything that was visible at its start down to its bound, or the same
// record again with a later updated_at. The cursor keeps R with the
// high-water mark, and the next scan's bound is R-Overlap, inclusive, when
// that is at or before the mark; otherwise the next scan stops at the
// first record that is not after the mark (updated_at, then id), which
// in a quiet system is the first record of its first page. So the second
// scan after the last write reads one page and returns nothing. Without a
// Date header R is unknown and the bound is the mark less Overlap, as it
// always was. Duplicates are harmless: the engine is idempotent.
//
// A resumed scan (a stored mid-scan cursor) continues from the stored
// position with the stored page size; if total dropped meanwhile, it moves
// back as above. Records changed while the process was down sit at the
// front and are read by the following scan.

// cursorV1 is the JSON cursor.
type cursorV1 struct {
	V int `json:"v"`
	// Entity is the collection being scanned.
	Entity   string                  `json:"entity"`
	Entities map[string]*entityState `json:"entities"`
	// Totals holds the total each collection reported in the current pass
	// (prospects, then customers), so Page.Total covers the whole pull.
	Totals map[string]int `json:"totals,omitempty"`
}

// mark is a position in the newest-first order.
type mark struct {
	UpdatedAt time.Time `json:"updated_at"`
	ID        int64     `json:"id"`
}

type entityState struct {
	// HW is the high-water mark of the last completed scan.
	HW *mark `json:"hw,omitempty"`
	// Floor is the lower bound before the first completed scan
	// (PullOptions.Since); zero reads everything.
	Floor time.Time `json:"floor,omitzero"`
	// Read is R of the last completed scan: the server's time when it sent
	// its first request; nil when unknown (no Date header, older cursors).
	Read *time.Time `json:"read,omitempty"`
	Scan *scanState `json:"scan,omitempty"`
}

type scanState struct {
	// Offset: every record not read yet by this scan sat at this position
	// of the list or later when the last answer was produced.
	Offset int `json:"offset"`
	// PerPage is the largest page size to use (lowered when the server caps it).
	PerPage int `json:"per_page"`
	// Fixed is set when the server does not honour per_page exactly: pages
	// are then aligned on PerPage.
	Fixed bool `json:"fixed,omitempty"`
	// Margin is how many records before Offset the next request starts.
	Margin int `json:"margin"`
	// Bound: the scan stops at the first record updated before it.
	Bound *time.Time `json:"bound,omitempty"`
	// After: the scan stops at the first record that is not after it.
	// Neither Bound nor After means a full scan.
	After *mark `json:"after,omitempty"`
	// Read is the server's time when the scan sent its first request (see
	// "The overlap"); nil when the answer had no Date.
	Read *time.Time `json:"read,omitempty"`
	// Top is the newest record of the scan's first answer: the high-water
	// mark the scan sets when it ends.
	Top       *mark `json:"top,omitempty"`
	LastTotal int   `json:"last_total"` // total of the previous answer (-1 before it)
	Total     int   `json:"total"`      // total of the first answer (-1 before it)
}

func (c *Client) decodeCursor(cur connectors.Cursor, since time.Time) (*cursorV1, error) {
	st := &cursorV1{V: 1, Entities: map[string]*entityState{}}
	if len(cur) > 0 {
		if err := json.Unmarshal(cur, st); err != nil {
			return nil, fmt.Errorf("bluerocktel: unreadable cursor: %w", err)
		}
		if st.V != 1 {
			return nil, fmt.Errorf("bluerocktel: cursor version %d not supported", st.V)
		}
		if st.Entities == nil {
			st.Entities = map[string]*entityState{}
		}
	}
	for _, e := range c.o.Entities {
		if st.Entities[e] == nil {
			st.Entities[e] = &entityState{Floor: since.UTC()}
		}
	}
	if !slices.Contains(c.o.Entities, st.Entity) {
		st.Entity = c.o.Entities[0]
	}
	return st, nil
}

func (m *mark) after(o *mark) bool {
	if o == nil {
		return true
	}
	if !m.UpdatedAt.Equal(o.UpdatedAt) {
		return m.UpdatedAt.After(o.UpdatedAt)
	}
	return m.ID > o.ID
}

// Pull returns the next page of changed records of Options.Entities
// (prospects, then customers), newest first within each scan. See the
// comment at the top of pull.go for the algorithm and the cursor's
// guarantees.
func (c *Client) Pull(ctx context.Context, cur connectors.Cursor, opts connectors.PullOptions) (connectors.Page, error) {
	st, err := c.decodeCursor(cur, opts.Since)
	if err != nil {
		return connectors.Page{}, err
	}
	entity := st.Entity
	es := st.Entities[entity]
	if es.Scan == nil {
		size := opts.PageSize
		if size <= 0 {
			size = c.o.PageSize
		}
		es.Scan = c.newScan(es, size)
	}
	sc := es.Scan

	target := max(0, sc.Offset-min(sc.Margin, sc.PerPage/2))
	pageNo, size := pageFor(target, sc.PerPage)
	if sc.Fixed {
		pageNo, size = target/sc.PerPage+1, sc.PerPage
	}
	q := url.Values{}
	q.Set("sort", "-updated_at,-id")
	q.Set("per_page", strconv.Itoa(size))
	q.Set("page", strconv.Itoa(pageNo))
	op := "pull " + entity
	sent := time.Now()
	pg, err := c.listPage(ctx, entity, q, op)
	if err != nil {
		return connectors.Page{}, err
	}
	if sc.LastTotal < 0 {
		sc.Read = readTime(pg.date, time.Since(sent))
	}
	pp := pg.PerPage
	if pp <= 0 {
		pp = size
	}
	switch {
	case pp < size:
		sc.PerPage = pp // the server caps per_page lower than asked
	case pp > size:
		sc.PerPage, sc.Fixed = pp, true // the server ignores per_page
	}
	cp := pg.CurrentPage
	if cp <= 0 {
		cp = pageNo
	}
	start := (cp - 1) * pp
	end := start + len(pg.records)
	if sc.Total < 0 {
		sc.Total = pg.Total
	}
	if sc.Top == nil && start == 0 && len(pg.records) > 0 {
		sc.Top = markOf(pg.records[0])
	}
	drop := 0
	if sc.LastTotal >= 0 && pg.Total < sc.LastTotal {
		drop = sc.LastTotal - pg.Total
	}
	need := max(0, sc.Offset-drop) // every unread record is at need or later now

	var recs []connectors.Record
	stop := false
	for _, r := range pg.records {
		if sc.ends(r) {
			stop = true
			break
		}
		recs = append(recs, r)
	}
	if st.Totals == nil {
		st.Totals = map[string]int{}
	}
	if sc.Total >= 0 {
		st.Totals[entity] = sc.Total
	}
	total := 0
	for _, n := range st.Totals {
		total += n
	}
	page := connectors.Page{Records: recs, Total: total, FullScan: sc.Bound == nil && sc.After == nil}
	covered := start <= need
	sc.LastTotal, sc.Margin = pg.Total, drop
	switch {
	case covered && (stop || end >= pg.Total || len(pg.records) == 0):
		if sc.Top != nil && sc.Top.after(es.HW) {
			es.HW = sc.Top
		}
		es.Read = sc.Read
		es.Scan = nil
		i := indexOf(c.o.Entities, entity)
		if i+1 < len(c.o.Entities) {
			st.Entity = c.o.Entities[i+1]
		} else {
			st.Entity = c.o.Entities[0]
			st.Totals = nil // the next pull is a new pass
			page.Done = true
		}
	case covered:
		sc.Offset = max(end, need)
	default:
		// Deletes ahead of us moved unread records in front of this
		// answer: read again from where they can be.
		c.log.Debug().Str("entity", entity).Int("dropped", drop).Int("offset", need).Msg("total dropped while paging; reading back")
		sc.Offset = need
	}
	next, err := json.Marshal(st)
	if err != nil {
		return connectors.Page{}, fmt.Errorf("bluerocktel: encode cursor: %w", err)
	}
	page.Next = next
	return page, nil
}

// newScan starts a scan of one collection: down to the bound the last
// scan's read time allows (see "The overlap"), down to Floor before the
// first completed scan, or a full scan.
func (c *Client) newScan(es *entityState, size int) *scanState {
	sc := &scanState{PerPage: size, LastTotal: -1, Total: -1}
	switch {
	case es.HW != nil && es.Read == nil:
		b := es.HW.UpdatedAt.Add(-c.o.Overlap)
		sc.Bound = &b
	case es.HW != nil:
		b := es.Read.Add(-c.o.Overlap)
		if b.After(es.HW.UpdatedAt) {
			hw := *es.HW
			sc.After = &hw
		} else {
			sc.Bound = &b
		}
	case !es.Floor.IsZero():
		b := es.Floor
		sc.Bound = &b
	}
	return sc
}

// ends reports whether r lies past the scan's bound: the scan stops there.
func (sc *scanState) ends(r connectors.Record) bool {
	switch {
	case sc.Bound != nil:
		return r.UpdatedAt.Before(*sc.Bound)
	case sc.After != nil:
		return !markOf(r).after(sc.After)
	}
	return false
}

// readTime is the server's time when a request was sent, as its reply
// shows it: the Date (whole seconds, at or before the reply was made)
// less how long the request took, so never after the server read the
// data; nil without a Date.
func readTime(date time.Time, took time.Duration) *time.Time {
	if date.IsZero() {
		return nil
	}
	r := date.Add(-took)
	return &r
}

// pageFor picks per_page (between maxSize/2 and maxSize) and a page number
// so that the page starts at or before target and reaches as far past it
// as possible (Laravel's offset is (page-1)*per_page).
func pageFor(target, maxSize int) (page, size int) {
	if target <= 0 {
		return 1, maxSize
	}
	best := -1
	for s := maxSize; s >= max(1, maxSize/2); s-- {
		if end := target/s*s + s; end > best {
			best, page, size = end, target/s+1, s
		}
	}
	return page, size
}

func markOf(r connectors.Record) *mark {
	id, _ := strconv.ParseInt(r.ID, 10, 64)
	return &mark{UpdatedAt: r.UpdatedAt, ID: id}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
