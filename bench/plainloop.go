package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/mapping"
)

// PlainTarget is one target of the plain loop: a system and the filter of
// its flow target.
type PlainTarget struct {
	System *engine.System
	Filter engine.Target
}

// PlainLoop is the reference the engine is measured against: it pulls the
// source page by page, maps each record in and out and POSTs it to every
// target whose filter accepts it, concurrency creates in flight per target,
// and nothing else (no state, no matching, no fingerprints, no retries of
// its own). It returns how many creates it sent; the first error stops it.
func PlainLoop(ctx context.Context, src *engine.System, targets []PlainTarget, concurrency int) (int, error) {
	if concurrency < 1 {
		concurrency = engine.DefaultWriteConcurrency
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queues := make([]chan connectors.Record, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		queues[i] = make(chan connectors.Record, concurrency)
		for range concurrency {
			wg.Go(func() { create(ctx, cancel, t.System, queues[i]) })
		}
	}
	sent, err := pullAndMap(ctx, src, targets, queues)
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return sent, cause
	}
	if err != nil {
		return sent, err
	}
	return sent, ctx.Err()
}

// create POSTs every record of q to dst; a failure cancels the loop.
func create(ctx context.Context, cancel context.CancelCauseFunc, dst *engine.System, q <-chan connectors.Record) {
	for r := range q {
		if ctx.Err() != nil {
			continue // drain: the loop has failed
		}
		if _, err := dst.Conn.Create(ctx, r); err != nil {
			cancel(fmt.Errorf("plain loop create in %s: %w", dst.Name, err))
		}
	}
}

// pullAndMap reads every page of src and queues each record, mapped, for
// each target that accepts it. It returns how many records it queued.
func pullAndMap(ctx context.Context, src *engine.System, targets []PlainTarget, queues []chan connectors.Record) (int, error) {
	sent := 0
	var cur connectors.Cursor
	for {
		page, err := src.Conn.Pull(ctx, cur, connectors.PullOptions{PageSize: src.PageSize})
		if err != nil {
			return sent, fmt.Errorf("plain loop pull: %w", err)
		}
		for _, rec := range page.Records {
			view, err := src.Map.Inbound(mapping.Native{Entity: rec.Entity, Fields: rec.Fields})
			if err != nil {
				return sent, fmt.Errorf("plain loop map in: %w", err)
			}
			for i, t := range targets {
				if !t.Filter.Accepts(view) {
					continue
				}
				out, err := t.System.Map.Outbound(view)
				if err != nil {
					return sent, fmt.Errorf("plain loop map out to %s: %w", t.System.Name, err)
				}
				select {
				case queues[i] <- connectors.Record{Entity: out.Entity, Fields: out.Fields}:
					sent++
				case <-ctx.Done():
					return sent, nil // a create failed; PlainLoop reports why
				}
			}
		}
		if page.Done || page.Next == nil {
			return sent, nil
		}
		cur = page.Next
	}
}

// PlainLoopConfig runs PlainLoop for the flow named in the configuration
// file cfgPath: its source, its targets with their filters, its
// write_concurrency. It returns the creates sent.
func PlainLoopConfig(ctx context.Context, cfgPath, flow string, types *connectors.Registry) (int, error) {
	src, targets, concurrency, err := flowSystems(cfgPath, flow, types)
	if err != nil {
		return 0, err
	}
	return PlainLoop(ctx, src, targets, concurrency)
}

// CreateCeilingConfig runs CreateCeiling for the flow named in the
// configuration file cfgPath.
func CreateCeilingConfig(ctx context.Context, cfgPath, flow string, types *connectors.Registry) (CeilingResult, error) {
	src, targets, concurrency, err := flowSystems(cfgPath, flow, types)
	if err != nil {
		return CeilingResult{}, err
	}
	return CreateCeiling(ctx, src, targets, concurrency)
}

// flowSystems builds the source, the targets with their filters and the
// write_concurrency of the flow named in the configuration file cfgPath.
func flowSystems(cfgPath, flow string, types *connectors.Registry) (*engine.System, []PlainTarget, int, error) {
	cfg, err := config.Load(cfgPath, types)
	if err != nil {
		return nil, nil, 0, err
	}
	flows, err := app.Flows(cfg, []string{flow})
	if err != nil {
		return nil, nil, 0, err
	}
	systems, err := app.BuildSystems(cfg, zerolog.Nop(), nil)
	if err != nil {
		return nil, nil, 0, err
	}
	f := flows[0]
	targets := make([]PlainTarget, 0, len(f.Targets))
	for _, t := range f.Targets {
		targets = append(targets, PlainTarget{System: systems[t.System], Filter: t})
	}
	return systems[f.Source], targets, f.WriteConcurrency, nil
}
