package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/state"
)

// ErrDeleteCap is returned (wrapped) when a reconciliation would act on more
// records than the flow's cap; nothing is deleted or closed then.
var ErrDeleteCap = errors.New("delete cap exceeded")

// reconcileIfDue runs a delete reconciliation when the flow's interval has
// passed since the last one.
func (r *run) reconcileIfDue(ctx context.Context) error {
	every := r.f.Deletes.Every
	if every <= 0 {
		every = DefaultReconcileEvery
	}
	last, err := r.store().Cursor(ReconcileKey(r.f.Name))
	if err != nil {
		return err
	}
	if t, err := time.Parse(time.RFC3339Nano, string(last)); err == nil && r.e.o.Now().Sub(t) < every {
		return nil
	}
	return r.reconcile(ctx)
}

// Reconcile runs a flow's delete reconciliation now (plan: report only).
func (e *Engine) Reconcile(ctx context.Context, f Flow, plan bool) (*Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	mode := ModeSync
	if plan {
		mode = ModePlan
	}
	res := &Result{Flow: f.Name, Mode: mode, Started: e.o.Now().UTC(), Systems: map[string]*Counts{}}
	ro := RunOptions{Mode: mode}
	r, err := e.newRun(f, ro, res)
	if err == nil {
		err = r.reconcile(ctx)
	}
	e.finish(res, f, ro, err)
	return res, err
}

// reconcile reads the whole source, and only when that scan completed,
// treats every linked source record it did not see, and that the source
// then answers 404 for, as deleted: per the
// flow's policy the linked target records are closed or deleted, at most
// MaxPerRun of them, else nothing happens and the run says why.
func (r *run) reconcile(ctx context.Context) error {
	started := r.e.o.Now().UTC()
	seen := map[string]bool{}
	var cur connectors.Cursor
	for {
		if r.stopRequested() {
			return nil // an incomplete scan proves nothing
		}
		page, err := r.src.Conn.Pull(ctx, cur, connectors.PullOptions{PageSize: r.src.PageSize})
		if err != nil {
			return fmt.Errorf("reconcile: scan %s: %w", r.src.Name, err)
		}
		for _, rec := range page.Records {
			seen[r.src.Key(rec)] = true
		}
		cur = page.Next
		if page.Done {
			break
		}
	}
	links, err := r.store().Links(r.src.Name)
	if err != nil {
		return err
	}
	var missing []string
	for key := range links {
		if !seen[key] {
			missing = append(missing, key)
		}
	}
	sort.Strings(missing)
	// A record edited while the scan paged can slip past it (some APIs page
	// by a sort key that the edit changes). Confirm each absence: only a
	// record the source answers 404 for is gone.
	var gone []string
	for _, key := range missing {
		fp, err := r.store().Fingerprint(r.src.Name, key)
		if err != nil {
			return err
		}
		if fp == nil || fp.Entity == "" {
			continue // never read from this source: nothing proves it existed there
		}
		_, err = r.src.Conn.Get(ctx, fp.Entity, r.src.RawID(key))
		switch {
		case connectors.IsNotFound(err):
			gone = append(gone, key)
		case connectors.IsForbidden(err):
			// It exists, this user may not see it (a BlueRockTel sales
			// user and a prospect outside viewable_by_sale): not gone.
			r.log.Warn().Str("id", key).Msg("reconcile: record missed by the scan may not be read by these credentials; kept")
		case err != nil:
			return fmt.Errorf("reconcile: confirm %s %s is gone: %w", fp.Entity, key, err)
		default:
			r.log.Debug().Str("id", key).Msg("reconcile: record missed by the scan still exists")
		}
	}
	limit := r.f.Deletes.MaxPerRun
	if limit <= 0 {
		limit = DefaultMaxDeletesPerRun
	}
	r.log.Info().Int("scanned", len(seen)).Int("gone", len(gone)).Msg("delete reconciliation: complete scan of the source done")
	if len(gone) > limit {
		return fmt.Errorf("%w: %d records linked from %s were not found in a complete scan, more than deletes.max_per_run (%d); nothing was %sd. If the deletions are real, raise the cap for one run; otherwise check the source's credentials and filters",
			ErrDeleteCap, len(gone), r.src.Name, limit, r.f.Deletes.Mode)
	}
	b := &state.Batch{}
	for _, key := range gone {
		if err := r.propagateDelete(ctx, key, links[key], b); err != nil {
			if !r.plan {
				_ = r.store().Commit(b)
			}
			return err
		}
	}
	if r.plan {
		return nil
	}
	b.SetCursor(ReconcileKey(r.f.Name), []byte(started.Format(time.RFC3339Nano)))
	return r.store().Commit(b)
}

