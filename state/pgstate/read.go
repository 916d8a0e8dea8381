package pgstate

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
)

// Cursor returns the cursor stored under key, or nil when there is none (a
// stored empty cursor is a non-nil empty slice).
func (s *Store) Cursor(key string) ([]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM cursors WHERE key = $1`, key).Scan(&v)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read cursor "+key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Link returns the canonical id linked to externalID in system, or "".
func (s *Store) Link(system, externalID string) (string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var id string
	err := s.pool.QueryRow(ctx, `SELECT canonical_id FROM links WHERE system = $1 AND external_id = $2`,
		system, externalID).Scan(&id)
	if isNoRows(err) {
		return "", nil
	}
	if err != nil {
		return "", s.fail("read link "+system+"/"+externalID, err)
	}
	return id, nil
}

// Links returns every link of system: external id -> canonical id.
func (s *Store) Links(system string) (map[string]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT external_id, canonical_id FROM links WHERE system = $1`, system)
	if err != nil {
		return nil, s.fail("read links of "+system, err)
	}
	out := map[string]string{}
	var ext, id string
	_, err = pgx.ForEachRow(rows, []any{&ext, &id}, func() error {
		out[ext] = id
		return nil
	})
	if err != nil {
		return nil, s.fail("read links of "+system, err)
	}
	return out, nil
}

type sourceJSON struct {
	System string    `json:"system"`
	At     time.Time `json:"at"`
}

// Record returns the golden record with canonical id id, or nil.
func (s *Store) Record(id string) (*funnel.Record, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var fields, links, sources, gone []byte
	err := s.pool.QueryRow(ctx, `SELECT fields, links, sources, gone FROM records WHERE id = $1`, id).
		Scan(&fields, &links, &sources, &gone)
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read record "+id, err)
	}
	r, err := decodeRecord(id, fields, links, sources, gone)
	if err != nil {
		return nil, s.fail("read record "+id, err)
	}
	return r, nil
}

// Fingerprint returns the fingerprint of externalID in system, or nil.
func (s *Store) Fingerprint(system, externalID string) (*state.Fingerprint, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var f state.Fingerprint
	var payload []byte
	err := s.pool.QueryRow(ctx, `SELECT hash, entity, source, at, payload FROM fingerprints
		WHERE system = $1 AND external_id = $2`, system, externalID).Scan(&f.Hash, &f.Entity, &f.Source, &f.At, &payload)
	if isNoRows(err) {
		return nil, nil
	}
	if err == nil {
		err = unmarshalAll(&f.Payload, payload)
	}
	if err != nil {
		return nil, s.fail("read fingerprint "+system+"/"+externalID, err)
	}
	f.At = f.At.UTC()
	return &f, nil
}

// Intents lists the pending create intents of system ("" = every system),
// sorted by system then canonical id.
func (s *Store) Intents(system string) ([]state.Intent, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT system, canonical_id, entity, flow, at, match, payload FROM intents
		WHERE $1 = '' OR system = $1 ORDER BY system, canonical_id`, system)
	if err != nil {
		return nil, s.fail("read intents", err)
	}
	var out []state.Intent
	var in state.Intent
	var match, payload []byte
	_, err = pgx.ForEachRow(rows, []any{&in.System, &in.ID, &in.Entity, &in.Flow, &in.At, &match, &payload}, func() error {
		it := state.Intent{System: in.System, ID: in.ID, Entity: in.Entity, Flow: in.Flow, At: in.At.UTC()}
		if err := unmarshalAll(&it.Match, match, &it.Payload, payload); err != nil {
			return fmt.Errorf("intent %s/%s: %w", it.System, it.ID, err)
		}
		out = append(out, it)
		return nil
	})
	if err != nil {
		return nil, s.fail("read intents", err)
	}
	return out, nil
}

const deadLetterColumns = `key, flow, system, canonical_id, source_system, source_entity, source_id, op,
	pending, dropped, error, attempts, first_at, last_at, payload`

// scanDeadLetter reads one deliveries row.
func scanDeadLetter(row pgx.Row) (state.DeadLetter, error) {
	var d state.DeadLetter
	var payload []byte
	err := row.Scan(&d.Key, &d.Flow, &d.System, &d.CanonicalID, &d.SourceSystem, &d.SourceEntity, &d.SourceID, &d.Op,
		&d.Pending, &d.Dropped, &d.Error, &d.Attempts, &d.FirstAt, &d.LastAt, &payload)
	if err != nil {
		return d, err
	}
	d.FirstAt, d.LastAt = d.FirstAt.UTC(), d.LastAt.UTC()
	return d, unmarshalAll(&d.Payload, payload)
}

// DeadLetters lists the dead letters of flow ("" = every flow), sorted by
// key, without the dropped ones.
func (s *Store) DeadLetters(flow string) ([]state.DeadLetter, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+deadLetterColumns+` FROM deliveries
		WHERE ($1 = '' OR flow = $1) AND NOT dropped ORDER BY key`, flow)
	if err != nil {
		return nil, s.fail("read dead letters", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (state.DeadLetter, error) {
		return scanDeadLetter(row)
	})
	if err != nil {
		return nil, s.fail("read dead letters", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// DeadLetter returns the dead letter stored under key (dropped or not), or
// nil.
func (s *Store) DeadLetter(key string) (*state.DeadLetter, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	d, err := scanDeadLetter(s.pool.QueryRow(ctx, `SELECT `+deadLetterColumns+` FROM deliveries WHERE key = $1`, key))
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, s.fail("read dead letter "+key, err)
	}
	return &d, nil
}

// LastRun returns the latest run of flow, or nil when it never ran.
func (s *Store) LastRun(flow string) (*state.Run, error) {
	runs, err := s.Runs(flow, 1)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

// Runs returns up to limit runs of flow ("" = every flow), newest first
// (by Started, then flow name). A limit of zero or less returns every kept
// run.
func (s *Store) Runs(flow string, limit int) ([]state.Run, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.pool.Query(ctx, `SELECT flow, started_ns, finished, mode, error, counts FROM runs
		WHERE $1 = '' OR flow = $1 ORDER BY started_ns DESC, flow LIMIT $2`, flow, lim)
	if err != nil {
		return nil, s.fail("read runs", err)
	}
	var out []state.Run
	var r state.Run
	var started int64
	var finished *time.Time
	var counts []byte
	_, err = pgx.ForEachRow(rows, []any{&r.Flow, &started, &finished, &r.Mode, &r.Error, &counts}, func() error {
		run := state.Run{Flow: r.Flow, Mode: r.Mode, Error: r.Error, Started: time.Unix(0, started).UTC()}
		if finished != nil {
			run.Finished = finished.UTC()
		}
		if err := unmarshalAll(&run.Counts, counts); err != nil {
			return fmt.Errorf("run %s: %w", run.Flow, err)
		}
		out = append(out, run)
		return nil
	})
	if err != nil {
		return nil, s.fail("read runs", err)
	}
	return out, nil
}

// unmarshalAll decodes pairs of (destination, JSON): a NULL (nil) JSON
// leaves its destination alone.
func unmarshalAll(pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		data, _ := pairs[i+1].([]byte)
		if data == nil {
			continue
		}
		if err := json.Unmarshal(data, pairs[i]); err != nil {
			return err
		}
	}
	return nil
}
