package engine

import (
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// apply records a finished task's effects in the page batch.
func (r *run) apply(tk *task, b *state.Batch) {
	name := tk.t.Name
	g := tk.it.golden
	if tk.err != nil {
		tk.it.failed = true
		r.count(name, func(c *Counts) { c.Failed++ })
		if permanent(tk.err) {
			// The target refused the record itself: nothing was created.
			if tk.op == OpCreate {
				b.DeleteIntent(name, g.ID)
			}
			r.deadLetter(b, name, g.ID, tk.it.native, string(tk.op), tk.err, tk.out.Fields)
			return
		}
		// The target's failure, not the record's: the write stays owed and
		// every later run retries it. A create keeps its intent, so the
		// retry looks the record up before sending it again.
		if tk.op == OpCreate {
			r.mu.Lock()
			r.pending[name][g.ID] = true
			if connectors.IsOutcomeUnknown(tk.err) {
				r.unknown++
			}
			r.mu.Unlock()
		}
		r.owe(b, name, tk.it, tk.op, tk.err, tk.out.Fields)
		return
	}
	if tk.done == nil { // nothing to write after a conflict merge
		if tk.prev != nil && tk.prevID != "" && !r.plan {
			// Remember the target's current view, so the next run does not
			// read and merge it again (unless it took values the source
			// lacks: then the reverse flow must see it).
			fp := *tk.prev
			if tk.noEcho {
				fp.Hash = ""
			}
			fp.Source = state.FingerprintRead
			b.PutFingerprint(name, tk.prevID, fp)
		}
		r.count(name, func(c *Counts) { c.Unchanged++ })
		return
	}
	got := tk.done
	hash := ""
	if !tk.noEcho {
		if view, err := tk.t.Map.Inbound(mapping.Native{Entity: got.Entity, Fields: got.Fields}); err == nil {
			hash = view.Fingerprint()
			// The answer holds values crmsync did not send (a server
			// default, BlueRockTel's country "France"): it is not a pure
			// echo of our write, so the reverse flow must read and merge
			// it, or the systems never agree on that field.
			if sent, err := tk.t.Map.Inbound(mapping.Native{Entity: got.Entity, Fields: tk.payload}); err == nil && tookMore(view, sent) {
				hash = ""
			}
		}
	}
	gotKey := tk.t.Key(*got)
	if tk.prevID != "" && tk.prevID != gotKey {
		b.Unlink(name, tk.prevID)
	}
	g.Links[name] = gotKey
	b.Link(name, gotKey, g.ID)
	b.PutFingerprint(name, gotKey, state.Fingerprint{Hash: hash, Payload: tk.payload, Entity: got.Entity, At: got.UpdatedAt, Source: state.FingerprintWrite})
	if !tk.keepOwed {
		b.DeleteDeadLetter(DeadLetterKey(r.f.Name, name, g.ID))
	}
	r.mu.Lock()
	delete(r.pending[name], g.ID)
	r.mu.Unlock()
	switch {
	case tk.op == OpCreate && tk.linked:
		b.DeleteIntent(name, g.ID)
		r.count(name, func(c *Counts) { c.Linked++ })
	case tk.op == OpCreate:
		b.DeleteIntent(name, g.ID)
		r.count(name, func(c *Counts) { c.Created++ })
	case tk.op == OpUpdate:
		r.count(name, func(c *Counts) { c.Updated++ })
	case tk.op == OpConvert:
		r.count(name, func(c *Counts) { c.Converted++ })
	}
	r.log.Debug().Str(logkey.Target, name).Str(logkey.Op, string(tk.op)).Bool("linked", tk.linked).Str(logkey.TargetID, got.ID).Str(logkey.CanonicalID, g.ID).Msg("written")
}

// DeadLetterKey is the key of a flow's dead letter for one record (its
// canonical id, or "<source system>:<source id>") and system. The format
// is state's: it stores dead letters under state.DeadLetterKey.
func DeadLetterKey(flow, system, id string) string {
	return state.DeadLetterKey(state.DeadLetter{Flow: flow, System: system, CanonicalID: id})
}

func (r *run) deadLetter(b *state.Batch, system, canonID string, rec connectors.Record, op string, err error, payload map[string]any) {
	r.log.Warn().Str(logkey.Target, system).Str(logkey.Op, op).Str(logkey.SourceID, rec.ID).Err(err).Msg("record dead-lettered")
	r.putDelivery(b, system, canonID, rec, op, err, payload, false)
}

// owe records a write the target has not taken for a reason of its own: a
// pending delivery entry, retried by every later run until it lands.
func (r *run) owe(b *state.Batch, system string, it *item, op Op, err error, payload map[string]any) {
	r.log.Warn().Str(logkey.Target, system).Str(logkey.Op, string(op)).Str(logkey.CanonicalID, it.golden.ID).Err(err).Msg("write pending: retried by the next run")
	r.putDelivery(b, system, it.golden.ID, it.native, string(op), err, payload, true)
}

func (r *run) putDelivery(b *state.Batch, system, canonID string, rec connectors.Record, op string, err error, payload map[string]any, pending bool) {
	if r.plan {
		if !pending {
			r.mu.Lock()
			r.res.Plan = append(r.res.Plan, Change{Target: system, Op: OpDeadLetter, CanonicalID: canonID, Error: err.Error()})
			r.mu.Unlock()
		}
		return
	}
	now := r.e.o.Now().UTC()
	b.PutDeadLetter(state.DeadLetter{Flow: r.f.Name, System: system, CanonicalID: canonID, Pending: pending,
		SourceSystem: r.src.Name, SourceEntity: rec.Entity, SourceID: rec.ID, Op: op, Error: err.Error(), Payload: payload, Attempts: 1, FirstAt: now, LastAt: now})
}

// settle drops the record's delivery entry for a target that needs no
// write (it holds what it should, or the filter no longer sends it there).
func (r *run) settle(b *state.Batch, it *item, t *targetSys) {
	if (it.owed[t.Name] || it.dropped[t.Name]) && !r.plan {
		b.DeleteDeadLetter(DeadLetterKey(r.f.Name, t.Name, it.golden.ID))
	}
}

// isPending reports whether a create of canonical id to target has an
// unresolved intent in this run.
func (r *run) isPending(target, id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending[target][id]
}

// dedupe keeps the last copy of each record, in first-seen order.
func dedupe(recs []connectors.Record, keyOf func(connectors.Record) string) []connectors.Record {
	idx := make(map[string]int, len(recs))
	out := make([]connectors.Record, 0, len(recs))
	for _, rec := range recs {
		k := keyOf(rec)
		if i, ok := idx[k]; ok {
			out[i] = rec
			continue
		}
		idx[k] = len(out)
		out = append(out, rec)
	}
	return out
}

// tookMore reports whether the target's answer carries a canonical field
// the write did not send (a value the server filled in itself).
func tookMore(answer, sent *funnel.Record) bool {
	for f := range answer.Fields {
		if f == funnel.FieldCreatedAt || f == funnel.FieldUpdatedAt {
			continue
		}
		if _, ok := sent.Fields[f]; !ok {
			return true
		}
	}
	return false
}
