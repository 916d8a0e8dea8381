package e2e

import (
	"context"
	"regexp"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/engine"
)

const benchRecords = 2000

// unlimited turns off the example config's client-side rate limits, so a
// benchmark measures crmsync and the emulators, not the configured pacing.
func unlimited(text string) string {
	return regexp.MustCompile(`(?m)^(\s+rate_limit:\s*)\d+`).ReplaceAllString(text, "${1}0")
}

// benchApp opens the environment's config in-process with a silent logger.
func benchApp(b *testing.B, e *testEnv) (*app.App, []engine.Flow) {
	b.Helper()
	cfg := e.parseConfig()
	a, err := app.Open(cfg, zerolog.Nop(), app.Options{})
	if err != nil {
		b.Fatal(err)
	}
	flows, err := app.Flows(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	return a, flows
}

func benchSync(b *testing.B, a *app.App, flows []engine.Flow) *engine.Result {
	b.Helper()
	var last *engine.Result
	for _, f := range flows {
		res, err := a.Engine.Run(context.Background(), f, engine.RunOptions{Mode: engine.ModeSync})
		if err != nil {
			b.Fatalf("sync: %v", err)
		}
		last = res
	}
	return last
}

// BenchmarkSyncTribeCRM: one first sync of 2,000 TribeCRM records into
// empty Overplane and BlueRockTel emulators, over loopback HTTP, with a
// fresh state file each iteration. Reports source records per second.
func BenchmarkSyncTribeCRM(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := newEnv(b, envOptions{Seed: benchRecords, Edit: unlimited, ExampleConcurrency: true})
		a, flows := benchApp(b, e)
		b.StartTimer()
		res := benchSync(b, a, flows)
		b.StopTimer()
		if c := res.Systems[bluerocktel.System]; c == nil || c.Created != benchRecords {
			b.Fatalf("bluerocktel: %+v, want %d created", c, benchRecords)
		}
		_ = a.Close()
		e.srv.Close()
	}
	b.ReportMetric(float64(benchRecords*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkResyncUnchanged: a sync of 2,000 already synced TribeCRM records
// with nothing changed (no write expected). Reports the records pulled per
// sync and per second.
func BenchmarkResyncUnchanged(b *testing.B) {
	e := newEnv(b, envOptions{Seed: benchRecords, Edit: unlimited, ExampleConcurrency: true})
	a, flows := benchApp(b, e)
	defer a.Close()
	benchSync(b, a, flows)
	pulled := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := benchSync(b, a, flows)
		for sys, c := range res.Systems {
			if c.Writes() != 0 || c.Failed != 0 {
				b.Fatalf("%s: %+v, want no write", sys, c)
			}
			pulled += c.Pulled
		}
	}
	// A resync reads only what changed since the cursor (plus its overlap
	// window), so the rate is of records actually pulled.
	b.ReportMetric(float64(pulled)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(pulled)/float64(b.N), "pulled/op")
}
