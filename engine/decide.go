package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// item is one source record being handled.
type item struct {
	native connectors.Record
	key    string // the source record's state key (see System.Key)
	golden *funnel.Record
	fp     state.Fingerprint
	mu     sync.Mutex // guards golden while target writes run concurrently
	failed bool
	// resync: the golden record took values from a target during this page,
	// so the source must hear of them: the source fingerprint is not stored.
	resync bool
	// owed holds the targets that have a delivery entry (pending or dead)
	// for this record: it must not be skipped as unchanged, and the entry
	// goes once the target holds what it should.
	owed map[string]bool
	// dropped holds the targets where an operator dropped this record's
	// dead letter; sameAtSource says the source content is what it was, so
	// that write is not tried again.
	dropped      map[string]bool
	sameAtSource bool
}

// Op is what a change does to its target.
type Op string

// The operations of a change (plan output, logs, delivery entries).
const (
	OpCreate     Op = "create"
	OpLink       Op = "link" // an existing record found and linked instead of created
	OpUpdate     Op = "update"
	OpConvert    Op = "convert"
	OpClose      Op = "close"
	OpDelete     Op = "delete"
	OpDeadLetter Op = "dead-letter"
)

// Ops lists every operation, in the order plan prints them.
func Ops() []Op {
	return []Op{OpCreate, OpLink, OpUpdate, OpConvert, OpClose, OpDelete, OpDeadLetter}
}

// task is one write to one target.
type task struct {
	it     *item
	t      *targetSys
	op     Op
	out    mapping.Native
	prevID string
	prev   *state.Fingerprint
	diff   map[string]any
	// results
	done    *connectors.Record
	linked  bool // matched an existing record instead of creating one
	err     error
	payload map[string]any
	noEcho  bool // do not store the target's view hash (it holds edits the other side lacks)
	// want and keepOwed are set when resolving a create intent: the values
	// that were sent (what to look the record up by), and whether the
	// delivery stays owed after it lands (the golden record moved on).
	want     *funnel.Record
	keepOwed bool
}

// handle processes one page's records and fills b with their effects:
// prepare, write, settle, one after the other (the page loop of a run
// overlaps pages instead; see run.do).
func (r *run) handle(ctx context.Context, recs []connectors.Record, b *state.Batch) error {
	items, tasks, err := r.prepPage(recs, b)
	if err != nil {
		return err
	}
	if !r.plan {
		if err := r.writeAhead(tasks); err != nil {
			return err
		}
	}
	fatal := r.execute(ctx, tasks)
	r.settlePage(items, tasks, b)
	return fatal
}

// prepPage prepares a page's records: their golden records and the writes
// each target needs. Effects that need no write go into b.
func (r *run) prepPage(recs []connectors.Record, b *state.Batch) ([]*item, []*task, error) {
	var items []*item
	var tasks []*task
	for _, rec := range dedupe(recs, r.src.Key) {
		r.count(r.src.Name, func(c *Counts) { c.Pulled++ })
		it, ts, err := r.prepare(rec, b)
		if err != nil {
			return nil, nil, err
		}
		if it == nil {
			continue
		}
		items = append(items, it)
		tasks = append(tasks, ts...)
	}
	creates := map[*targetSys]int{}
	for _, tk := range tasks {
		if tk.op == OpCreate {
			creates[tk.t]++
		}
	}
	for _, t := range r.targets {
		t.imu.Lock()
		t.creates = creates[t] // read by indexFor, also from the writes of the page before
		t.imu.Unlock()
	}
	return items, tasks, nil
}

// settlePage records what a page's finished writes did, and the page's
// golden records and source fingerprints, in b.
func (r *run) settlePage(items []*item, tasks []*task, b *state.Batch) {
	for _, tk := range tasks {
		r.apply(tk, b)
	}
	for _, it := range items {
		if it.failed {
			r.mu.Lock()
			r.failedRun[it.key] = it.fp.Hash
			r.mu.Unlock()
		}
		// The source fingerprint records what was read, even when a target
		// failed: every failed target holds a delivery entry (pending or
		// dead), which disables the unchanged shortcut until the target has
		// taken the record (see prepare), and which the retry pass of every
		// later run works off.
		if !it.resync {
			b.PutFingerprint(r.src.Name, it.key, it.fp)
		}
		b.PutRecord(it.golden)
		if r.plan {
			// A plan commits nothing, so later pages must see this page's
			// golden records here. A sync reads them back from state, which
			// keeps memory flat however many records a run handles.
			r.planned[it.golden.ID] = it.golden
			r.plannedKeys[it.key] = it.fp.Hash
		}
	}
}

