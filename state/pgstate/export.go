package pgstate

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
)

var _ state.Exporter = (*Store)(nil)

// sqlRestoreDeadLetter stores a dead letter as given (state.Batch's
// RestoreDeadLetter): no attempt counted, the first time replaced.
const sqlRestoreDeadLetter = `INSERT INTO deliveries (key, flow, system, canonical_id, source_system, source_entity,
		source_id, op, pending, dropped, error, attempts, first_at, last_at, payload)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
	ON CONFLICT (key) DO UPDATE SET flow = EXCLUDED.flow, system = EXCLUDED.system,
		canonical_id = EXCLUDED.canonical_id, source_system = EXCLUDED.source_system,
		source_entity = EXCLUDED.source_entity, source_id = EXCLUDED.source_id, op = EXCLUDED.op,
		pending = EXCLUDED.pending, dropped = EXCLUDED.dropped, error = EXCLUDED.error,
		attempts = EXCLUDED.attempts, first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at,
		payload = EXCLUDED.payload`

// queueRestoreDeadLetter queues the exact write of one dead letter.
func queueRestoreDeadLetter(q *queued, d *state.DeadLetter) error {
	payload, err := jsonOrNull(boolInt(d.Payload != nil), d.Payload)
	if err != nil {
		return fmt.Errorf("RestoreDeadLetter %s: %w", d.Key, err)
	}
	q.add("RestoreDeadLetter "+d.Key, sqlRestoreDeadLetter, d.Key, d.Flow, d.System, d.CanonicalID, d.SourceSystem,
		d.SourceEntity, d.SourceID, d.Op, d.Pending, d.Dropped, d.Error, d.Attempts, d.FirstAt, d.LastAt, payload)
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The export's queries, one per kind, each in the order the bbolt engine
// lists its keys (text columns are COLLATE "C": byte order).
const (
	sqlExportCursors = `SELECT key, value FROM cursors ORDER BY key`
	// The links a record names that the index does not hold, by system.
	sqlExportRecords = `SELECT r.id, r.fields, r.links, r.sources, r.gone,
			ARRAY(SELECT e.key FROM jsonb_each_text(r.links) AS e(key, value)
				WHERE e.key <> '' AND e.value <> '' AND NOT EXISTS (
					SELECT 1 FROM links l WHERE l.system = e.key AND l.external_id = e.value)
				ORDER BY e.key COLLATE "C")
		FROM records r ORDER BY r.id`
	sqlExportLinks        = `SELECT system, external_id, canonical_id FROM links ORDER BY system, external_id`
	sqlExportFingerprints = `SELECT system, external_id, hash, entity, source, at, payload FROM fingerprints
		ORDER BY system, external_id`
	sqlExportIntents = `SELECT system, canonical_id, entity, flow, at, match, payload FROM intents
		ORDER BY system, canonical_id`
	sqlExportDeadLetters = `SELECT ` + deadLetterColumns + ` FROM deliveries ORDER BY key`
	// bbolt keys a run by its start as unsigned nanoseconds: starts before
	// 1970 sort after the others.
	sqlExportRuns = `SELECT flow, started_ns, finished, mode, error, counts FROM runs
		ORDER BY flow, started_ns < 0, started_ns`
)

// Export calls fn with every change that rebuilds what s holds (see
// state.Exporter for the order), from one REPEATABLE READ, read-only
// transaction: a consistent snapshot while the daemon keeps writing. Rows
// are read as they come, one kind after the other. Only ctx bounds it (not
// Options.Timeout: a million records take longer than one call).
func (s *Store) Export(ctx context.Context, fn func(state.Op) error) error {
	var fnErr error
	wrapped := func(o state.Op) error {
		if err := fn(o); err != nil {
			fnErr = err
			return err
		}
		return nil
	}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			for _, step := range []func(context.Context, pgx.Tx, func(state.Op) error) error{
				exportCursors, exportRecords, exportLinks, exportFingerprints, exportIntents,
				exportDeadLetters, exportRuns,
			} {
				if err := step(ctx, tx, wrapped); err != nil {
					return err
				}
			}
			return nil
		})
	if fnErr != nil {
		return fnErr // as fn returned it
	}
	if err != nil {
		return s.fail("export state", err)
	}
	return nil
}

// forEach runs sql and calls fn after scanning each row into dest.
func forEach(ctx context.Context, tx pgx.Tx, sql string, dest []any, fn func() error) error {
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, dest, fn)
	return err
}

func exportCursors(ctx context.Context, tx pgx.Tx, fn func(state.Op) error) error {
	var key string
	var val []byte
	return forEach(ctx, tx, sqlExportCursors, []any{&key, &val}, func() error {
		c := make([]byte, len(val))
		copy(c, val)
		return fn(state.Op{Kind: state.OpSetCursor, Key: key, Cursor: c})
	})
}

