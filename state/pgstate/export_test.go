package pgstate

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// WithBeforeCommit returns o with a hook run inside Commit's transaction
// after every change was sent and before COMMIT (tests only).
func WithBeforeCommit(o Options, fn func(ctx context.Context, tx pgx.Tx) error) Options {
	o.beforeCommit = fn
	return o
}