func (r *run) propagateDelete(ctx context.Context, srcKey, canonID string, b *state.Batch) error {
	g, err := r.goldenRecord(canonID)
	if err != nil {
		return err
	}
	if g == nil {
		b.Unlink(r.src.Name, srcKey)
		return nil
	}
	g = g.Clone()
	for _, t := range r.targets {
		tid := g.Links[t.Name]
		if tid == "" {
			continue
		}
		fp, err := r.store().Fingerprint(t.Name, tid)
		if err != nil {
			return err
		}
		if fp == nil {
			fp = &state.Fingerprint{}
		}
		ch := Change{Target: t.Name, CanonicalID: g.ID, TargetID: t.RawID(tid), Entity: fp.Entity, Name: g.Str(funnel.FieldName)}
		switch r.f.Deletes.Mode {
		case DeleteDelete:
			ch.Op = OpDelete
			if !r.plan {
				if err := r.mayWrite(); err != nil {
					return err
				}
				err := t.Conn.Delete(ctx, fp.Entity, t.RawID(tid))
				if err != nil && !connectors.IsNotFound(err) {
					if isFatal(err) {
						return fmt.Errorf("delete %s in %s: %w", tid, t.Name, err)
					}
					r.count(t.Name, func(c *Counts) { c.Failed++ })
					r.deadLetter(b, t.Name, g.ID, connectors.Record{ID: r.src.RawID(srcKey)}, "delete", err, nil)
					continue
				}
				b.Unlink(t.Name, tid)
			}
			delete(g.Links, t.Name)
			r.count(t.Name, func(c *Counts) { c.Deleted++ })
		case DeleteClose:
			ch.Op = OpClose
			closed := g.Clone()
			_ = closed.Set(funnel.FieldClosed, true)
			_ = closed.Set(funnel.FieldActive, false)
			out, err := t.Map.Outbound(closed)
			if err != nil {
				return fmt.Errorf("close %s in %s: %w", tid, t.Name, err)
			}
			diff := KeepUncarried(DiffPayload(fp.Payload, out.Fields), t.Map, r.src.Map)
			if len(diff) == 0 {
				r.log.Info().Str(logkey.Target, t.Name).Str(logkey.TargetID, tid).Msg("close policy: nothing to write (already closed, or the target's mapping carries neither closed nor active)")
				r.count(t.Name, func(c *Counts) { c.Skipped++ })
				continue
			}
			ch.Fields = FieldDiffs(fp.Payload, diff)
			if !r.plan {
				if err := r.mayWrite(); err != nil {
					return err
				}
				got, err := t.Conn.Update(ctx, fp.Entity, t.RawID(tid), diff)
				if err != nil {
					if isFatal(err) {
						return fmt.Errorf("close %s in %s: %w", tid, t.Name, err)
					}
					r.count(t.Name, func(c *Counts) { c.Failed++ })
					r.deadLetter(b, t.Name, g.ID, connectors.Record{ID: r.src.RawID(srcKey)}, "close", err, diff)
					continue
				}
				b.PutFingerprint(t.Name, tid, state.Fingerprint{Payload: MergePayload(fp.Payload, diff), Entity: got.Entity, At: got.UpdatedAt, Source: state.FingerprintWrite})
			}
			g = closed
			r.count(t.Name, func(c *Counts) { c.Closed++ })
		}
		if r.plan {
			r.mu.Lock()
			r.res.Plan = append(r.res.Plan, ch)
			r.mu.Unlock()
		}
	}
	// Tombstones: the record is never created again where it was deleted,
	// not even by a reverse flow that sees the closed copy in a target.
	if g.Gone == nil {
		g.Gone = map[string]time.Time{}
	}
	now := r.e.o.Now().UTC()
	g.Gone[r.src.Name] = now
	if r.f.Deletes.Mode == DeleteDelete {
		for _, t := range r.targets {
			if _, linked := g.Links[t.Name]; !linked {
				g.Gone[t.Name] = now
			}
		}
	}
	delete(g.Links, r.src.Name)
	if !r.plan {
		b.Unlink(r.src.Name, srcKey)
		b.PutRecord(g)
	}
	return nil
}
