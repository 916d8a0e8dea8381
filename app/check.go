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

// Fix says, for a failed check, what an admin should look at first, from
// the kind of error the connector reported ("" when the check passed or the
// kind says nothing more than the error does).
func (r Reach) Fix() string {
	if r.Err == nil {
		return ""
	}
	switch connectors.KindOf(r.Err) {
	case connectors.Auth:
		return "the credentials were refused: check this system's token (or OAuth client) in the config and the ${VAR} it names"
	case connectors.Forbidden:
		return "the API user may not read this: give it read access to the entity sets the mapping uses"
	case connectors.NotFound:
		return "the URL answers but has no such endpoint: check the system's url (host, base path, API version)"
	case connectors.Rejected:
		return "the API refused the request itself: check the system's url and the mapping's entity names"
	case connectors.Retryable, connectors.OutcomeUnknown:
		return "not reachable or failing: check the url, DNS, the network or proxy between here and the API, and the vendor's status page"
	}
	return ""
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
