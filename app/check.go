package app

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
)

// Reach is the outcome of one system's online check.
type Reach struct {
	System string
	Took   time.Duration
	Err    error // nil: the API answered an authenticated read
}

// CheckOnline makes one small authenticated read of every system (the first
// page of a pull, one record), so a wrong URL, a refused token or a down API
// shows before a sync needs it, and not only once there is something to
// write. It reads nothing into state and writes nowhere.
func CheckOnline(ctx context.Context, systems map[string]*engine.System, timeout time.Duration) []Reach {
	out := make([]Reach, 0, len(systems))
	for _, n := range slices.Sorted(maps.Keys(systems)) {
		c, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		_, err := systems[n].Conn.Pull(c, nil, connectors.PullOptions{PageSize: 1})
		cancel()
		out = append(out, Reach{System: n, Took: time.Since(start), Err: err})
	}
	return out
}
