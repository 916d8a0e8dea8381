package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// The match index of a target lives in state (state/matchindex.go): rows
// normalised value → entity and id per match key, built by one full read of
// the target (committed page by page, so a cut build goes on where it
// stopped) and refreshed by later runs from the target's saved pull cursor
// (only the records changed since). It holds the target records crmsync
// did not link: a record crmsync created or linked is never a free
// candidate for another record (freeCandidates skips records linked to
// someone else, linkOwner counts writes whose page is not committed yet),
// so rows for it would cost state (about 1.8 KB per record over two
// targets, measured) and buy nothing. A plan, which commits nothing, keeps
// what it reads in memory (overlay).

// matchIndex is a run's handle on a target's persisted index.
type matchIndex struct {
	keys []string // match keys the index covers
	// rows maps key NUL value to the records of the overlay under it.
	rows map[string][]*overlayEntry
	// byRef holds the overlay's records by reference (System.Key).
	byRef map[string]*overlayEntry
	// storeEmpty is true while the persisted index holds no record (an
	// empty target, the first sync's common case): lookups skip the
	// state read, one per create (a round trip on PostgreSQL).
	storeEmpty bool
}

// overlayEntry is one record a plan read in this run.
type overlayEntry struct {
	rec    connectors.Record // entity and id only
	ref    string
	values []state.IndexValue
}

func newMatchIndex(keys []string) *matchIndex {
	return &matchIndex{keys: keys, rows: map[string][]*overlayEntry{}, byRef: map[string]*overlayEntry{}}
}

func rowKey(key, val string) string { return key + "\x00" + val }

// put adds (or replaces) a record of the overlay.
func (ix *matchIndex) put(e *overlayEntry) {
	ix.drop(e.ref)
	ix.byRef[e.ref] = e
	for _, v := range e.values {
		k := rowKey(v.Key, v.Value)
		ix.rows[k] = append(ix.rows[k], e)
	}
}

// drop removes a record from the overlay.
func (ix *matchIndex) drop(ref string) {
	old := ix.byRef[ref]
	if old == nil {
		return
	}
	delete(ix.byRef, ref)
	for _, v := range old.values {
		k := rowKey(v.Key, v.Value)
		rest := slices.DeleteFunc(ix.rows[k], func(e *overlayEntry) bool { return e == old })
		if len(rest) == 0 {
			delete(ix.rows, k)
		} else {
			ix.rows[k] = rest
		}
	}
}

// indexValues lists the normalised values of rec under the index's keys.
func indexValues(t *targetSys, keys []string, rec connectors.Record) []state.IndexValue {
	v, err := t.Map.Inbound(mapping.Native{Entity: rec.Entity, Fields: rec.Fields})
	if err != nil {
		return nil
	}
	var out []state.IndexValue
	for _, k := range keys {
		if s := v.Str(k); s != "" {
			out = append(out, state.IndexValue{Key: k, Value: NormalizeMatch(k, s)})
		}
	}
	return out
}

func entryOf(rec connectors.Record) state.IndexEntry {
	return state.IndexEntry{Entity: rec.Entity, ID: rec.ID}
}

// matchValues lists the flow's match keys with a value on want that may
// identify a record of kind, with the values normalised.
func (r *run) matchValues(want *funnel.Record, kind funnel.Kind) []state.IndexValue {
	var out []state.IndexValue
	for _, key := range r.f.MatchKeys {
		if val := want.Str(key); val != "" && matchKeyApplies(key, kind) {
			out = append(out, state.IndexValue{Key: key, Value: NormalizeMatch(key, val)})
		}
	}
	return out
}

