package emulate

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
)

// StatsPath is where every emulator started by Start answers, to a GET, how
// many requests it has served so far (Stats as JSON). The path is outside
// every vendor API, and the stats requests themselves are not counted. The
// bench command reads it before and after a run to count the requests the
// run made.
const StatsPath = "/_emulate/stats"

// Stats counts the requests one emulator served.
type Stats struct {
	// Requests is every request; Reads are the GET and HEAD ones, Writes
	// the others (POST, PUT, PATCH, DELETE).
	Requests int64 `json:"requests"`
	Reads    int64 `json:"reads"`
	Writes   int64 `json:"writes"`
}

// Sub returns s less an earlier snapshot before.
func (s Stats) Sub(before Stats) Stats {
	return Stats{Requests: s.Requests - before.Requests, Reads: s.Reads - before.Reads, Writes: s.Writes - before.Writes}
}

// Add returns the sum of s and o.
func (s Stats) Add(o Stats) Stats {
	return Stats{Requests: s.Requests + o.Requests, Reads: s.Reads + o.Reads, Writes: s.Writes + o.Writes}
}

// counter counts the requests its handler serves and answers StatsPath.
type counter struct {
	next          http.Handler
	reads, writes atomic.Int64
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == StatsPath && r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.stats())
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		c.reads.Add(1)
	} else {
		c.writes.Add(1)
	}
	c.next.ServeHTTP(w, r)
}

func (c *counter) stats() Stats {
	rd, wr := c.reads.Load(), c.writes.Load()
	return Stats{Requests: rd + wr, Reads: rd, Writes: wr}
}

// Stats returns the requests each emulator has served so far, by type name.
func (s *Servers) Stats() map[string]Stats {
	out := make(map[string]Stats, len(s.counters))
	for name, c := range s.counters {
		out[name] = c.stats()
	}
	return out
}
