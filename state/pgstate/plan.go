package pgstate

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/crmsync/crmsync/state"
)

// A batch's changes become few statements. Each kind of change touches its
// own tables only (records and links together; cursors; fingerprints;
// intents; deliveries; runs), so the changes of one kind can be applied
// apart from the others' without changing the committed result, which is
// all a transaction shows. Within a kind the order is kept where it
// matters:
//
//   - cursors, fingerprints, intent deletions: the last change of each key
//     wins, so they collapse into one statement each;
//   - records: a run of PutRecord with distinct ids is one statement that
//     writes the records and removes their stale links, then one that
//     writes their links (see sqlPutRecords for why that equals applying
//     them one by one); a Link or Unlink, or a record seen again, ends the
//     run and is applied in its place;
//   - dead letters merge with what is stored (one more attempt): one
//     statement each, in order;
//   - runs: one upsert of all (last wins per key), then one trim per flow;
//     trimming once keeps the same newest runs as trimming after each.

const (
	// sqlPutRecords writes records and removes, for each, the links its
	// stored version had and the new one has not, unless another record
	// owns them now. Every part sees the tables as before the statement,
	// and the links of the new versions are written by sqlPutLinks after
	// it, so a link one record drops and another takes over in the same
	// run ends with the one that took it, as when applied one by one.
	sqlPutRecords = `WITH new AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS n(id, fields, links, sources, gone)),
		old AS (SELECT r.id, r.links AS old_links, new.links::jsonb AS new_links FROM records r JOIN new ON r.id = new.id),
		put AS (INSERT INTO records (id, fields, links, sources, gone, updated_at)
			SELECT id, fields::jsonb, links::jsonb, sources::jsonb, gone::jsonb, now() FROM new
			ON CONFLICT (id) DO UPDATE SET fields = EXCLUDED.fields, links = EXCLUDED.links,
				sources = EXCLUDED.sources, gone = EXCLUDED.gone, updated_at = EXCLUDED.updated_at)
		DELETE FROM links l USING old, jsonb_each_text(old.old_links) AS o(system, external_id)
		WHERE l.system = o.system AND l.external_id = o.external_id AND l.canonical_id = old.id
			AND o.system <> '' AND o.external_id <> ''
			AND (old.new_links ->> o.system) IS DISTINCT FROM o.external_id`
	sqlPutLinks = `INSERT INTO links (system, external_id, canonical_id)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
		ON CONFLICT (system, external_id) DO UPDATE SET canonical_id = EXCLUDED.canonical_id`
	sqlPutCursors = `INSERT INTO cursors (key, value, updated_at) SELECT k, v, now() FROM unnest($1::text[], $2::bytea[]) AS c(k, v)
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`
	sqlDeleteCursors     = `DELETE FROM cursors WHERE key = ANY($1::text[])`
	sqlDeleteDeadLetters = `DELETE FROM deliveries WHERE key = ANY($1::text[])`
	sqlUnlinks           = `DELETE FROM links l USING unnest($1::text[], $2::text[]) AS d(s, e)
		WHERE l.system = d.s AND l.external_id = d.e`
	sqlPutFingerprintRows = `INSERT INTO fingerprints (system, external_id, hash, entity, source, at, payload)
		SELECT s, e, h, en, so, a, p::jsonb
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[]) AS f(s, e, h, en, so, a, p)
		ON CONFLICT (system, external_id) DO UPDATE SET hash = EXCLUDED.hash, entity = EXCLUDED.entity,
			source = EXCLUDED.source, at = EXCLUDED.at, payload = EXCLUDED.payload`
	sqlDeleteIntents = `DELETE FROM intents i USING unnest($1::text[], $2::text[]) AS d(s, c)
		WHERE i.system = d.s AND i.canonical_id = d.c`
	sqlPutRuns = `INSERT INTO runs (flow, started_ns, started, finished, mode, error, counts)
		SELECT f, ns, st, fi, m, e, c::jsonb
		FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], $5::text[], $6::text[], $7::text[]) AS r(f, ns, st, fi, m, e, c)
		ON CONFLICT (flow, started_ns) DO UPDATE SET started = EXCLUDED.started, finished = EXCLUDED.finished,
			mode = EXCLUDED.mode, error = EXCLUDED.error, counts = EXCLUDED.counts`
)