// indexCandidates returns, per match key of vals, the target records
// indexed under its value: the persisted rows and the overlay's, each
// record once.
func (r *run) indexCandidates(t *targetSys, ix *matchIndex, vals []state.IndexValue) (map[string][]connectors.Record, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	t.imu.Lock()
	empty := ix.storeEmpty
	t.imu.Unlock()
	rows := make([][]state.IndexEntry, len(vals))
	if !empty {
		var err error
		if rows, err = r.store().IndexLookup(t.Name, vals); err != nil {
			return nil, err
		}
	}
	t.imu.Lock()
	defer t.imu.Unlock()
	out := make(map[string][]connectors.Record, len(vals))
	for i, v := range vals {
		seen := map[string]bool{}
		var cands []connectors.Record
		for _, e := range rows[i] {
			rec := connectors.Record{Entity: e.Entity, ID: e.ID}
			seen[t.Key(rec)] = true
			cands = append(cands, rec)
		}
		for _, e := range ix.rows[rowKey(v.Key, v.Value)] {
			if !seen[e.ref] {
				seen[e.ref] = true
				cands = append(cands, e.rec)
			}
		}
		out[v.Key] = cands
	}
	return out, nil
}

// freeCandidates splits candidates into those free for the record id (not
// linked, or linked to it) and descriptions of those linked to another.
func (r *run) freeCandidates(t *targetSys, id string, cands []connectors.Record) (free []connectors.Record, taken []string, err error) {
	for _, c := range cands {
		owner, err := r.linkOwner(t.Name, t.Key(c))
		if err != nil {
			return nil, nil, err
		}
		if owner != "" && owner != id {
			taken = append(taken, c.ID+" (linked to "+owner+")")
			continue
		}
		free = append(free, c)
	}
	return free, taken, nil
}

