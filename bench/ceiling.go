package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
)

// CeilingResult is what `crmsync bench create-ceiling` prints (one JSON
// object): the creates it sent and the seconds the sending took, from the
// first POST to the last answer (pulling and mapping the records before is
// not counted).
type CeilingResult struct {
	Created int     `json:"created"`
	Seconds float64 `json:"seconds"`
}

// CreateCeiling measures what the targets take when nothing but creates is
// asked of them: it first pulls every page of src and maps each record for
// every target whose filter accepts it, holding them all in memory, and
// then, with the clock running, POSTs them, concurrency in flight per
// target, as fast as the answers come. It is the "raw create ceiling" the
// engine's throughput is compared with; the first error stops it. The
// records are distinct source records (a target that refuses duplicates,
// as Overplane does by company name, takes every one of them).
func CreateCeiling(ctx context.Context, src *engine.System, targets []PlainTarget, concurrency int) (CeilingResult, error) {
	if concurrency < 1 {
		concurrency = engine.DefaultWriteConcurrency
	}
	records, err := collect(ctx, src, targets)
	if err != nil {
		return CeilingResult{}, fmt.Errorf("create ceiling: %w", err)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var created atomic.Int64
	var wg sync.WaitGroup
	started := time.Now()
	for i, t := range targets {
		var next atomic.Int64 // the index of the next record to send
		for range concurrency {
			wg.Go(func() {
				for k := next.Add(1) - 1; k < int64(len(records[i])) && ctx.Err() == nil; k = next.Add(1) - 1 {
					if _, err := t.System.Conn.Create(ctx, records[i][k]); err != nil {
						cancel(fmt.Errorf("create ceiling: create in %s: %w", t.System.Name, err))
						return
					}
					created.Add(1)
				}
			})
		}
	}
	wg.Wait()
	res := CeilingResult{Created: int(created.Load()), Seconds: round(time.Since(started).Seconds(), 3)}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return res, cause
	}
	return res, ctx.Err()
}

// collect pulls every page of src and returns, for each target, the
// records mapped for it (those its filter accepts).
func collect(ctx context.Context, src *engine.System, targets []PlainTarget) ([][]connectors.Record, error) {
	queues := make([]chan connectors.Record, len(targets))
	records := make([][]connectors.Record, len(targets))
	var wg sync.WaitGroup
	for i := range targets {
		queues[i] = make(chan connectors.Record, 256)
		wg.Go(func() {
			for r := range queues[i] {
				records[i] = append(records[i], r)
			}
		})
	}
	_, err := pullAndMap(ctx, src, targets, queues)
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	return records, err
}