// writeAhead commits, in one transaction, the golden records (with their
// source links) and the intents of every create about to be sent, so a
// crash mid-page can be resolved without creating anything twice: a create
// is only sent once its intent and the record the intent names are durable
// together (an intent whose record is missing would be dropped at recovery).
func (r *run) writeAhead(tasks []*task) error {
	pre := &state.Batch{}
	seen := map[string]bool{}
	for _, tk := range tasks {
		if tk.op != OpCreate {
			continue
		}
		if g := tk.it.golden; !seen[g.ID] {
			seen[g.ID] = true
			pre.PutRecord(g)
		}
		pre.PutIntent(state.Intent{ID: tk.it.golden.ID, System: tk.t.Name, Entity: tk.out.Entity,
			Match: r.matchFor(tk.t, tk.it.golden, tk.out), Payload: tk.out.Fields, Flow: r.f.Name, At: r.e.o.Now().UTC()})
	}
	if pre.Empty() {
		return nil
	}
	if err := r.store().Commit(pre); err != nil {
		return fmt.Errorf("commit golden records and create intents before creates: %w", err)
	}
	return nil
}

// golden returns the golden record for canonical id (the in-run copy when
// an earlier page changed it), or nil.
func (r *run) goldenRecord(id string) (*funnel.Record, error) {
	if id == "" {
		return nil, nil
	}
	if g, ok := r.planned[id]; ok {
		return g, nil
	}
	return r.store().Record(id)
}

// prepare maps one source record, merges it into its golden record and
// decides the writes it needs.
func (r *run) prepare(rec connectors.Record, b *state.Batch) (*item, []*task, error) {
	view, err := r.src.Map.Inbound(mapping.Native{Entity: rec.Entity, Fields: rec.Fields})
	if err != nil {
		r.count(r.src.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, r.src.Name, "", rec, "map-inbound", err, rec.Fields)
		return nil, nil, nil
	}
	fp := state.Fingerprint{Hash: view.Fingerprint(), Entity: rec.Entity, At: rec.UpdatedAt, Source: state.FingerprintRead}
	key := r.src.Key(rec)
	r.mu.Lock()
	h, failed := r.failedRun[key]
	r.mu.Unlock()
	if failed && h == fp.Hash {
		return nil, nil, nil // failed earlier in this run (overlap re-read, retry pass): once per run is enough
	}
	if h, seen := r.plannedKeys[key]; seen && h == fp.Hash {
		return nil, nil, nil // planned earlier in this plan: the same content again needs nothing more
	}
	canonID, err := r.store().Link(r.src.Name, key)
	if err != nil {
		return nil, nil, err
	}
	golden, err := r.goldenRecord(canonID)
	if err != nil {
		return nil, nil, err
	}
	prev, err := r.store().Fingerprint(r.src.Name, key)
	if err != nil {
		return nil, nil, err
	}
	owed, dropped, err := r.owed(golden)
	if err != nil {
		return nil, nil, err
	}
	if golden != nil && prev != nil && prev.Hash == fp.Hash && r.settled(golden) && len(owed) == 0 {
		for _, t := range r.targets {
			if t.t.Accepts(golden) {
				r.count(t.Name, func(c *Counts) { c.Unchanged++ })
			} else {
				r.count(t.Name, func(c *Counts) { c.Skipped++ })
			}
		}
		return nil, nil, nil
	}
	if !r.plan {
		b.DeleteDeadLetter(DeadLetterKey(r.f.Name, r.src.Name, r.src.Name+":"+rec.ID))
	}
	if golden == nil {
		// Sized for the fields merge puts in (growing two maps field by
		// field made 6 KB of garbage a record in a first sync).
		n := len(view.Fields)
		golden = &funnel.Record{ID: r.e.o.NewID(), Fields: make(map[string]any, n),
			Sources: make(map[string]funnel.Source, n), Links: make(map[string]string, 1+len(r.targets))}
	} else {
		golden = golden.Clone()
	}
	_, overridden := r.merge(golden, view, r.src, rec.UpdatedAt, r.lastView(r.src, prev))
	golden.Links[r.src.Name] = key
	// The source changed fields another system owns: its edit lost. Make the
	// owner's flows look at the record again, so they write the owner's
	// value back to this source.
	for owner := range overridden {
		if link := golden.Links[owner]; link != "" && !r.plan {
			if ofp, err := r.store().Fingerprint(owner, link); err == nil && ofp != nil {
				ofp.Hash = ""
				b.PutFingerprint(owner, link, *ofp)
			}
		}
	}
	// What this system holds, remembered for diffs (only for records that
	// go on: the unchanged shortcut above needs the hash alone).
	if out, err := r.src.Map.Outbound(view); err == nil {
		fp.Payload = PresentOnly(out.Fields, rec.Fields)
	}
	it := &item{native: rec, key: key, golden: golden, fp: fp, owed: owed, dropped: dropped, sameAtSource: prev != nil && prev.Hash == fp.Hash}
	var tasks []*task
	for _, t := range r.targets {
		tk, err := r.decide(it, t, b)
		if err != nil {
			return nil, nil, err
		}
		if tk != nil {
			tasks = append(tasks, tk)
		}
	}
	return it, tasks, nil
}