// plan turns ops into the statements of one commit.
func plan(q *queued, ops []state.Op) error {
	var (
		recs    recordRun
		cursors = lastWins[[]byte]{}
		fps     = lastWins[*state.Fingerprint]{}
		intents = lastWins[*state.Intent]{} // nil: delete
		runs    = lastWins[*state.Run]{}
		dls     []*state.Op
		links   lastWins[*string] // a run of Link/Unlink ops; nil: unlink
		index   indexRun          // the match index's ops (matchindex.go)
		// carried maps a link to the record whose latest PutRecord in
		// this batch carries it, while no Link or Unlink op changed it
		// since: a Link op that says the same is already done by the
		// record's own link rows (the engine links each record it puts).
		carried = map[string]string{}
	)
	for i := range ops {
		if ops[i].Kind == state.OpPutRecord {
			// Only a record's own link rows touch the links table
			// besides Link and Unlink: every other op lets a run of
			// them go on.
			queueLinks(q, &links)
		}
		o := &ops[i]
		switch o.Kind {
		case state.OpSetCursor:
			cursors.put(o.Key, o.Cursor)
		case state.OpDeleteCursor:
			cursors.put(o.Key, nil)
		case state.OpPutRecord:
			if err := recs.add(q, o); err != nil {
				return err
			}
			for k, id := range carried {
				if id == o.Record.ID {
					delete(carried, k)
				}
			}
			for sys, ext := range o.Record.Links {
				carried[pair(sys, ext)] = o.Record.ID
			}
		case state.OpLink:
			k := pair(o.System, o.ID)
			if carried[k] == o.Target {
				continue
			}
			carried[k] = o.Target
			recs.flush(q)
			target := o.Target
			links.put(pair(o.System, o.ID), &target)
		case state.OpUnlink:
			delete(carried, pair(o.System, o.ID))
			recs.flush(q)
			links.put(pair(o.System, o.ID), nil)
		case state.OpPutFingerprint:
			fps.put(pair(o.System, o.ID), o.Fingerprint)
		case state.OpDeleteIntent:
			intents.put(pair(o.System, o.ID), nil)
		case state.OpPutIntent:
			intents.put(pair(o.System, o.ID), o.Intent)
		case state.OpPutDeadLetter, state.OpDeleteDeadLetter, state.OpRestoreDeadLetter:
			dls = append(dls, o)
		case state.OpPutRun:
			runs.put(o.Run.Flow+"\x00"+strconv.FormatInt(o.Run.Started.UnixNano(), 10), o.Run)
		default:
			if !isIndexOp(o.Kind) {
				return fmt.Errorf("unknown batch op %d", o.Kind)
			}
			queueIndex(q, &index, o)
		}
	}
	index.flush(q)
	queueLinks(q, &links)
	recs.flush(q)
	if err := queueFingerprints(q, &fps); err != nil {
		return err
	}
	if err := queueIntents(q, &intents); err != nil {
		return err
	}
	// Deletes of distinct keys commute: each run of them between two puts
	// is one statement.
	var gone []string
	flushGone := func() {
		if len(gone) > 0 {
			q.add(fmt.Sprintf("DeleteDeadLetter %s (and %d more)", gone[0], len(gone)-1), sqlDeleteDeadLetters, gone)
			gone = nil
		}
	}
	for _, o := range dls {
		if o.Kind == state.OpDeleteDeadLetter {
			gone = append(gone, o.Key)
			continue
		}
		flushGone()
		if o.Kind == state.OpRestoreDeadLetter {
			if err := queueRestoreDeadLetter(q, o.DeadLetter); err != nil {
				return err
			}
			continue
		}
		if err := queueDeadLetter(q, o.DeadLetter); err != nil {
			return err
		}
	}
	flushGone()
	if err := queueRuns(q, &runs); err != nil {
		return err
	}
	queueCursors(q, &cursors)
	return nil
}

// lastWins keeps the last value put under each key, in first-put order.
type lastWins[V any] struct {
	keys []string
	vals map[string]V
}

func (l *lastWins[V]) put(k string, v V) {
	if l.vals == nil {
		l.vals = map[string]V{}
	}
	if _, ok := l.vals[k]; !ok {
		l.keys = append(l.keys, k)
	}
	l.vals[k] = v
}

func pair(a, b string) string { return a + "\x00" + b }

func unpair(k string) (string, string) {
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// recordRun accumulates consecutive PutRecord changes with distinct ids.
type recordRun struct {
	ids                          []string
	fields, links, sources, gone []*string
	seen                         map[string]bool
	linkKeys                     lastWins[string] // system\x00external -> canonical id
}

func (r *recordRun) add(q *queued, o *state.Op) error {
	rec := o.Record
	if r.seen[rec.ID] {
		r.flush(q)
	}
	fields, err := json.Marshal(nonNil(rec.Fields))
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", rec.ID, err)
	}
	links, err := json.Marshal(rec.Links)
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", rec.ID, err)
	}
	sources, err := jsonOrNull(len(rec.Sources), rec.Sources)
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", rec.ID, err)
	}
	gone, err := jsonOrNull(len(rec.Gone), rec.Gone)
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", rec.ID, err)
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[rec.ID] = true
	r.ids = append(r.ids, rec.ID)
	r.fields = append(r.fields, strPtr(fields))
	r.links = append(r.links, strPtr(links))
	r.sources = append(r.sources, strPtr(sources))
	r.gone = append(r.gone, strPtr(gone))
	for sys, ext := range rec.Links {
		r.linkKeys.put(pair(sys, ext), rec.ID)
	}
	return nil
}

