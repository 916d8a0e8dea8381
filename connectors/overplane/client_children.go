package overplane

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/logkey"
)

// childInput is what a caller asked for one child table in Create or Update.
//
// List form ([]any of row objects, as Pull returns them): row i is matched
// to the existing row with the same "id", else to the next existing row by
// position (rows without an id only), and only the attributes that differ
// are PATCHed; rows without a match (or with an id that no longer exists)
// are created. When every row carries an id, the list is complete:
// existing rows missing from it are deleted and the rows are reordered to
// match. When some rows lack an id (what a mapping produces), rows beyond
// the list are kept. An empty list deletes every row.
//
// Index form (an object keyed "0", "1", ..., as a mapping's dotted path
// "leads.0.email" produces): each entry patches the row at that position
// (0-based, idx order) or, past the end, creates one; a null entry deletes
// the row at that position. Nothing else is touched.
type childInput struct {
	list    []map[string]any
	byIndex map[int]map[string]any
	isIndex bool
}

// childRows parses the value given for a child table field.
func (c *Client) childRows(op, field string, v any) (*childInput, error) {
	norm, err := normalizeJSON(v)
	if err != nil {
		return nil, c.fail(op, connectors.Rejected, "%s: %v", field, err)
	}
	switch x := norm.(type) {
	case nil:
		return &childInput{list: []map[string]any{}}, nil
	case []any:
		in := &childInput{list: make([]map[string]any, 0, len(x))}
		for i, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, c.fail(op, connectors.Rejected, "%s[%d]: want an object, got %s", field, i, valueString(e))
			}
			in.list = append(in.list, m)
		}
		return in, nil
	case map[string]any:
		in := &childInput{isIndex: true, byIndex: map[int]map[string]any{}}
		for k, e := range x {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 {
				return nil, c.fail(op, connectors.Rejected, "%s.%s: want a 0-based row index", field, k)
			}
			m, ok := e.(map[string]any)
			if e != nil && !ok {
				return nil, c.fail(op, connectors.Rejected, "%s.%s: want an object or null", field, k)
			}
			in.byIndex[i] = m
		}
		return in, nil
	}
	return nil, c.fail(op, connectors.Rejected, "%s: want a list of rows or an object keyed by row index", field)
}

// valueString renders a value for an error message.
func valueString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// normalizeJSON round-trips v through encoding/json so that values compare
// like decoded API values (float64 numbers, map[string]any objects).
func normalizeJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

func childURL(ck *childKind, id string) string { return ck.path + "/" + url.PathEscape(id) }

// listChildren reads every row of ck under parent, in idx order.
func (c *Client) listChildren(ctx context.Context, ck *childKind, parent string) ([]map[string]any, error) {
	var out []map[string]any
	for {
		q := url.Values{"parent_id": {parent}, "limit": {strconv.Itoa(maxLimit)}, "offset": {strconv.Itoa(len(out))}}
		lr, err := c.getList(ctx, ck.path, q)
		if err != nil {
			return nil, err
		}
		out = append(out, lr.Data...)
		if !lr.HasMore || len(lr.Data) == 0 {
			break
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return rowIdx(out[i]) < rowIdx(out[j]) })
	return out, nil
}

func rowIdx(m map[string]any) float64 { f, _ := m["idx"].(float64); return f }

func asAny(rows []map[string]any) []any {
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = r
	}
	return out
}

// attachCached adds the child tables to rec: the rows remembered for it
// while its updated_at is unchanged and they are younger than their max
// age (childcache.go), else read now.
func (c *Client) attachCached(ctx context.Context, rec *connectors.Record) error {
	if fields, ok := c.cache.lookup(rec.ID, rec.UpdatedAt, c.now()); ok {
		for _, ck := range childKinds {
			rows, _ := fields[ck.field].([]any)
			if rows == nil {
				rows = []any{}
			}
			rec.Fields[ck.field] = rows
		}
		return nil
	}
	return c.attachFresh(ctx, rec)
}

// attachFresh reads rec's child tables and remembers them.
func (c *Client) attachFresh(ctx context.Context, rec *connectors.Record) error {
	seq := c.cache.begin()
	if err := c.attachAlways(ctx, rec); err != nil {
		return err
	}
	fields := make(map[string]any, len(childKinds))
	for _, ck := range childKinds {
		fields[ck.field] = rec.Fields[ck.field]
	}
	c.cache.store(seq, rec.ID, rec.UpdatedAt, c.now(), fields)
	return nil
}