// checkCandidates reads each free candidate of an index lookup: one gone
// from the target (NotFound) leaves the index, one whose value changed
// there is indexed under its current values; neither is a candidate. It
// returns the others, as read.
func (r *run) checkCandidates(ctx context.Context, t *targetSys, ix *matchIndex, key, val string, free []connectors.Record) ([]connectors.Record, error) {
	out := free[:0:0]
	for _, c := range free {
		full, err := t.Conn.Get(ctx, c.Entity, c.ID)
		switch {
		case connectors.IsNotFound(err):
			r.log.Info().Str(logkey.Target, t.Name).Str(logkey.TargetID, c.ID).Str(logkey.MatchKey, key).Msg("match candidate is gone from the target: dropped from the match index")
			if err := r.reindex(t, ix, c, nil); err != nil {
				return nil, err
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("read matched %s %s in %s: %w", c.Entity, c.ID, t.Name, err)
		}
		vals := indexValues(t, ix.keys, full)
		if !slices.Contains(vals, state.IndexValue{Key: key, Value: val}) {
			if err := r.reindex(t, ix, full, vals); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, full)
	}
	return out, nil
}

// reindex replaces what the index holds of rec (nothing, when it is gone)
// in its own commit; a plan changes only its overlay.
func (r *run) reindex(t *targetSys, ix *matchIndex, rec connectors.Record, vals []state.IndexValue) error {
	ref := t.Key(rec)
	t.imu.Lock()
	ix.drop(ref)
	if len(vals) > 0 && !r.plan {
		ix.storeEmpty = false
	}
	if r.plan && len(vals) > 0 {
		ix.put(&overlayEntry{rec: connectors.Record{Entity: rec.Entity, ID: rec.ID}, ref: ref, values: vals})
	}
	t.imu.Unlock()
	if r.plan {
		return nil
	}
	b := &state.Batch{}
	if vals == nil {
		b.UnindexRecord(t.Name, ref)
	} else {
		b.IndexRecord(t.Name, ref, entryOf(rec), vals)
	}
	if err := r.store().Commit(b); err != nil {
		return fmt.Errorf("update the match index of %s: %w", t.Name, err)
	}
	return nil
}

// indexFor returns the target's index for this run, or nil when lookups go
// through the connector's Find: a target is matched through its index when
// the run is bulk (first sync or backfill), when its connector's Find scans
// anyway, or once one page needs at least indexThreshold creates there
// (then for the rest of the run). The first call of a run brings the
// persisted index up to date (built in full the first time, refreshed from
// the saved target cursor after).
func (r *run) indexFor(ctx context.Context, t *targetSys) (*matchIndex, error) {
	t.imu.Lock()
	defer t.imu.Unlock()
	if t.index != nil {
		return t.index, nil
	}
	scans := false
	if sf, ok := t.Conn.(connectors.ScanFinder); ok {
		scans = sf.FindScans()
	}
	if t.creates < indexThreshold && !scans && !r.bulk {
		return nil, nil
	}
	ix, err := r.loadIndex(ctx, t)
	if err != nil {
		return nil, err
	}
	t.index, t.keys = ix, ix.keys
	return ix, nil
}

// loadIndex brings the target's persisted index up to date: from scratch
// when there is none or it lacks a match key of the flow, else from where
// the last build or refresh stopped. Each page read is committed with the
// cursor after it. A plan commits nothing: what it reads stays in the
// run's overlay.
func (r *run) loadIndex(ctx context.Context, t *targetSys) (*matchIndex, error) {
	meta, err := r.store().IndexMeta(t.Name)
	if err != nil {
		return nil, err
	}
	if meta == nil || !coversKeys(meta.Keys, r.f.MatchKeys) {
		keys := r.f.MatchKeys
		if meta != nil {
			keys = unionKeys(meta.Keys, r.f.MatchKeys)
		}
		meta = &state.IndexMeta{Keys: keys}
		if !r.plan {
			b := &state.Batch{}
			b.ResetIndex(t.Name)
			b.SetIndexMeta(t.Name, *meta)
			if err := r.store().Commit(b); err != nil {
				return nil, fmt.Errorf("start the match index of %s: %w", t.Name, err)
			}
		}
	}
	ix := newMatchIndex(meta.Keys)
	full := !meta.Complete
	n, err := r.readIndex(ctx, t, ix, meta)
	if err != nil {
		return nil, fmt.Errorf("read %s to match records before creating them: %w", t.Name, err)
	}
	if ix.storeEmpty, err = r.store().IndexEmpty(t.Name); err != nil {
		return nil, err
	}
	what := "refreshed the match index from the target's changes since the last run"
	if full {
		what = "read the target once to match records before creating them"
	}
	r.log.Info().Str(logkey.Target, t.Name).Int("records", n).Msg(what)
	return ix, nil
}

// readIndex pulls the target from meta's cursor to its end, indexing every
// record, and returns how many it read.
func (r *run) readIndex(ctx context.Context, t *targetSys, ix *matchIndex, meta *state.IndexMeta) (int, error) {
	cur, n := connectors.Cursor(meta.Cursor), 0
	for {
		page, err := t.Conn.Pull(ctx, cur, connectors.PullOptions{PageSize: t.PageSize})
		if err != nil {
			return n, err
		}
		b := &state.Batch{}
		for _, rec := range page.Records {
			if owner, err := r.store().Link(t.Name, t.Key(rec)); err != nil {
				return n, err
			} else if owner != "" {
				continue // crmsync's own (see the top of this file)
			}
			vals := indexValues(t, ix.keys, rec)
			if r.plan {
				ix.put(&overlayEntry{rec: connectors.Record{Entity: rec.Entity, ID: rec.ID}, ref: t.Key(rec), values: vals})
				continue
			}
			b.IndexRecord(t.Name, t.Key(rec), entryOf(rec), vals)
		}
		n += len(page.Records)
		if !r.plan {
			b.SetIndexMeta(t.Name, state.IndexMeta{Keys: ix.keys, Complete: meta.Complete || page.Done, Cursor: page.Next})
			if err := r.store().Commit(b); err != nil {
				return n, fmt.Errorf("commit the match index: %w", err)
			}
		}
		r.progress(Progress{Flow: r.f.Name, Total: -1, Reading: t.Name, Read: n, Done: page.Done})
		cur = page.Next
		if page.Done {
			return n, nil
		}
	}
}

// coversKeys reports whether every key of want is in have.
func coversKeys(have, want []string) bool {
	for _, k := range want {
		if !slices.Contains(have, k) {
			return false
		}
	}
	return true
}

// unionKeys is have plus the keys of want it lacks, in order.
func unionKeys(have, want []string) []string {
	out := slices.Clone(have)
	for _, k := range want {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}
