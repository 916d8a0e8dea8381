package pgstate

import (
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/state"
)

// The match index (state/matchindex.go) in tables match_index (forward
// rows; its index on (system, ref) serves as the reverse rows) and
// match_index_meta, schema version 3.
const (
	// sqlUnindexRefs removes every row of the given records.
	sqlUnindexRefs = `DELETE FROM match_index m USING unnest($1::text[], $2::text[]) AS d(s, r)
		WHERE m.system = d.s AND m.ref = d.r`
	sqlIndexRows = `INSERT INTO match_index (system, key, value, ref, entity, id)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
		ON CONFLICT (system, key, value, ref) DO UPDATE SET entity = EXCLUDED.entity, id = EXCLUDED.id`
	sqlSetIndexMeta = `INSERT INTO match_index_meta (system, keys, complete, cursor, at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (system) DO UPDATE SET keys = EXCLUDED.keys, complete = EXCLUDED.complete,
			cursor = EXCLUDED.cursor, at = EXCLUDED.at`
	sqlResetIndexRows = `DELETE FROM match_index WHERE system = $1`
	sqlResetIndexMeta = `DELETE FROM match_index_meta WHERE system = $1`
)

// indexRun collects a run of IndexRecord and UnindexRecord ops of distinct
// records: one statement removes their old rows, one writes the new ones,
// which is what applying them one by one gives. A record seen again, a
// meta change or a reset ends the run.
type indexRun struct {
	seen               map[string]bool
	delSys, delRef     []string
	sys, key, val, ref []string
	entity, id         []string
}

func (r *indexRun) add(q *queued, o *state.Op) {
	ix := o.Index
	k := pair(ix.System, ix.Ref)
	if r.seen[k] {
		r.flush(q)
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[k] = true
	r.delSys, r.delRef = append(r.delSys, ix.System), append(r.delRef, ix.Ref)
	if o.Kind != state.OpIndexRecord {
		return
	}
	for _, v := range ix.Values {
		r.sys, r.key, r.val, r.ref = append(r.sys, ix.System), append(r.key, v.Key), append(r.val, v.Value), append(r.ref, ix.Ref)
		r.entity, r.id = append(r.entity, ix.Entry.Entity), append(r.id, ix.Entry.ID)
	}
}

func (r *indexRun) flush(q *queued) {
	if len(r.delRef) == 0 {
		return
	}
	q.add(fmt.Sprintf("unindex %s/%s (and %d more)", r.delSys[0], r.delRef[0], len(r.delRef)-1), sqlUnindexRefs, r.delSys, r.delRef)
	if len(r.ref) > 0 {
		q.add(fmt.Sprintf("index %s/%s (and %d more rows)", r.sys[0], r.ref[0], len(r.ref)-1), sqlIndexRows, r.sys, r.key, r.val, r.ref, r.entity, r.id)
	}
	*r = indexRun{}
}

// queueIndex queues one match index op (after the run before it).
func queueIndex(q *queued, r *indexRun, o *state.Op) {
	switch o.Kind {
	case state.OpIndexRecord, state.OpUnindexRecord:
		r.add(q, o)
	case state.OpSetIndexMeta:
		r.flush(q)
		m := o.Index.Meta
		q.add("set match index meta "+o.Index.System, sqlSetIndexMeta, o.Index.System, m.Keys, m.Complete, m.Cursor, m.At)
	case state.OpResetIndex:
		r.flush(q)
		q.add("reset match index "+o.Index.System, sqlResetIndexRows, o.Index.System)
		q.add("reset match index meta "+o.Index.System, sqlResetIndexMeta, o.Index.System)
	}
}

func isIndexOp(k state.OpKind) bool {
	switch k {
	case state.OpIndexRecord, state.OpUnindexRecord, state.OpSetIndexMeta, state.OpResetIndex:
		return true
	}
	return false
}

// IndexLookup returns, for each match key and normalised value of values,
// the target records of system indexed under it, in reference order, in
// one query.
func (s *Store) IndexLookup(system string, values []state.IndexValue) ([][]state.IndexEntry, error) {
	out := make([][]state.IndexEntry, len(values))
	if len(values) == 0 {
		return out, nil
	}
	keys, vals := make([]string, len(values)), make([]string, len(values))
	for i, v := range values {
		keys[i], vals[i] = v.Key, v.Value
	}
	ctx, cancel := s.ctx()
	defer cancel()
	rows, _ := s.pool.Query(ctx, `SELECT v.i, m.entity, m.id
		FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS v(key, value, i)
		JOIN match_index m ON m.system = $1 AND m.key = v.key AND m.value = v.value
		ORDER BY v.i, m.ref`, system, keys, vals)
	var (
		i int64
		e state.IndexEntry
	)
	_, err := pgx.ForEachRow(rows, []any{&i, &e.Entity, &e.ID}, func() error {
		if i < 1 || int(i) > len(out) {
			return fmt.Errorf("match index lookup: row for value %d of %d", i, len(out))
		}
		out[i-1] = append(out[i-1], e)
		return nil
	})
	if err != nil {
		return nil, s.fail(fmt.Sprintf("look up %d values in the match index of %s", len(values), system), err)
	}
	return out, nil
}

// IndexEmpty reports whether system's index holds no record.
func (s *Store) IndexEmpty(system string) (bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var any bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM match_index WHERE system = $1)`, system).Scan(&any); err != nil {
		return false, s.fail("read the match index of "+system, err)
	}
	return !any, nil
}

// IndexMeta returns the meta entry of system's index, or nil when it has none.
func (s *Store) IndexMeta(system string) (*state.IndexMeta, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var m state.IndexMeta
	err := s.pool.QueryRow(ctx, `SELECT keys, complete, cursor, at FROM match_index_meta WHERE system = $1`, system).
		Scan(&m.Keys, &m.Complete, &m.Cursor, &m.At)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read the match index of "+system, err)
	}
	return &m, nil
}