func (c *Client) attachAlways(ctx context.Context, rec *connectors.Record) error {
	for _, ck := range childKinds {
		rows, err := c.listChildren(ctx, ck, rec.ID)
		if err != nil {
			return err
		}
		rec.Fields[ck.field] = asAny(rows)
	}
	return nil
}

// attachAll adds the child tables to every record (attachCached),
// ChildConcurrency at a time. A record whose parent vanished meanwhile (404) is dropped: it was
// deleted during the scan.
func (c *Client) attachAll(ctx context.Context, recs []connectors.Record) ([]connectors.Record, error) {
	if c.noChildren || len(recs) == 0 {
		return recs, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		gone     = make([]bool, len(recs))
		wg       sync.WaitGroup
		sem      = make(chan struct{}, c.childConc)
	)
	for i := range recs {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			err := c.attachCached(ctx, &recs[i])
			switch {
			case err == nil:
			case connectors.IsNotFound(err):
				gone[i] = true
			default:
				mu.Lock()
				if firstErr == nil {
					firstErr = err // later ones are mostly the cancellation it causes
					cancel()
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	out := recs[:0:0]
	for i, r := range recs {
		if gone[i] {
			c.log.Debug().Str(logkey.RecordID, r.ID).Msg("prospect deleted while reading its child rows; skipped")
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// rowBody is a row without the properties the API sets or that fix its place.
func rowBody(row map[string]any) map[string]any {
	out := make(map[string]any, len(row))
	for k, v := range row {
		if k != "id" && k != "idx" && k != "prospect_id" {
			out[k] = v
		}
	}
	return out
}

// rowDiff returns the attributes of want that differ from have.
func rowDiff(want, have map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range rowBody(want) {
		if !reflect.DeepEqual(v, have[k]) {
			out[k] = v
		}
	}
	return out
}

func rowID(m map[string]any) string { s, _ := m["id"].(string); return s }

// syncChildren makes ck's rows under parent match in (see childInput) and
// returns the rows afterwards. fresh means the parent was just created and
// has no rows yet.
//
// company is the prospect's company_name, for the Leads that linking lead
// rows creates (leadlink.go).
func (c *Client) syncChildren(ctx context.Context, ck *childKind, parent string, in *childInput, fresh bool, company any) ([]any, error) {
	var have []map[string]any
	if !fresh {
		var err error
		if have, err = c.listChildren(ctx, ck, parent); err != nil {
			return nil, err
		}
	}
	if in == nil {
		return asAny(have), nil
	}
	w := &rowWriter{c: c, ck: ck, parent: parent, company: company}
	if in.isIndex {
		w.byIndex(ctx, have, in.byIndex)
	} else {
		w.byList(ctx, have, in.list)
	}
	if w.err != nil {
		return nil, w.err
	}
	if fresh {
		return asAny(w.created), nil
	}
	if !w.wrote {
		return asAny(have), nil
	}
	rows, err := c.listChildren(ctx, ck, parent)
	return asAny(rows), err
}

// rowWriter sends child-row writes and remembers the first error.
type rowWriter struct {
	c       *Client
	ck      *childKind
	parent  string
	company any
	wrote   bool
	created []map[string]any
	err     error
}

// link fills a lead row's lead link (leadlink.go); pos is the row's 0-based
// position in the caller's input.
func (w *rowWriter) link(ctx context.Context, pos int, body map[string]any) bool {
	if w.err == nil && w.ck.field == "leads" {
		w.err = w.c.fillLead(ctx, "update", pos, body, w.company)
	}
	return w.err == nil
}

func (w *rowWriter) create(ctx context.Context, pos int, row map[string]any) string {
	if w.err != nil {
		return ""
	}
	body := rowBody(row)
	if !w.link(ctx, pos, body) {
		return ""
	}
	body["prospect_id"] = w.parent
	resp, err := w.c.do(ctx, http.MethodPost, w.ck.path, nil, body)
	w.wrote = true
	if err != nil {
		w.err = err
		return ""
	}
	var got map[string]any
	if err := resp.Decode(&got); err != nil {
		w.err = w.c.fail("create "+w.ck.doctype, connectors.OutcomeUnknown, "%v", err)
		return ""
	}
	if rowID(got) == "" {
		w.err = w.c.fail("create "+w.ck.doctype, connectors.OutcomeUnknown, "the reply to the create is not the created row (no id)")
		return ""
	}
	w.created = append(w.created, got)
	return rowID(got)
}

// patch sends diff, the changed attributes of row id (want is the row the
// caller asked for). A new email in a row the caller gave without a lead
// relinks the row to that e-mail's Lead.
func (w *rowWriter) patch(ctx context.Context, pos int, id string, want, diff map[string]any) {
	if w.err != nil || len(diff) == 0 {
		return
	}
	email, _ := diff["email"].(string)
	if lead, _ := want["lead"].(string); email != "" && lead == "" && !w.link(ctx, pos, diff) {
		return
	}
	w.wrote = true
	_, w.err = w.c.do(ctx, http.MethodPatch, childURL(w.ck, id), nil, diff)
}

func (w *rowWriter) delete(ctx context.Context, id string) {
	if w.err != nil {
		return
	}
	w.wrote = true
	if _, err := w.c.do(ctx, http.MethodDelete, childURL(w.ck, id), nil, nil); err != nil && !connectors.IsNotFound(err) {
		w.err = err
	}
}

func (w *rowWriter) byIndex(ctx context.Context, have []map[string]any, want map[int]map[string]any) {
	idxs := make([]int, 0, len(want))
	for i := range want {
		idxs = append(idxs, i)
	}
	sort.Ints(idxs)
	var dels []string
	for _, i := range idxs {
		row := want[i]
		switch {
		case i < len(have) && row == nil:
			dels = append(dels, rowID(have[i]))
		case i < len(have):
			w.patch(ctx, i, rowID(have[i]), row, rowDiff(row, have[i]))
		case row != nil:
			w.create(ctx, i, row)
		}
	}
	for _, id := range dels {
		w.delete(ctx, id)
	}
}

func (w *rowWriter) byList(ctx context.Context, have, want []map[string]any) {
	byID := map[string]map[string]any{}
	for _, h := range have {
		byID[rowID(h)] = h
	}
	complete := true
	named := map[string]bool{}
	for _, r := range want {
		id := rowID(r)
		complete = complete && id != ""
		if byID[id] != nil {
			named[id] = true
		}
	}
	used := map[string]bool{}
	next := 0 // next existing row for positional matching
	target := make([]string, 0, len(want))
	for pos, r := range want {
		h := byID[rowID(r)]
		if h != nil && used[rowID(h)] {
			h = nil // the same id twice: the second one is a new row
		}
		if h == nil && rowID(r) == "" {
			for ; next < len(have); next++ {
				id := rowID(have[next])
				if !used[id] && !named[id] {
					h = have[next]
					next++
					break
				}
			}
		}
		if h == nil {
			target = append(target, w.create(ctx, pos, r))
			continue
		}
		used[rowID(h)] = true
		w.patch(ctx, pos, rowID(h), r, rowDiff(r, h))
		target = append(target, rowID(h))
	}
	var kept []string
	for _, h := range have {
		if id := rowID(h); !used[id] {
			if complete {
				w.delete(ctx, id)
			} else {
				kept = append(kept, id)
			}
		}
	}
	if w.err != nil {
		return
	}
	// The server's order now: surviving rows in their old order, then the
	// created ones in creation order.
	var now []string
	for _, h := range have {
		if id := rowID(h); used[id] || !complete {
			now = append(now, id)
		}
	}
	for _, cr := range w.created {
		now = append(now, rowID(cr))
	}
	w.reorder(ctx, now, append(slices.Clone(target), kept...))
}

// reorder moves the rows from order now to order want with PATCHes of idx,
// the documented way (the vendor's child pages list idx as a PATCH body
// parameter; the body of POST .../reorder is documented nowhere). Each
// PATCH puts one row at position i+1 and shifts the rows from there down,
// so at most len(want)-1 PATCHes are sent.
func (w *rowWriter) reorder(ctx context.Context, now, want []string) {
	cur := slices.Clone(now)
	for i, id := range want {
		if w.err != nil || i >= len(cur) {
			return
		}
		if cur[i] == id {
			continue
		}
		j := slices.Index(cur, id)
		if j < 0 {
			continue
		}
		w.wrote = true
		if _, w.err = w.c.do(ctx, http.MethodPatch, childURL(w.ck, id), nil, map[string]any{"idx": i + 1}); w.err != nil {
			return
		}
		cur = slices.Insert(slices.Delete(cur, j, j+1), i, id)
	}
}
