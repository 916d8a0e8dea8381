package e2e

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"

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
// and BlueRockTel emulators, with the bbolt state file and with the
// PostgreSQL state, alternated inside every iteration so both see the same
// machine. Reports each engine's records/s, its state bytes per record
// (the bbolt file; PostgreSQL's tables with their indexes and TOAST) and
// the time ratio PostgreSQL/bbolt.
//
//	go test ./e2e -run '^$' -bench BackfillStateEngines -benchtime 3x
func BenchmarkBackfillStateEngines(b *testing.B) {
	n := *stateBenchRecords
	took := map[string]time.Duration{}
	size := map[string]int64{}
	for i := 0; i < b.N; i++ {
		for _, eng := range []string{"bbolt", "postgres"} {
			d, bytes := backfillOnce(b, n, eng)
			took[eng] += d
			size[eng] = bytes
		}
	}
	for _, eng := range []string{"bbolt", "postgres"} {
		b.ReportMetric(float64(n*b.N)/took[eng].Seconds(), eng+"-records/s")
		b.ReportMetric(float64(size[eng])/float64(n), eng+"-state-B/record")
	}
	b.ReportMetric(took["postgres"].Seconds()/took["bbolt"].Seconds(), "pg/bbolt-time")
}

// backfillOnce runs one first backfill of n records on engine eng and
// returns how long the backfill took and the state's size after it.
func backfillOnce(b *testing.B, n int, eng string) (time.Duration, int64) {
	b.StopTimer()
	defer b.StartTimer()
	e := newEnv(b, envOptions{Seed: n, Edit: unlimited, ExampleConcurrency: true})
	defer e.srv.Close()
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
	a, err := app.Open(cfg, zerolog.Nop(), app.Options{StatePath: path})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	flows, err := app.Flows(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ts := newTimedStore(a.Store)
	started := time.Now()
	res, err := a.Engine.Run(context.Background(), flows[0], engine.RunOptions{Mode: engine.ModeBackfill, Store: ts})
	d := time.Since(started)
	if testing.Verbose() {
		b.Logf("%s: %.0f µs/record in all; state calls:\n%s", eng, float64(d.Microseconds())/float64(n), ts.report(n))
	}
	if err != nil {
		b.Fatalf("backfill on %s: %v", eng, err)
	}
	if c := res.Systems[bluerocktel.System]; c == nil || c.Created != n {
		b.Fatalf("%s: bluerocktel %+v, want %d created", eng, c, n)
	}
	if dsn != "" && testing.Verbose() {
		logScans(b, dsn, n)
	}
	return d, stateBytes(b, e.state, dsn)
}

// logScans logs PostgreSQL's index and sequential scans per table per
// record (with -v): how many reads a record costs the engine.
func logScans(b *testing.B, dsn string, n int) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	rows, err := c.Query(ctx, `SELECT relname, coalesce(idx_scan, 0) + coalesce(seq_scan, 0), n_tup_ins + n_tup_upd + n_tup_del
		FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var scans, writes int64
		if err := rows.Scan(&name, &scans, &writes); err != nil {
			b.Fatal(err)
		}
		b.Logf("postgres %-14s %6.2f scans/record %6.2f row writes/record", name, float64(scans)/float64(n), float64(writes)/float64(n))
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
