package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crmsync/crmsync/state"
)

// The statements of a commit, one or two per kind of change. Each runs in
// the commit's transaction, in the order the changes were added.
const (
	sqlSetCursor = `INSERT INTO cursors (key, value, updated_at) VALUES ($1, $2, now())
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`
	sqlDeleteCursor = `DELETE FROM cursors WHERE key = $1`
	// sqlPutRecord writes the record and removes the links its stored
	// version had and this one has not, unless another record took them
	// over since (all sub-statements see the table as before the statement).
	sqlPutRecord = `WITH old AS (SELECT links FROM records WHERE id = $1),
		put AS (INSERT INTO records (id, fields, links, sources, gone, updated_at) VALUES ($1, $2, $3, $4, $5, now())
			ON CONFLICT (id) DO UPDATE SET fields = EXCLUDED.fields, links = EXCLUDED.links,
				sources = EXCLUDED.sources, gone = EXCLUDED.gone, updated_at = EXCLUDED.updated_at)
		DELETE FROM links l USING old, jsonb_each_text(old.links) AS o(system, external_id)
		WHERE l.system = o.system AND l.external_id = o.external_id AND l.canonical_id = $1
			AND o.system <> '' AND o.external_id <> ''
			AND ($3::jsonb ->> o.system) IS DISTINCT FROM o.external_id`
	sqlPutRecordLinks = `INSERT INTO links (system, external_id, canonical_id)
		SELECT key, value, $1 FROM jsonb_each_text($2::jsonb)
		ON CONFLICT (system, external_id) DO UPDATE SET canonical_id = EXCLUDED.canonical_id`
	sqlLink = `INSERT INTO links (system, external_id, canonical_id) VALUES ($1, $2, $3)
		ON CONFLICT (system, external_id) DO UPDATE SET canonical_id = EXCLUDED.canonical_id`
	sqlUnlink         = `DELETE FROM links WHERE system = $1 AND external_id = $2`
	sqlPutFingerprint = `INSERT INTO fingerprints (system, external_id, hash, entity, source, at, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (system, external_id) DO UPDATE SET hash = EXCLUDED.hash, entity = EXCLUDED.entity,
			source = EXCLUDED.source, at = EXCLUDED.at, payload = EXCLUDED.payload`
	sqlPutIntent = `INSERT INTO intents (system, canonical_id, entity, flow, at, match, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (system, canonical_id) DO UPDATE SET entity = EXCLUDED.entity, flow = EXCLUDED.flow,
			at = EXCLUDED.at, match = EXCLUDED.match, payload = EXCLUDED.payload`
	sqlDeleteIntent = `DELETE FROM intents WHERE system = $1 AND canonical_id = $2`
	// sqlPutDeadLetter replaces an entry but keeps its first failure time
	// and counts one more attempt.
	sqlPutDeadLetter = `INSERT INTO deliveries (key, flow, system, canonical_id, source_system, source_entity,
			source_id, op, pending, dropped, error, attempts, first_at, last_at, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (key) DO UPDATE SET flow = EXCLUDED.flow, system = EXCLUDED.system,
			canonical_id = EXCLUDED.canonical_id, source_system = EXCLUDED.source_system,
			source_entity = EXCLUDED.source_entity, source_id = EXCLUDED.source_id, op = EXCLUDED.op,
			pending = EXCLUDED.pending, dropped = EXCLUDED.dropped, error = EXCLUDED.error,
			attempts = deliveries.attempts + 1, last_at = EXCLUDED.last_at, payload = EXCLUDED.payload`
	sqlDeleteDeadLetter = `DELETE FROM deliveries WHERE key = $1`
	sqlDropDeadLetter   = `UPDATE deliveries SET dropped = true, pending = false WHERE key = $1`
	sqlPutRun           = `INSERT INTO runs (flow, started_ns, started, finished, mode, error, counts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (flow, started_ns) DO UPDATE SET started = EXCLUDED.started, finished = EXCLUDED.finished,
			mode = EXCLUDED.mode, error = EXCLUDED.error, counts = EXCLUDED.counts`
	// sqlTrimRuns keeps the newest state.MaxRunsPerFlow runs of a flow, in
	// the bbolt engine's key order (starts before 1970 count as newest).
	sqlTrimRuns = `DELETE FROM runs WHERE flow = $1 AND started_ns IN (
		SELECT started_ns FROM runs WHERE flow = $1
		ORDER BY (started_ns < 0) DESC, started_ns DESC OFFSET $2)`
)

