package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

// recoverIntent resolves a create intent left by an interrupted run: the
// record is looked up in the target by the match values the intent kept; if
// found it is linked, if not it is created now (the lookup proved it
// absent), if several match it is dead-lettered. Nothing is created again
// without that lookup.
func (r *run) recoverIntent(ctx context.Context, t *targetSys, in state.Intent) error {
	b := &state.Batch{}
	g, err := r.store().Record(in.ID)
	if err != nil {
		return err
	}
	log := r.log.With().Str("target", t.Name).Str("canonical", in.ID).Logger()
	src := connectors.Record{}
	if g != nil {
		src.ID = g.Links[r.src.Name]
	}
	if g == nil || g.Links[t.Name] != "" {
		b.DeleteIntent(t.Name, in.ID)
		return r.store().Commit(b)
	}
	if len(in.Match) == 0 {
		b.DeleteIntent(t.Name, in.ID)
		r.count(t.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, t.Name, in.ID, src, "create",
			errors.New("an earlier create may or may not have happened and the record has no match keys to look it up; check the target, then replay or drop this dead letter"), in.Payload)
		return r.store().Commit(b)
	}
	var match []connectors.Match
	for k, v := range in.Match {
		match = append(match, connectors.Match{Field: k, Value: v})
	}
	sort.Slice(match, func(i, j int) bool { return match[i].Field < match[j].Field })
	found, err := t.Conn.Find(ctx, in.Entity, match)
	if err != nil {
		return fmt.Errorf("resolve create intent in %s: %w", t.Name, err)
	}
	var got connectors.Record
	switch len(found) {
	case 0:
		log.Info().Msg("interrupted create did not happen: creating now")
		got, err = t.Conn.Create(ctx, connectors.Record{Entity: in.Entity, Fields: in.Payload})
		if err != nil {
			if isFatal(err) || connectors.IsOutcomeUnknown(err) {
				return fmt.Errorf("resolve create intent in %s: %w", t.Name, err)
			}
			b.DeleteIntent(t.Name, in.ID)
			r.count(t.Name, func(c *Counts) { c.Failed++ })
			r.deadLetter(b, t.Name, in.ID, src, "create", err, in.Payload)
			return r.store().Commit(b)
		}
		r.count(t.Name, func(c *Counts) { c.Created++ })
	case 1:
		log.Info().Str("id", found[0].ID).Msg("interrupted create had happened: linked to the existing record")
		got = found[0]
		r.count(t.Name, func(c *Counts) { c.Linked++ })
	default:
		ids := make([]string, len(found))
		for i, f := range found {
			ids[i] = f.ID
		}
		b.DeleteIntent(t.Name, in.ID)
		r.count(t.Name, func(c *Counts) { c.Failed++ })
		r.deadLetter(b, t.Name, in.ID, src, "create",
			fmt.Errorf("interrupted create: %d records match %v (%s); remove the duplicate in the target, then run `crmsync deadletters replay`", len(found), in.Match, strings.Join(ids, ", ")), in.Payload)
		return r.store().Commit(b)
	}
	hash := ""
	if view, err := t.Map.Inbound(mapping.Native{Entity: got.Entity, Fields: got.Fields}); err == nil {
		hash = view.Fingerprint()
	}
	key := t.Key(got)
	g.Links[t.Name] = key
	b.PutRecord(g)
	b.PutFingerprint(t.Name, key, state.Fingerprint{Hash: hash, Payload: in.Payload, Entity: got.Entity, At: got.UpdatedAt, Source: state.FingerprintWrite})
	b.DeleteIntent(t.Name, in.ID)
	return r.store().Commit(b)
}
