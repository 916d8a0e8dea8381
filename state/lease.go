package state

import (
	"context"
	"time"
)

// Lease is a replica's hold on one flow: the fencing token every commit of
// the flow's state is checked against under that lease.
type Lease struct {
	Flow  string `json:"flow"`
	Token int64  `json:"token"`
}

// Holder is who holds a flow's lease now.
type Holder struct {
	Flow    string    `json:"flow"`
	Replica string    `json:"replica"`
	Token   int64     `json:"token"`
	Expires time.Time `json:"expires"`
}

// Replica is a replica seen at its last heartbeat.
type Replica struct {
	ID     string    `json:"id"`
	SeenAt time.Time `json:"seen_at"`
	Info   string    `json:"info,omitempty"`
}

// Leaser is a shared state engine that leases flows to replicas
// (state/pgstate); the bbolt file, held by one process, needs none. Times
// are the engine's clock, so the replicas' clocks need not agree.
type Leaser interface {
	// Heartbeat records replica as alive and lists the replicas seen
	// within ttl, ordered by id.
	Heartbeat(ctx context.Context, replica, info string, ttl time.Duration) ([]Replica, error)
	// Acquire takes the leases on flows for holder, all or none; ok is
	// false when another live holder has any of them.
	Acquire(ctx context.Context, holder string, flows []string, ttl time.Duration) (leases []Lease, ok bool, err error)
	// Renew extends leases, all or none; ok is false when any ran out or
	// changed hands.
	Renew(ctx context.Context, holder string, leases []Lease, ttl time.Duration) (ok bool, err error)
	// Release ends leases now.
	Release(ctx context.Context, holder string, leases []Lease) error
	// Leave forgets replica and ends its leases.
	Leave(ctx context.Context, replica string) error
	// Holders lists the live leases by flow.
	Holders(ctx context.Context) ([]Holder, error)
	// Fenced is a view of the state whose every write checks l in its own
	// transaction, failing with ErrFenced once l is no longer the flow's.
	Fenced(l Lease) Storage
}

// Notifier passes "run this flow" hints between the replicas sharing a
// state (a webhook event received by a replica that does not hold the
// flow), best effort: a lost hint costs only the wait for the schedule.
type Notifier interface {
	// Notify asks every replica listening to run flow if it holds it.
	Notify(ctx context.Context, flow string) error
	// Listen calls fn with every flow notified, until ctx is done; it
	// returns ctx's error then, or the error that broke the listening
	// connection.
	Listen(ctx context.Context, fn func(flow string)) error
}
