package pgstate

import (
	"context"

	"github.com/crmsync/crmsync/state"
)

// notifyChannel is the LISTEN/NOTIFY channel of run hints.
const notifyChannel = "crmsync_run"

// Notify sends flow on the replicas' channel (pg_notify: delivered to
// every listening session when the transaction commits).
func (s *Store) Notify(ctx context.Context, flow string) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, flow); err != nil {
		return s.fail("notify replicas", err)
	}
	return nil
}

// Listen holds one pooled connection in LISTEN and calls fn for every
// notified flow until ctx is done.
func (s *Store) Listen(ctx context.Context, fn func(flow string)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return s.fail("listen for replicas' hints", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return s.fail("listen for replicas' hints", err)
	}
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			// A connection left in LISTEN must not go back to the pool.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.fail("listen for replicas' hints", err)
		}
		fn(n.Payload)
	}
}

var _ state.Notifier = (*Store)(nil)
