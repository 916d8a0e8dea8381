package e2e

import (
	"context"
	"flag"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/mapping"
)

var plainBenchRecords = flag.Int("bench.plain-records", 20000, "records of BenchmarkEngineVsPlainLoop")

// BenchmarkEngineVsPlainLoop: a first backfill of N TribeCRM records
// (-bench.plain-records, 20,000 by default) into an empty BlueRockTel,
// once by the engine (bbolt state: match index, intents, fingerprints,
// golden records, page commits) and once by a plain loop doing only the
// job's essentials (pull a page, map each record in and out, POST it, 4
// in flight like the example's write_concurrency), alternated inside each
// iteration over fresh emulators. Reports both records/s and their ratio
// (issue 10 asks for the engine at 0.8x the plain loop or better).
//
//	go test ./e2e -run '^$' -bench EngineVsPlainLoop -benchtime 3x
func BenchmarkEngineVsPlainLoop(b *testing.B) {
	n := *plainBenchRecords
	var engineTook, plainTook time.Duration
	for i := 0; i < b.N; i++ {
		engineTook += timeBackfill(b, n, false)
		plainTook += timeBackfill(b, n, true)
	}
	b.ReportMetric(float64(n*b.N)/engineTook.Seconds(), "engine-records/s")
	b.ReportMetric(float64(n*b.N)/plainTook.Seconds(), "plain-records/s")
	b.ReportMetric(plainTook.Seconds()/engineTook.Seconds(), "engine/plain-speed")
}

// timeBackfill copies n fresh TribeCRM records into an empty BlueRockTel,
// by the engine or by the plain loop, and returns how long that took.
func timeBackfill(b *testing.B, n int, plain bool) time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	e := newEnv(b, envOptions{Seed: n, Edit: unlimited, ExampleConcurrency: true})
	defer e.srv.Close()
	cfg := e.parseConfig()
	a, err := app.Open(cfg, zerolog.Nop(), app.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	flows, err := app.Flows(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	f := flows[0]
	f.Targets = nil
	for _, t := range flows[0].Targets {
		if t.System == bluerocktel.System {
			f.Targets = append(f.Targets, t)
		}
	}
	started := time.Now()
	if plain {
		plainLoop(b, a.Systems[tribecrm.System], a.Systems[bluerocktel.System], f.WriteConcurrency)
	} else if _, err := a.Engine.Run(context.Background(), f, engine.RunOptions{Mode: engine.ModeBackfill}); err != nil {
		b.Fatalf("engine backfill: %v", err)
	}
	d := time.Since(started)
	if got := len(e.srv.BlueRockTel.IDs(bluerocktel.EntityProspects)) + len(e.srv.BlueRockTel.IDs(bluerocktel.EntityCustomers)); got != n {
		b.Fatalf("plain=%v: BlueRockTel holds %d records, want %d", plain, got, n)
	}
	return d
}

// plainLoop is the reference: pull, map, POST, nothing else.
func plainLoop(b *testing.B, src, dst *engine.System, concurrency int) {
	ctx := context.Background()
	if concurrency < 1 {
		concurrency = engine.DefaultWriteConcurrency
	}
	work := make(chan connectors.Record, concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if _, err := dst.Conn.Create(ctx, r); err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
				}
			}
		}()
	}
	var cur connectors.Cursor
	for {
		page, err := src.Conn.Pull(ctx, cur, connectors.PullOptions{PageSize: src.PageSize})
		if err != nil {
			b.Fatalf("plain loop pull: %v", err)
		}
		for _, rec := range page.Records {
			view, err := src.Map.Inbound(mapping.Native{Entity: rec.Entity, Fields: rec.Fields})
			if err != nil {
				b.Fatalf("plain loop map in: %v", err)
			}
			out, err := dst.Map.Outbound(view)
			if err != nil {
				b.Fatalf("plain loop map out: %v", err)
			}
			work <- connectors.Record{Entity: out.Entity, Fields: out.Fields}
		}
		if page.Done || page.Next == nil {
			break
		}
		cur = page.Next
	}
	close(work)
	wg.Wait()
	if failed != nil {
		b.Fatalf("plain loop create: %v", failed)
	}
}
