package e2e

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
)

// timedStore counts the calls of each state method and the time spent in
// them (benchmarks: where a state engine's time goes).
type timedStore struct {
	state.Storage
	mu    sync.Mutex
	calls map[string]int
	spent map[string]time.Duration
}

func newTimedStore(s state.Storage) *timedStore {
	return &timedStore{Storage: s, calls: map[string]int{}, spent: map[string]time.Duration{}}
}

func (t *timedStore) since(name string, start time.Time) {
	d := time.Since(start)
	t.mu.Lock()
	t.calls[name]++
	t.spent[name] += d
	t.mu.Unlock()
}

// report lists the methods by time spent, per record.
func (t *timedStore) report(records int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make([]string, 0, len(t.calls))
	for n := range t.calls {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return t.spent[names[i]] > t.spent[names[j]] })
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "  %-12s %6.2f calls/record %8.1f µs/record %7.1f µs/call\n", n, float64(t.calls[n])/float64(records),
			float64(t.spent[n].Microseconds())/float64(records), float64(t.spent[n].Microseconds())/float64(t.calls[n]))
	}
	return b.String()
}

func (t *timedStore) Commit(b *state.Batch) error {
	defer t.since("Commit", time.Now())
	return t.Storage.Commit(b)
}

func (t *timedStore) Cursor(key string) ([]byte, error) {
	defer t.since("Cursor", time.Now())
	return t.Storage.Cursor(key)
}

func (t *timedStore) Link(system, id string) (string, error) {
	defer t.since("Link", time.Now())
	return t.Storage.Link(system, id)
}

func (t *timedStore) Links(system string) (map[string]string, error) {
	defer t.since("Links", time.Now())
	return t.Storage.Links(system)
}

func (t *timedStore) Record(id string) (*funnel.Record, error) {
	defer t.since("Record", time.Now())
	return t.Storage.Record(id)
}

func (t *timedStore) Fingerprint(system, id string) (*state.Fingerprint, error) {
	defer t.since("Fingerprint", time.Now())
	return t.Storage.Fingerprint(system, id)
}

func (t *timedStore) PutIntents(in []state.Intent) error {
	defer t.since("PutIntents", time.Now())
	return t.Storage.PutIntents(in)
}

func (t *timedStore) Intents(system string) ([]state.Intent, error) {
	defer t.since("Intents", time.Now())
	return t.Storage.Intents(system)
}

func (t *timedStore) DeadLetter(key string) (*state.DeadLetter, error) {
	defer t.since("DeadLetter", time.Now())
	return t.Storage.DeadLetter(key)
}

func (t *timedStore) DeadLetters(flow string) ([]state.DeadLetter, error) {
	defer t.since("DeadLetters", time.Now())
	return t.Storage.DeadLetters(flow)
}
