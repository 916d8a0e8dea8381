package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/mapping"
)

// A target is read once into a match index (instead of one lookup per
// create) when the run is bulk (first sync or backfill), when its connector's
// Find scans anyway, or when one page needs at least indexThreshold creates.
//
// indexThreshold is how many creates for one target in one page make the
// engine read the whole target once (an index for the rest of the run)
// instead of one lookup per record.
const indexThreshold = 25

// NormalizeMatch is a match value's comparison form for canonical field
// field: connectors.Normalize, loose for names ("Acme B.V." is "ACME BV").
func NormalizeMatch(field, v string) string {
	return connectors.Normalize(v, field == funnel.FieldName)
}

// matchKeyApplies reports whether a match key identifies records of a kind:
// a person's name does not (namesakes are common); an e-mail does.
func matchKeyApplies(key string, kind funnel.Kind) bool {
	return !(key == funnel.FieldName && kind == funnel.Person)
}

// matchFor lists the native match fields and values of a record about to be
// created (kept in its create intent, to look it up after a crash).
func (r *run) matchFor(t *targetSys, g *funnel.Record, out mapping.Native) map[string]string {
	m := map[string]string{}
	for _, key := range r.f.MatchKeys {
		path, ok := t.Map.NativePath(key, g.Kind())
		if !ok || !matchKeyApplies(key, g.Kind()) {
			continue
		}
		if v, ok := GetPath(out.Fields, path); ok {
			if s, ok := connectors.MatchText(v); ok && s != "" {
				m[path] = s
			}
		}
	}
	return m
}

// findExisting looks for the record in the target before a create, key by
// key: the first key that finds exactly one candidate not linked to another
// record wins; several candidates are an ambiguous match (dead letter).
//
// want holds the values to look for (the golden record, or what an
// interrupted create sent) and entity where to look (Find). fresh skips the
// run's index, which may predate the record (a conversion whose answer was
// lost).
func (r *run) findExisting(ctx context.Context, tk *task, want *funnel.Record, entity string, fresh bool) (*connectors.Record, error) {
	g := tk.it.golden
	var useIndex *matchIndex
	if !fresh {
		ix, err := r.indexFor(ctx, tk.t)
		if err != nil {
			return nil, err
		}
		useIndex = ix
	}
	var indexed map[string][]connectors.Record
	if useIndex != nil {
		// Every key's candidates in one read of the index.
		var err error
		if indexed, err = r.indexCandidates(tk.t, useIndex, r.matchValues(want, g.Kind())); err != nil {
			return nil, err
		}
	}
	for _, key := range r.f.MatchKeys {
		val := want.Str(key)
		if val == "" || !matchKeyApplies(key, g.Kind()) {
			continue
		}
		var cands []connectors.Record
		if useIndex != nil {
			cands = indexed[key]
		} else {
			path, ok := tk.t.Map.NativePath(key, g.Kind())
			if !ok {
				continue
			}
			found, err := tk.t.Conn.Find(ctx, entity, []connectors.Match{{Field: path, Value: val, Loose: key == funnel.FieldName}})
			if err != nil {
				return nil, fmt.Errorf("look up %s=%q in %s: %w", key, val, tk.t.Name, err)
			}
			for _, f := range found {
				if v, err := tk.t.Map.Inbound(mapping.Native{Entity: f.Entity, Fields: f.Fields}); err == nil &&
					NormalizeMatch(key, v.Str(key)) == NormalizeMatch(key, val) {
					cands = append(cands, f)
				}
			}
		}
		free, taken, err := r.freeCandidates(tk.t, g.ID, cands)
		if err != nil {
			return nil, err
		}
		if useIndex != nil {
			// The index keeps entity and id only, and may be older than
			// the target: read each free candidate, and drop those gone
			// or no longer holding the value (the next key is tried, or
			// the record created).
			if free, err = r.checkCandidates(ctx, tk.t, useIndex, key, NormalizeMatch(key, val), free); err != nil {
				return nil, err
			}
		}
		switch {
		case len(free) == 1:
			return &free[0], nil
		case len(free) > 1:
			ids := make([]string, len(free))
			for i, c := range free {
				ids[i] = c.ID
			}
			sort.Strings(ids)
			return nil, &errAmbiguous{fmt.Sprintf("ambiguous match on %s=%q: %d records in %s match (%s); not created: remove the duplicate in %[4]s or make the flow's match keys stricter, then run `crmsync deadletters replay`",
				key, val, len(free), tk.t.Name, strings.Join(ids, ", "))}
		case len(taken) > 0:
			// Every candidate is already the twin of another record: none
			// is ours. Try the next key (and create when none finds one).
			r.log.Debug().Str(logkey.Target, tk.t.Name).Str(logkey.MatchKey, key).Strs("taken", taken).Msg("match candidates belong to other records")
		}
	}
	return nil, nil
}

// linkExisting links a matched record instead of creating one, then brings
// it up to date: for a two-way target the two versions are merged (newest
// change wins per field); otherwise the source's values are written.
func (r *run) linkExisting(ctx context.Context, tk *task, found connectors.Record) error {
	view, err := tk.t.Map.Inbound(mapping.Native{Entity: found.Entity, Fields: found.Fields})
	if err != nil {
		return &connectors.Error{System: tk.t.Name, Op: "map-inbound", Kind: connectors.Rejected, Message: err.Error()}
	}
	base := found.Fields
	if cv, err := tk.t.Map.Outbound(view); err == nil {
		base = PresentOnly(cv.Fields, found.Fields)
	}
	it := tk.it
	if tk.t.t.CheckBeforeWrite {
		it.mu.Lock()
		if changed, _ := r.merge(it.golden, view, tk.t.System, found.UpdatedAt, nil); changed {
			it.resync = true
			tk.noEcho = true
		}
		out, err := tk.t.Map.Outbound(it.golden)
		it.mu.Unlock()
		if err != nil {
			return &connectors.Error{System: tk.t.Name, Op: "map-outbound", Kind: connectors.Rejected, Message: err.Error()}
		}
		tk.out = out
	}
	tk.linked = true
	key := tk.t.Key(found)
	tk.prevID = key
	diff := KeepUncarried(DiffPayload(base, tk.out.Fields), tk.t.Map, r.src.Map)
	got := found
	if found.Entity != tk.out.Entity && tk.out.Entity != "" {
		c, err := r.mutate(ctx, tk, OpConvert, func() (connectors.Record, error) {
			return tk.t.Conn.ConvertStage(ctx, found.Entity, found.ID, tk.out.Entity)
		})
		switch {
		case connectors.IsUnsupported(err):
			r.unsupported(tk.t.Name, err) // linked where it is
		case err != nil:
			return err
		default:
			got = c
		}
	}
	if len(diff) > 0 {
		tk.prev = nil
		u, err := r.mutate(ctx, tk, OpUpdate, func() (connectors.Record, error) {
			return tk.t.Conn.Update(ctx, got.Entity, got.ID, diff)
		})
		if err != nil {
			return err
		}
		got = u
	}
	if r.plan {
		r.mu.Lock()
		r.res.Plan = append(r.res.Plan, Change{Target: tk.t.Name, Op: OpLink, CanonicalID: it.golden.ID, TargetID: found.ID, Entity: found.Entity, Name: it.golden.Str(funnel.FieldName)})
		r.mu.Unlock()
	}
	tk.done, tk.payload = &got, MergePayload(base, diff)
	return nil
}
