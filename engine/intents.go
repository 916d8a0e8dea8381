package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// recoverIntents resolves the create intents of the flow's targets: those
// a crash left behind (at the start of a run) and those of creates whose
// answer this run lost (at its end). Each record is looked up in the target
// with the values that were sent, key by key as before any create, through
// one fresh read of the target when there are many (or its lookups scan),
// else one lookup per intent:
//   - found: it is linked, and brought up to date when the create was left
//     half done (Overplane's prospect without its child rows);
//   - absent: the create never happened, so it is sent now;
//   - several: dead letter.
//
// A failure leaves the intent and a pending delivery entry, and recovery
// goes on with the next intent: nothing is created again without a lookup.
func (r *run) recoverIntents(ctx context.Context) error {
	r.unknown = 0
	for _, t := range r.targets {
		ins, err := r.store().Intents(t.Name)
		if err != nil {
			return fmt.Errorf("read intents: %w", err)
		}
		if len(ins) == 0 {
			continue
		}
		if r.plan {
			for _, in := range ins {
				r.pending[t.Name][in.ID] = true
			}
			continue
		}
		if err := r.recoverTarget(ctx, t, ins); err != nil {
			return err
		}
	}
	return nil
}

var errNoMatchKeys = errors.New("an earlier create may or may not have happened and the record has no match keys to look it up; check the target, then replay or drop this dead letter")

func (r *run) recoverTarget(ctx context.Context, t *targetSys, ins []state.Intent) error {
	b := &state.Batch{}
	var items []*item
	var tasks []*task
	for _, in := range ins {
		g, err := r.store().Record(in.ID)
		if err != nil {
			return err
		}
		if g == nil || g.Links[t.Name] != "" {
			b.DeleteIntent(t.Name, in.ID)
			continue
		}
		src, err := r.sourceRef(g)
		if err != nil {
			return err
		}
		it := &item{golden: g, native: src}
		sent := mapping.Native{Entity: in.Entity, Fields: in.Payload}
		want, err := t.Map.Inbound(sent)
		if err != nil {
			want = g
		}
		if !r.hasMatchKey(t, want) {
			b.DeleteIntent(t.Name, in.ID)
			r.count(t.Name, func(c *Counts) { c.Failed++ })
			r.deadLetter(b, t.Name, in.ID, src, string(OpCreate), errNoMatchKeys, in.Payload)
			continue
		}
		// The record is looked up, and if absent created, as it was sent:
		// those are the values the target may hold. When the golden record
		// moved on since, the delivery stays owed and the retry pass sends
		// the difference as an update.
		stale := true
		if now, err := t.Map.Outbound(g); err == nil && now.Entity == in.Entity && len(DiffPayload(in.Payload, now.Fields)) == 0 {
			stale = false
		}
		items = append(items, it)
		tasks = append(tasks, &task{it: it, t: t, op: OpCreate, out: sent, want: want, keepOwed: stale})
	}
	if len(tasks) > 0 {
		t.imu.Lock()
		// An index read before the lost answers would not hold their records.
		t.index, t.creates = nil, len(tasks)
		t.imu.Unlock()
		r.log.Info().Str(logkey.Target, t.Name).Int("intents", len(tasks)).Msg("resolving creates whose outcome is unknown")
	}
	fatal := r.execute(ctx, tasks)
	for _, tk := range tasks {
		r.apply(tk, b)
	}
	for _, it := range items {
		if !it.failed {
			b.PutRecord(it.golden)
		}
	}
	if err := r.store().Commit(b); err != nil {
		return fmt.Errorf("commit resolved create intents: %w", err)
	}
	return fatal
}

// hasMatchKey reports whether a record has a value for one of the flow's
// match keys that the target can look up.
func (r *run) hasMatchKey(t *targetSys, v *funnel.Record) bool {
	for _, key := range r.f.MatchKeys {
		if _, ok := t.Map.NativePath(key, v.Kind()); ok && v.Str(key) != "" && matchKeyApplies(key, v.Kind()) {
			return true
		}
	}
	return false
}

// sourceRef names the source record behind a golden record (entity and
// id, from the source's fingerprint), for entries a retry must re-read.
func (r *run) sourceRef(g *funnel.Record) (connectors.Record, error) {
	key := g.Links[r.src.Name]
	if key == "" {
		return connectors.Record{}, nil
	}
	fp, err := r.store().Fingerprint(r.src.Name, key)
	if err != nil {
		return connectors.Record{}, err
	}
	rec := connectors.Record{ID: r.src.RawID(key)}
	if fp != nil {
		rec.Entity = fp.Entity
	}
	return rec, nil
}