func exportRecords(ctx context.Context, tx pgx.Tx, fn func(state.Op) error) error {
	var id string
	var fields, links, sources, gone []byte
	var unindexed []string
	return forEach(ctx, tx, sqlExportRecords, []any{&id, &fields, &links, &sources, &gone, &unindexed}, func() error {
		r, err := decodeRecord(id, fields, links, sources, gone)
		if err != nil {
			return fmt.Errorf("record %s: %w", id, err)
		}
		if err := fn(state.Op{Kind: state.OpPutRecord, Record: r}); err != nil {
			return err
		}
		for _, sys := range unindexed {
			if err := fn(state.Op{Kind: state.OpUnlink, System: sys, ID: r.Links[sys]}); err != nil {
				return err
			}
		}
		return nil
	})
}

// decodeRecord builds a golden record from its columns, as Store.Record.
func decodeRecord(id string, fields, links, sources, gone []byte) (*funnel.Record, error) {
	r := &funnel.Record{ID: id}
	var src map[string]sourceJSON
	if err := unmarshalAll(&r.Fields, fields, &r.Links, links, &src, sources, &r.Gone, gone); err != nil {
		return nil, err
	}
	if r.Fields == nil {
		r.Fields = map[string]any{}
	}
	if r.Links == nil {
		r.Links = map[string]string{}
	}
	if len(src) > 0 {
		r.Sources = make(map[string]funnel.Source, len(src))
		for k, v := range src {
			r.Sources[k] = funnel.Source{System: v.System, At: v.At}
		}
	}
	if len(r.Gone) == 0 {
		r.Gone = nil
	}
	return r, nil
}

func exportLinks(ctx context.Context, tx pgx.Tx, fn func(state.Op) error) error {
	var sys, ext, id string
	return forEach(ctx, tx, sqlExportLinks, []any{&sys, &ext, &id}, func() error {
		return fn(state.Op{Kind: state.OpLink, System: sys, ID: ext, Target: id})
	})
}

func exportFingerprints(ctx context.Context, tx pgx.Tx, fn func(state.Op) error) error {
	var sys, ext string
	var f state.Fingerprint
	var payload []byte
	return forEach(ctx, tx, sqlExportFingerprints, []any{&sys, &ext, &f.Hash, &f.Entity, &f.Source, &f.At, &payload}, func() error {
		fp := state.Fingerprint{Hash: f.Hash, Entity: f.Entity, Source: f.Source, At: f.At.UTC()}
		if err := unmarshalAll(&fp.Payload, payload); err != nil {
			return fmt.Errorf("fingerprint %s/%s: %w", sys, ext, err)
		}
		return fn(state.Op{Kind: state.OpPutFingerprint, System: sys, ID: ext, Fingerprint: &fp})
	})
}

func exportIntents(ctx context.Context, tx pgx.Tx, fn func(state.Op) error) error {
	var in state.Intent
	var match, payload []byte
	return forEach(ctx, tx, sqlExportIntents, []any{&in.System, &in.ID, &in.Entity, &in.Flow, &in.At, &match, &payload}, func() error {
		it := state.Intent{System: in.System, ID: in.ID, Entity: in.Entity, Flow: in.Flow, At: in.At.UTC()}
		if err := unmarshalAll(&it.Match, match, &it.Payload, payload); err != nil {
			return fmt.Errorf("intent %s/%s: %w", it.System, it.ID, err)
		}
		return fn(state.Op{Kind: state.OpPutIntent, System: it.System, ID: it.ID, Intent: &it})
	})
}

func exportDeadLetters(ctx context.Context, tx pgx.Tx, fn func(state.Op) error) error {
	rows, err := tx.Query(ctx, sqlExportDeadLetters)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDeadLetter(rows)
		if err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		if err := fn(state.Op{Kind: state.OpRestoreDeadLetter, Key: d.Key, DeadLetter: &d}); err != nil {
			return err
		}
	}
	return rows.Err()
}

func exportRuns(ctx context.Context, tx pgx.Tx, fn func(state.Op) error) error {
	var r state.Run
	var started int64
	var finished *time.Time
	var counts []byte
	return forEach(ctx, tx, sqlExportRuns, []any{&r.Flow, &started, &finished, &r.Mode, &r.Error, &counts}, func() error {
		run := state.Run{Flow: r.Flow, Mode: r.Mode, Error: r.Error, Started: time.Unix(0, started).UTC()}
		if finished != nil {
			run.Finished = finished.UTC()
		}
		if err := unmarshalAll(&run.Counts, counts); err != nil {
			return fmt.Errorf("run %s: %w", run.Flow, err)
		}
		return fn(state.Op{Kind: state.OpPutRun, Run: &run})
	})
}