// maxAttempts is how often a commit that lost a deadlock or serialization
// race is tried in all.
const maxAttempts = 3

// queued is a batch of statements with what each one does, for errors.
type queued struct {
	b    pgx.Batch
	what []string
}

func (q *queued) add(what, sql string, args ...any) {
	q.b.Queue(sql, args...)
	q.what = append(q.what, what)
}

// run sends the statements in one round trip and reads every result.
func (q *queued) run(ctx context.Context, tx pgx.Tx) error {
	br := tx.SendBatch(ctx, &q.b)
	for _, what := range q.what {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return br.Close()
}

// Commit applies every change of b in one transaction: all of them are
// committed (and, with PostgreSQL's default synchronous_commit, flushed
// to its write-ahead log) when it returns nil, and none is when it returns
// an error. An empty or nil batch commits nothing. Commit does not change b.
func (s *Store) Commit(b *state.Batch) error {
	ops, err := b.Ops()
	if err != nil {
		return fmt.Errorf("commit state batch: nothing written: %w", err)
	}
	if len(ops) == 0 {
		return nil
	}
	if err := s.writable("commit state batch"); err != nil {
		return err
	}
	var q queued
	for i := range ops {
		if err := queueOp(&q, &ops[i]); err != nil {
			return fmt.Errorf("commit state batch: nothing written: %w", err)
		}
	}
	if err := s.inTx(q); err != nil {
		var unknown *commitUnknown
		if errors.As(err, &unknown) {
			return s.fail("commit state batch", err)
		}
		return fmt.Errorf("commit state batch: nothing written: state database %s: %w", s.name, err)
	}
	return nil
}

// commitUnknown is a COMMIT that got no answer (the connection broke): the
// transaction may or may not have been committed.
type commitUnknown struct{ err error }

func (e *commitUnknown) Error() string {
	return "connection lost during COMMIT, the page may or may not be recorded: " + e.err.Error()
}

func (e *commitUnknown) Unwrap() error { return e.err }

// inTx runs q in one transaction, again when it lost a deadlock or a
// serialization race (it then left nothing behind).
func (s *Store) inTx(q queued) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = s.once(&q)
		if err == nil || !isSerialization(err) {
			return err
		}
	}
	return err
}

func (s *Store) once(q *queued) error {
	ctx, cancel := s.ctx()
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op once committed
	if err := q.run(ctx, tx); err != nil {
		return err
	}
	if s.before != nil {
		if err := s.before(ctx, tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) || errors.Is(err, pgx.ErrTxCommitRollback) {
			return err // the server refused: rolled back
		}
		return &commitUnknown{err: err}
	}
	return nil
}

func queueOp(q *queued, o *state.Op) error {
	switch o.Kind {
	case state.OpSetCursor:
		q.add("SetCursor "+o.Key, sqlSetCursor, o.Key, o.Cursor)
	case state.OpDeleteCursor:
		q.add("SetCursor "+o.Key+" nil", sqlDeleteCursor, o.Key)
	case state.OpPutRecord:
		return queueRecord(q, o)
	case state.OpLink:
		q.add("Link "+o.System+"/"+o.ID, sqlLink, o.System, o.ID, o.Target)
	case state.OpUnlink:
		q.add("Unlink "+o.System+"/"+o.ID, sqlUnlink, o.System, o.ID)
	case state.OpPutFingerprint:
		f := o.Fingerprint
		payload, err := jsonOrNull(len(f.Payload), f.Payload)
		if err != nil {
			return fmt.Errorf("PutFingerprint %s/%s: %w", o.System, o.ID, err)
		}
		q.add("PutFingerprint "+o.System+"/"+o.ID, sqlPutFingerprint, o.System, o.ID, f.Hash, f.Entity, f.Source, f.At, payload)
	case state.OpDeleteIntent:
		q.add("DeleteIntent "+o.System+"/"+o.ID, sqlDeleteIntent, o.System, o.ID)
	case state.OpPutDeadLetter:
		return queueDeadLetter(q, o.DeadLetter)
	case state.OpDeleteDeadLetter:
		q.add("DeleteDeadLetter "+o.Key, sqlDeleteDeadLetter, o.Key)
	case state.OpPutRun:
		return queueRun(q, o.Run)
	default:
		return fmt.Errorf("unknown batch op %d", o.Kind)
	}
	return nil
}