// decide computes the write (if any) one target needs for an item.
func (r *run) decide(it *item, t *targetSys, b *state.Batch) (*task, error) {
	golden := it.golden
	if _, gone := golden.Gone[t.Name]; gone || !t.t.Accepts(golden) {
		r.count(t.Name, func(c *Counts) { c.Skipped++ })
		r.settle(b, it, t)
		return nil, nil
	}
	if it.dropped[t.Name] && it.sameAtSource {
		r.count(t.Name, func(c *Counts) { c.Skipped++ })
		return nil, nil // an operator dropped this write; a new edit tries again
	}
	out, err := t.Map.Outbound(golden)
	if err != nil {
		it.failed = true
		r.count(t.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, t.Name, golden.ID, it.native, "map-outbound", err, nil)
		return nil, nil
	}
	tid := golden.Links[t.Name]
	if tid == "" {
		if r.isPending(t.Name, golden.ID) {
			// An earlier create's outcome is still unknown: never send a
			// second one. The delivery stays owed until the intent is resolved.
			it.failed = true
			r.count(t.Name, func(c *Counts) { c.Failed++ })
			r.owe(b, t.Name, it, OpCreate, errCreateUnresolved, out.Fields)
			return nil, nil
		}
		return &task{it: it, t: t, op: OpCreate, out: out}, nil
	}
	prevT, err := r.store().Fingerprint(t.Name, tid)
	if err != nil {
		return nil, err
	}
	var old map[string]any
	oldEntity := ""
	if prevT != nil {
		old, oldEntity = prevT.Payload, prevT.Entity
	} else {
		prevT = &state.Fingerprint{}
	}
	diff := KeepUncarried(DiffPayload(old, out.Fields), t.Map, r.src.Map)
	op := OpUpdate
	if oldEntity != "" && out.Entity != "" && oldEntity != out.Entity {
		op = OpConvert
	} else if len(diff) == 0 {
		r.count(t.Name, func(c *Counts) { c.Unchanged++ })
		r.settle(b, it, t)
		return nil, nil
	}
	return &task{it: it, t: t, op: op, out: out, prevID: tid, prev: prevT, diff: diff}, nil
}

// lastView is what crmsync last knew a system held for a record, as a
// canonical view (nil when it never saw it).
func (r *run) lastView(sys *System, fp *state.Fingerprint) *funnel.Record {
	if fp == nil || fp.Payload == nil {
		return nil
	}
	v, err := sys.Map.Inbound(mapping.Native{Entity: fp.Entity, Fields: fp.Payload})
	if err != nil {
		return nil
	}
	return v
}

// owed returns the flow's targets that hold a delivery entry (pending or
// dead) for the record, which therefore must not be skipped as unchanged,
// and those where an operator dropped it.
func (r *run) owed(g *funnel.Record) (owed, dropped map[string]bool, err error) {
	if g == nil {
		return nil, nil, nil
	}
	for _, t := range r.targets {
		d, err := r.store().DeadLetter(DeadLetterKey(r.f.Name, t.Name, g.ID))
		if err != nil {
			return nil, nil, err
		}
		switch {
		case d == nil:
		case d.Dropped:
			if dropped == nil {
				dropped = map[string]bool{}
			}
			dropped[t.Name] = true
		default:
			if owed == nil {
				owed = map[string]bool{}
			}
			owed[t.Name] = true
		}
	}
	return owed, dropped, nil
}

// settled reports whether every target that accepts the record holds it.
func (r *run) settled(g *funnel.Record) bool {
	for _, t := range r.targets {
		if t.t.Accepts(g) && g.Links[t.Name] == "" {
			return false
		}
	}
	return true
}
