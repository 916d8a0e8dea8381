package pgstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/crmsync/crmsync/state"
)

// Statements for the changes that are applied one at a time (plan.go has
// the ones that apply many changes at once).
const (
	sqlPutIntents = `INSERT INTO intents (system, canonical_id, entity, flow, at, match, payload)
		SELECT s, c, e, f, a, m::jsonb, p::jsonb
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[]) AS i(s, c, e, f, a, m, p)
		ON CONFLICT (system, canonical_id) DO UPDATE SET entity = EXCLUDED.entity, flow = EXCLUDED.flow,
			at = EXCLUDED.at, match = EXCLUDED.match, payload = EXCLUDED.payload`
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
	sqlDropDeadLetter = `UPDATE deliveries SET dropped = true, pending = false WHERE key = $1`
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
	if err := plan(&q, ops); err != nil {
		return fmt.Errorf("commit state batch: nothing written: %w", err)
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
	if s.fence != nil {
		if err := checkFence(ctx, tx, s.fence); err != nil {
			return err
		}
	}
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

// PutIntents writes intents in their own committed transaction; call it
// before sending the creates they describe. An intent with the same system
// and canonical id replaces the previous one. It is all-or-nothing.
func (s *Store) PutIntents(in []state.Intent) error {
	if len(in) == 0 {
		return nil
	}
	var q queued
	last := lastWins[*state.Intent]{}
	for i := range in {
		last.put(pair(in[i].System, in[i].ID), &in[i])
	}
	put := make([]state.Intent, 0, len(last.keys))
	for _, k := range last.keys {
		put = append(put, *last.vals[k])
	}
	if err := queuePutIntents(&q, put); err != nil {
		return fmt.Errorf("put intents: %w", err)
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

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// queuePutIntent queues the write of one create intent.
// queuePutIntents queues one statement writing intents of distinct
// system and canonical id.
func queuePutIntents(q *queued, in []state.Intent) error {
	n := len(in)
	if n == 0 {
		return nil
	}
	sys, ids, ents, flows := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ats := make([]time.Time, n)
	matches, payloads := make([]*string, n), make([]*string, n)
	for i, it := range in {
		if err := state.CheckPair("intent", it.System, it.ID); err != nil {
			return err
		}
		if it.At.IsZero() {
			it.At = time.Now()
		}
		match, err := jsonOrNull(len(it.Match), it.Match)
		if err != nil {
			return fmt.Errorf("encode intent %s/%s: %w", it.System, it.ID, err)
		}
		payload, err := jsonOrNull(len(it.Payload), it.Payload)
		if err != nil {
			return fmt.Errorf("encode intent %s/%s: %w", it.System, it.ID, err)
		}
		sys[i], ids[i], ents[i], flows[i], ats[i] = it.System, it.ID, it.Entity, it.Flow, it.At
		matches[i], payloads[i] = strPtr(match), strPtr(payload)
	}
	q.add(fmt.Sprintf("intent %s/%s (and %d more)", sys[0], ids[0], n-1), sqlPutIntents, sys, ids, ents, flows, ats, matches, payloads)
	return nil
}
