package pgstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/state"
)

// Heartbeat records that replica is alive (info: what it is, for
// operators) and returns every replica seen within ttl, this one included,
// ordered by id. Times are the database's clock, so replicas' clocks need
// not agree.
func (s *Store) Heartbeat(ctx context.Context, replica, info string, ttl time.Duration) ([]state.Replica, error) {
	if err := s.writable("heartbeat"); err != nil {
		return nil, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `INSERT INTO replicas (id, seen_at, info) VALUES ($1, now(), $2)
		ON CONFLICT (id) DO UPDATE SET seen_at = now(), info = EXCLUDED.info`, replica, info); err != nil {
		return nil, s.fail("heartbeat", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, seen_at, info FROM replicas
		WHERE seen_at > now() - make_interval(secs => $1) ORDER BY id`, ttl.Seconds())
	if err != nil {
		return nil, s.fail("list replicas", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (state.Replica, error) {
		var x state.Replica
		err := r.Scan(&x.ID, &x.SeenAt, &x.Info)
		return x, err
	})
	if err != nil {
		return nil, s.fail("list replicas", err)
	}
	return out, nil
}

// Leave removes replica and ends every lease it holds at once, so the
// others take its flows at their next heartbeat instead of after the TTL.
func (s *Store) Leave(ctx context.Context, replica string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(`UPDATE leases SET expires_at = now() WHERE holder = $1 AND expires_at > now()`, replica)
	b.Queue(`DELETE FROM replicas WHERE id = $1`, replica)
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return s.fail("leave", err)
	}
	return nil
}

// Acquire takes the leases on flows for holder for ttl, all of them or
// none (flows that share a target are leased together, so two replicas
// never write one target for two flows of the same group at once). A lease
// is free when it does not exist, has run out, or is holder's already; a
// lease that changes hands gets a greater token. ok is false, and nothing
// changed, when another live holder has any of them.
func (s *Store) Acquire(ctx context.Context, holder string, flows []string, ttl time.Duration) (leases []state.Lease, ok bool, err error) {
	if err := s.writable("acquire leases"); err != nil {
		return nil, false, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, f := range flows {
			var tok int64
			err := tx.QueryRow(ctx, `INSERT INTO leases (flow, holder, token, acquired_at, expires_at)
				VALUES ($1, $2, 1, now(), now() + make_interval(secs => $3))
				ON CONFLICT (flow) DO UPDATE SET
					token = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now()
						THEN leases.token ELSE leases.token + 1 END,
					acquired_at = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > now()
						THEN leases.acquired_at ELSE now() END,
					holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
				WHERE leases.expires_at <= now() OR leases.holder = EXCLUDED.holder
				RETURNING token`, f, holder, ttl.Seconds()).Scan(&tok)
			if errors.Is(err, pgx.ErrNoRows) {
				return errHeld
			}
			if err != nil {
				return err
			}
			leases = append(leases, state.Lease{Flow: f, Token: tok})
		}
		return nil
	})
	if errors.Is(err, errHeld) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.fail("acquire leases", err)
	}
	return leases, true, nil
}

var errHeld = errors.New("held by another replica")

// Renew extends holder's leases for ttl, all or none; ok is false when any
// of them ran out or changed hands (then none is extended: the holder
// must stop and acquire them again).
func (s *Store) Renew(ctx context.Context, holder string, leases []state.Lease, ttl time.Duration) (ok bool, err error) {
	if err := s.writable("renew leases"); err != nil {
		return false, err
	}
	ctx, cancel := s.bound(ctx)
	defer cancel()
	flows, tokens := split(leases)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE leases SET expires_at = now() + make_interval(secs => $4)
			FROM unnest($2::text[], $3::bigint[]) AS l(flow, token)
			WHERE leases.flow = l.flow AND leases.token = l.token AND leases.holder = $1 AND leases.expires_at > now()`,
			holder, flows, tokens, ttl.Seconds())
		if err != nil {
			return err
		}
		if int(tag.RowsAffected()) != len(leases) {
			return errHeld
		}
		return nil
	})
	if errors.Is(err, errHeld) {
		return false, nil
	}
	if err != nil {
		return false, s.fail("renew leases", err)
	}
	return true, nil
}

// Release ends holder's leases now (after its runs of them finished), so
// another replica may take them at once.
func (s *Store) Release(ctx context.Context, holder string, leases []state.Lease) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	flows, tokens := split(leases)
	if _, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = now()
		FROM unnest($2::text[], $3::bigint[]) AS l(flow, token)
		WHERE leases.flow = l.flow AND leases.token = l.token AND leases.holder = $1 AND leases.expires_at > now()`,
		holder, flows, tokens); err != nil {
		return s.fail("release leases", err)
	}
	return nil
}

// Holders lists the leases that have not run out, by flow.
func (s *Store) Holders(ctx context.Context) ([]state.Holder, error) {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT flow, holder, token, expires_at FROM leases WHERE expires_at > now() ORDER BY flow`)
	if err != nil {
		return nil, s.fail("list leases", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (state.Holder, error) {
		var h state.Holder
		err := r.Scan(&h.Flow, &h.Replica, &h.Token, &h.Expires)
		return h, err
	})
	if err != nil {
		return nil, s.fail("list leases", err)
	}
	return out, nil
}

func split(leases []state.Lease) ([]string, []int64) {
	flows := make([]string, len(leases))
	tokens := make([]int64, len(leases))
	for i, l := range leases {
		flows[i], tokens[i] = l.Flow, l.Token
	}
	return flows, tokens
}

// bound limits ctx by the Store's timeout.
func (s *Store) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Fenced returns a view of s whose writes (Commit, PutIntents,
// DropDeadLetter) each check, inside their own transaction, that l is
// still the flow's lease and has not run out, and otherwise write nothing
// and return an error wrapping state.ErrFenced. The check takes the lease
// row FOR SHARE, so a takeover waits for a commit in flight and the new
// holder reads it. Close on the view does nothing.
func (s *Store) Fenced(l state.Lease) state.Storage {
	c := *s
	c.fence = &l
	return &fenced{&c}
}

type fenced struct{ *Store }

func (f *fenced) Close() error { return nil }

// checkFence is the first statement of a fenced transaction.
func checkFence(ctx context.Context, tx pgx.Tx, l *state.Lease) error {
	var tok int64
	err := tx.QueryRow(ctx, `SELECT token FROM leases WHERE flow = $1 AND expires_at > now() FOR SHARE`, l.Flow).Scan(&tok)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("flow %s: lease %d ran out: %w", l.Flow, l.Token, state.ErrFenced)
	case err != nil:
		return err
	case tok != l.Token:
		return fmt.Errorf("flow %s: lease %d was taken over (now %d): %w", l.Flow, l.Token, tok, state.ErrFenced)
	}
	return nil
}
