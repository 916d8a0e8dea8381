package connectors

import (
	"context"
	"errors"
	"fmt"
)

// ErrWriteRefused is wrapped by the error of a write that was not sent
// because its context's write guard refused it (WithWriteGuard).
var ErrWriteRefused = errors.New("write refused before sending")

type guardKey struct{}

// WithWriteGuard returns ctx carrying guard: an HTTP client asks it right
// before it sends each attempt of a request that may change something
// (every method but GET and HEAD), and sends nothing when it returns an
// error. The engine sets it for a replica's run under a lease, so a
// replica paused in the middle of a several-request write (a record and
// its child rows) does not send the rest once its lease ran out.
func WithWriteGuard(ctx context.Context, guard func() error) context.Context {
	if guard == nil {
		return ctx
	}
	return context.WithValue(ctx, guardKey{}, guard)
}

// CheckWriteGuard asks ctx's write guard, if any; the error wraps
// ErrWriteRefused and the guard's reason.
func CheckWriteGuard(ctx context.Context) error {
	g, _ := ctx.Value(guardKey{}).(func() error)
	if g == nil {
		return nil
	}
	if err := g(); err != nil {
		return fmt.Errorf("%w: %w", ErrWriteRefused, err)
	}
	return nil
}
