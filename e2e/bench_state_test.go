package e2e

import (
	"context"
	"flag"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state/pgstate/pgtest"
)

var stateBenchRecords = flag.Int("bench.state-records", 20000, "records of BenchmarkBackfillStateEngines")

// BenchmarkBackfillStateEngines: the same first backfill of N TribeCRM
// records (-bench.state-records, 20,000 by default) into empty Overplane
// and BlueRockTel emulators, once with the bbolt state file and once with
// the PostgreSQL state, as sub-benchmarks of one run (use -count to
// alternate them). Reports records/s and the state's bytes per record
// (the bbolt file; PostgreSQL's tables with their indexes and TOAST).
//
//	go test ./e2e -run '^$' -bench BackfillStateEngines -benchtime 1x -count 3
func BenchmarkBackfillStateEngines(b *testing.B) {
	n := *stateBenchRecords
	for _, eng := range []string{"bbolt", "postgres"} {
		b.Run("engine="+eng, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e := newEnv(b, envOptions{Seed: n, Edit: unlimited, ExampleConcurrency: true})
				path, dsn := e.state, ""
				if eng == "postgres" {
					var err error
					dsn, err = pgtest.URL(pg.Get(b).Schema(b))
					if err != nil {
						b.Fatal(err)
					}
					path = dsn
				}
				cfg := e.parseConfig()
				a, err := app.Open(cfg, nopLog(), app.Options{StatePath: path})
				if err != nil {
					b.Fatal(err)
				}
				flows, err := app.Flows(cfg, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := a.Engine.Run(context.Background(), flows[0], engine.RunOptions{Mode: engine.ModeBackfill})
				b.StopTimer()
				if err != nil {
					b.Fatalf("backfill: %v", err)
				}
				if c := res.Systems[bluerocktel.System]; c == nil || c.Created != n {
					b.Fatalf("bluerocktel: %+v, want %d created", c, n)
				}
				_ = a.Close()
				b.ReportMetric(float64(stateBytes(b, e.state, dsn))/float64(n), "state-B/record")
				e.srv.Close()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// stateBytes is the size of the bbolt file, or of the test schema's tables
// in PostgreSQL (with indexes and TOAST).
func stateBytes(b *testing.B, file, dsn string) int64 {
	if dsn == "" {
		fi, err := os.Stat(file)
		if err != nil {
			b.Fatal(err)
		}
		return fi.Size()
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	var size int64
	if err := c.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	return size
}

func nopLog() zerolog.Logger { return zerolog.Nop() }