// flush queues the run's two statements and starts a new run.
func (r *recordRun) flush(q *queued) {
	if len(r.ids) == 0 {
		return
	}
	what := fmt.Sprintf("PutRecord %s (and %d more)", r.ids[0], len(r.ids)-1)
	q.add(what, sqlPutRecords, r.ids, r.fields, r.links, r.sources, r.gone)
	if n := len(r.linkKeys.keys); n > 0 {
		sys, ext, ids := make([]string, n), make([]string, n), make([]string, n)
		for i, k := range r.linkKeys.keys {
			sys[i], ext[i] = unpair(k)
			ids[i] = r.linkKeys.vals[k]
		}
		q.add(what+": links", sqlPutLinks, sys, ext, ids)
	}
	*r = recordRun{}
}

func strPtr(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func queueCursors(q *queued, c *lastWins[[]byte]) {
	var setK, delK []string
	var setV [][]byte
	for _, k := range c.keys {
		if v := c.vals[k]; v != nil {
			setK, setV = append(setK, k), append(setV, v)
		} else {
			delK = append(delK, k)
		}
	}
	if len(delK) > 0 {
		q.add("SetCursor nil", sqlDeleteCursors, delK)
	}
	if len(setK) > 0 {
		q.add("SetCursor "+setK[0], sqlPutCursors, setK, setV)
	}
}

func queueFingerprints(q *queued, fps *lastWins[*state.Fingerprint]) error {
	n := len(fps.keys)
	if n == 0 {
		return nil
	}
	sys, ext, hash, entity, source := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at, payload := make([]time.Time, n), make([]*string, n)
	for i, k := range fps.keys {
		f := fps.vals[k]
		sys[i], ext[i] = unpair(k)
		hash[i], entity[i], source[i], at[i] = f.Hash, f.Entity, f.Source, f.At
		p, err := jsonOrNull(len(f.Payload), f.Payload)
		if err != nil {
			return fmt.Errorf("PutFingerprint %s/%s: %w", sys[i], ext[i], err)
		}
		payload[i] = strPtr(p)
	}
	q.add(fmt.Sprintf("PutFingerprint %s/%s (and %d more)", sys[0], ext[0], n-1), sqlPutFingerprintRows,
		sys, ext, hash, entity, source, at, payload)
	return nil
}

// queueIntents writes the last put of each intent key and deletes the keys
// whose last change is a delete.
func queueIntents(q *queued, in *lastWins[*state.Intent]) error {
	var sys, ids []string
	var put []state.Intent
	for _, k := range in.keys {
		it := in.vals[k]
		if it == nil {
			s, c := unpair(k)
			sys, ids = append(sys, s), append(ids, c)
			continue
		}
		put = append(put, *it)
	}
	if len(sys) > 0 {
		q.add("DeleteIntent", sqlDeleteIntents, sys, ids)
	}
	return queuePutIntents(q, put)
}

func queueRuns(q *queued, runs *lastWins[*state.Run]) error {
	n := len(runs.keys)
	if n == 0 {
		return nil
	}
	flow, mode, errs, counts := make([]string, n), make([]string, n), make([]string, n), make([]*string, n)
	ns, started, finished := make([]int64, n), make([]time.Time, n), make([]*time.Time, n)
	var flows lastWins[struct{}]
	for i, k := range runs.keys {
		r := runs.vals[k]
		flow[i], mode[i], errs[i], ns[i], started[i] = r.Flow, r.Mode, r.Error, r.Started.UnixNano(), r.Started
		if !r.Finished.IsZero() {
			f := r.Finished
			finished[i] = &f
		}
		c, err := jsonOrNull(len(r.Counts), r.Counts)
		if err != nil {
			return fmt.Errorf("PutRun %s: %w", r.Flow, err)
		}
		counts[i] = strPtr(c)
		flows.put(r.Flow, struct{}{})
	}
	q.add("PutRun "+flow[0], sqlPutRuns, flow, ns, started, finished, mode, errs, counts)
	for _, f := range flows.keys {
		q.add("PutRun "+f+": trim", sqlTrimRuns, f, state.MaxRunsPerFlow)
	}
	return nil
}

// queueLinks writes a run of consecutive Link and Unlink ops (no other op
// between them) as at most two statements: within such a run only the
// last op on each system and external id counts, and ops on different
// ones commute.
func queueLinks(q *queued, l *lastWins[*string]) {
	if len(l.keys) == 0 {
		return
	}
	var sys, ext, ids, usys, uext []string
	for _, k := range l.keys {
		s, e := unpair(k)
		if t := l.vals[k]; t != nil {
			sys, ext, ids = append(sys, s), append(ext, e), append(ids, *t)
		} else {
			usys, uext = append(usys, s), append(uext, e)
		}
	}
	if len(usys) > 0 {
		q.add(fmt.Sprintf("Unlink %s/%s (and %d more)", usys[0], uext[0], len(usys)-1), sqlUnlinks, usys, uext)
	}
	if len(sys) > 0 {
		q.add(fmt.Sprintf("Link %s/%s (and %d more)", sys[0], ext[0], len(sys)-1), sqlPutLinks, sys, ext, ids)
	}
	*l = lastWins[*string]{}
}
