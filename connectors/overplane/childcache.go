package overplane

import (
	"encoding/json"
	"hash/fnv"
	"sync"
	"time"
)

// DefaultChildMaxAge is how long a prospect's child rows, once read, are
// returned again without a request while the prospect's updated_at stays
// the same (Options.ChildMaxAge).
const DefaultChildMaxAge = time.Hour

// childCache remembers each prospect's child rows as last read or written,
// with the prospect's updated_at at that time, so that a scan reads the
// child tables only of prospects that changed (updated_at moved), are new
// to this process, or whose rows are older than their max age (edits of a
// row that do not move the parent's updated_at; docs/apis.md §2 "Child
// tables").
//
// Every read or write takes a sequence number before it starts; an entry
// is replaced only by one with a later number, so a scan that read the rows
// before a concurrent Update wrote them cannot put the older rows back.
type childCache struct {
	maxAge time.Duration

	mu      sync.Mutex
	seq     uint64
	entries map[string]childEntry
}

// childEntry is one prospect's rows. rows nil marks rows that must be read
// again (a write of them started or failed).
type childEntry struct {
	seq     uint64
	updated time.Time // the prospect's updated_at when the rows were read
	readAt  time.Time // client clock
	rows    []byte    // JSON object: child field -> list of rows
}

func newChildCache(maxAge time.Duration) *childCache {
	return &childCache{maxAge: maxAge, entries: map[string]childEntry{}}
}

// on reports whether the cache is used at all.
func (cc *childCache) on() bool { return cc.maxAge > 0 }

// begin returns the sequence number of a read or write about to start.
func (cc *childCache) begin() uint64 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.seq++
	return cc.seq
}

// lookup returns the child fields of prospect id if its rows were read
// while its updated_at was updated and are younger than their max age.
func (cc *childCache) lookup(id string, updated, now time.Time) (map[string]any, bool) {
	if !cc.on() {
		return nil, false
	}
	cc.mu.Lock()
	e, ok := cc.entries[id]
	cc.mu.Unlock()
	if !ok || e.rows == nil || !e.updated.Equal(updated) || now.Sub(e.readAt) >= cc.age(id) {
		return nil, false
	}
	var out map[string]any
	if json.Unmarshal(e.rows, &out) != nil {
		return nil, false
	}
	return out, true
}

// age is the max age of one prospect's rows: between half and all of
// maxAge, fixed per id, so that the rows read in one scan are not all
// read again in the same later scan.
func (cc *childCache) age(id string) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	half := cc.maxAge / 2
	if half <= 0 {
		return cc.maxAge
	}
	return half + time.Duration(h.Sum64()%uint64(half))
}

// store remembers the child fields of prospect id as read (or written)
// under sequence number seq, unless a later read or write already did.
func (cc *childCache) store(seq uint64, id string, updated, readAt time.Time, fields map[string]any) {
	if !cc.on() {
		return
	}
	rows, err := json.Marshal(fields)
	if err != nil {
		rows = nil
	}
	cc.put(id, childEntry{seq: seq, updated: updated, readAt: readAt, rows: rows})
}

// forget marks prospect id's rows to be read again (a write of them
// starts or ended, or the prospect was deleted): a read that began before
// cannot store what it read.
func (cc *childCache) forget(id string, now time.Time) {
	if !cc.on() {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.seq++
	cc.entries[id] = childEntry{seq: cc.seq, readAt: now}
}

// prune drops the entries older than maxAge (rows no lookup returns any
// more, marks of writes long finished), so prospects deleted behind the
// client's back do not stay in memory. A completed scan calls it.
func (cc *childCache) prune(now time.Time) {
	if !cc.on() {
		return
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for id, e := range cc.entries {
		if now.Sub(e.readAt) >= cc.maxAge {
			delete(cc.entries, id)
		}
	}
}

// size is the number of prospects remembered.
func (cc *childCache) size() int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.entries)
}

func (cc *childCache) put(id string, e childEntry) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if old, ok := cc.entries[id]; ok && old.seq > e.seq {
		return
	}
	cc.entries[id] = e
}
