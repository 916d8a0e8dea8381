package engine

import (
	"context"
	"fmt"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/logkey"
	"github.com/crmsync/crmsync/state"
)

// retryDeadLetters reads the source records behind the flow's dead letters
// again and handles them like freshly pulled ones. key limits it to one
// dead letter (replay); "" retries every dead letter under MaxRetries.
// A source record that no longer exists drops its dead letter.
func (r *run) retryDeadLetters(ctx context.Context, key string) error {
	dls, err := r.store().DeadLetters(r.f.Name)
	if err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	var recs []connectors.Record
	seen := map[string]bool{}
	b := &state.Batch{}
	for _, d := range dls {
		if key != "" && d.Key != key {
			continue
		}
		if key == "" && !d.Pending && d.Attempts >= r.f.MaxRetries {
			continue // dead for good: `deadletters replay` only
		}
		if d.SourceEntity == "" && d.CanonicalID != "" {
			// Written without its source record (an interrupted create
			// resolved by an older version): find it through the golden record.
			g, err := r.store().Record(d.CanonicalID)
			if err != nil {
				return err
			}
			if g != nil {
				ref, err := r.sourceRef(g)
				if err != nil {
					return err
				}
				d.SourceSystem, d.SourceEntity, d.SourceID = r.src.Name, ref.Entity, ref.ID
			}
		}
		if d.SourceSystem != r.src.Name || d.SourceID == "" || d.SourceEntity == "" {
			continue
		}
		sk := d.SourceEntity + "\x00" + d.SourceID
		if seen[sk] {
			continue
		}
		seen[sk] = true
		rec, err := r.src.Conn.Get(ctx, d.SourceEntity, d.SourceID)
		switch {
		case connectors.IsNotFound(err):
			r.log.Info().Str(logkey.DeadLetterKey, d.Key).Msg("dead letter's source record no longer exists: dropped")
			if !r.plan {
				b.DeleteDeadLetter(d.Key)
			}
			continue
		case err != nil && isFatal(err):
			return fmt.Errorf("re-read %s %s for a dead-letter retry: %w", d.SourceEntity, d.SourceID, err)
		case err != nil:
			// The source refuses this one record: keep the dead letter and
			// go on with the others.
			r.log.Warn().Err(err).Str(logkey.DeadLetterKey, d.Key).Msg("dead letter's source record cannot be read: kept, retried next run")
			continue
		}
		recs = append(recs, rec)
		r.count(d.System, func(c *Counts) { c.Retried++ })
	}
	for start := 0; start < len(recs) || start == 0; start += r.pageSize() {
		end := min(start+r.pageSize(), len(recs))
		if err := r.handle(ctx, recs[start:end], b); err != nil {
			if !r.plan {
				_ = r.store().Commit(b)
			}
			return err
		}
		if !r.plan {
			if err := r.store().Commit(b); err != nil {
				return err
			}
		}
		b = &state.Batch{}
		if end >= len(recs) {
			break
		}
	}
	return nil
}

func (r *run) pageSize() int {
	if r.src.PageSize > 0 {
		return r.src.PageSize
	}
	return connectors.DefaultPageSize
}

// Replay retries one dead letter (or, with key "", all of a flow's dead
// letters, whatever their attempts) right now. Of ro, Store and Guard
// are used (the mode is "replay").
func (e *Engine) Replay(ctx context.Context, f Flow, key string, ro RunOptions) (*Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	res := &Result{Flow: f.Name, Mode: "replay", Started: e.o.Now().UTC(), Systems: map[string]*Counts{}}
	ro = RunOptions{Mode: "replay", Store: ro.Store, Guard: ro.Guard}
	r, err := e.newRun(f, ro, res)
	if err == nil {
		r.f.MaxRetries = int(^uint(0) >> 1)
		err = r.retryDeadLetters(connectors.WithWriteGuard(ctx, ro.Guard), key)
	}
	e.finish(res, f, ro, err)
	return res, err
}