func queueRecord(q *queued, o *state.Op) error {
	r := o.Record
	fields, err := json.Marshal(nonNil(r.Fields))
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", r.ID, err)
	}
	links, err := json.Marshal(r.Links)
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", r.ID, err)
	}
	sources, err := jsonOrNull(len(r.Sources), r.Sources)
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", r.ID, err)
	}
	gone, err := jsonOrNull(len(r.Gone), r.Gone)
	if err != nil {
		return fmt.Errorf("PutRecord %s: %w", r.ID, err)
	}
	q.add("PutRecord "+r.ID, sqlPutRecord, r.ID, fields, links, sources, gone)
	if len(r.Links) > 0 {
		q.add("PutRecord "+r.ID+": links", sqlPutRecordLinks, r.ID, links)
	}
	return nil
}

func queueDeadLetter(q *queued, d *state.DeadLetter) error {
	var payload []byte
	if d.Payload != nil {
		p, err := json.Marshal(d.Payload)
		if err != nil {
			return fmt.Errorf("PutDeadLetter %s: %w", d.Key, err)
		}
		payload = p
	}
	q.add("PutDeadLetter "+d.Key, sqlPutDeadLetter, d.Key, d.Flow, d.System, d.CanonicalID, d.SourceSystem,
		d.SourceEntity, d.SourceID, d.Op, d.Pending, d.Dropped, d.Error, d.Attempts, d.FirstAt, d.LastAt, payload)
	return nil
}

func queueRun(q *queued, r *state.Run) error {
	counts, err := jsonOrNull(len(r.Counts), r.Counts)
	if err != nil {
		return fmt.Errorf("PutRun %s: %w", r.Flow, err)
	}
	var finished *time.Time
	if !r.Finished.IsZero() {
		finished = &r.Finished
	}
	q.add("PutRun "+r.Flow, sqlPutRun, r.Flow, r.Started.UnixNano(), r.Started, finished, r.Mode, r.Error, counts)
	q.add("PutRun "+r.Flow+": trim", sqlTrimRuns, r.Flow, state.MaxRunsPerFlow)
	return nil
}

// PutIntents writes intents in their own committed transaction; call it
// before sending the creates they describe. An intent with the same system
// and canonical id replaces the previous one. It is all-or-nothing.
func (s *Store) PutIntents(in []state.Intent) error {
	if len(in) == 0 {
		return nil
	}
	var q queued
	for _, it := range in {
		if err := checkPair("intent", it.System, it.ID); err != nil {
			return fmt.Errorf("put intents: %w", err)
		}
		if it.At.IsZero() {
			it.At = time.Now()
		}
		match, err := jsonOrNull(len(it.Match), it.Match)
		if err != nil {
			return fmt.Errorf("put intents: encode intent %s/%s: %w", it.System, it.ID, err)
		}
		payload, err := jsonOrNull(len(it.Payload), it.Payload)
		if err != nil {
			return fmt.Errorf("put intents: encode intent %s/%s: %w", it.System, it.ID, err)
		}
		q.add("intent "+it.System+"/"+it.ID, sqlPutIntent, it.System, it.ID, it.Entity, it.Flow, it.At, match, payload)
	}
	if err := s.writable("put intents"); err != nil {
		return err
	}
	if err := s.inTx(q); err != nil {
		return s.fail("put intents", err)
	}
	return nil
}

// DropDeadLetter marks the dead letter stored under key as dropped, in its
// own transaction: it leaves every list and retry, and the engine does not
// send the same content again. Dropping a missing key is not an error.
func (s *Store) DropDeadLetter(key string) error {
	if key == "" {
		return nil
	}
	if err := s.writable("drop dead letter " + key); err != nil {
		return err
	}
	var q queued
	q.add("drop", sqlDropDeadLetter, key)
	if err := s.inTx(q); err != nil {
		return s.fail("drop dead letter "+key, err)
	}
	return nil
}

// jsonOrNull encodes v, or returns nil (SQL NULL) when it has no entries,
// as the bbolt engine leaves empty maps out.
func jsonOrNull(n int, v any) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	return json.Marshal(v)
}

func nonNil(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// checkPair validates the two parts of a system/id key, as the bbolt
// engine does.
func checkPair(what, system, id string) error {
	switch {
	case system == "":
		return fmt.Errorf("%s: empty system", what)
	case strings.IndexByte(system, 0) >= 0:
		return fmt.Errorf("%s: system %q contains a NUL byte", what, system)
	case id == "":
		return fmt.Errorf("%s %s: empty id", what, system)
	}
	return nil
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
