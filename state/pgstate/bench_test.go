package pgstate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
)

// committer is what the benchmark needs of either engine.
type committer interface {
	Commit(b *state.Batch) error
	Close() error
}

// BenchmarkCommitPage commits pages of 100 records (golden record with two
// links, a fingerprint with its payload, the cursor) on bbolt and on
// PostgreSQL, side by side. "new" writes records never seen (backfill),
// "update" rewrites the same page (steady sync). One op is one page; each
// commit is durable (bbolt fsyncs, PostgreSQL flushes its WAL).
// state-B/record is the store's size divided by the records written: the
// bbolt file, or every table and index of the PostgreSQL schema.
func BenchmarkCommitPage(b *testing.B) {
	for _, engine := range []string{"bbolt", "postgres"} {
		for _, mode := range []string{"new", "update"} {
			b.Run(engine+"/"+mode+"/100", func(b *testing.B) {
				s, size := openBench(b, engine)
				benchPages(b, s, 100, mode == "update")
				records := b.N * 100
				if mode == "update" {
					records = 100
				}
				b.ReportMetric(float64(size())/float64(records), "state-B/record")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/record")
			})
		}
	}
}

// openBench opens an empty store of engine and returns it with a function
// that measures its size in bytes.
func openBench(b *testing.B, engine string) (committer, func() int64) {
	b.Helper()
	if engine == "bbolt" {
		path := filepath.Join(b.TempDir(), "bench.db")
		s, err := state.Open(path, state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s, func() int64 {
			fi, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			return fi.Size()
		}
	}
	dsn := pg.Get(b).Schema(b)
	s := openT(b, dsn, pgstate.Options{})
	return s, func() int64 { return schemaSize(b, dsn) }
}

// schemaSize is the size of every table of the DSN's schema with its
// indexes and TOAST data.
func schemaSize(b *testing.B, dsn string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(ctx)
	var n int64
	err = c.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		JOIN pg_namespace ns ON ns.oid = c.relnamespace
		WHERE ns.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> 'schema_migrations'`).Scan(&n)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func benchPages(b *testing.B, s committer, size int, update bool) {
	payload := map[string]any{"name": "Acme B.V.", "email": "info@acme.example", "phone": "+31 30 123 4567",
		"address": map[string]any{"street": "Main St 1", "city": "Utrecht", "zip": "3511 AA"}, "status": float64(2)}
	hash := funnel.FingerprintValues(payload)
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	recs := make([]*funnel.Record, size)
	for i := range recs {
		r := funnel.New("")
		_ = r.Set(funnel.FieldKind, "organization")
		_ = r.Set(funnel.FieldStage, "lead")
		_ = r.Set(funnel.FieldName, "Acme B.V.")
		_ = r.Set(funnel.FieldActive, true)
		_ = r.Set(funnel.FieldUpdatedAt, at)
		r.Sources = map[string]funnel.Source{funnel.FieldName: {System: "tribecrm", At: at}, funnel.FieldStage: {System: "overplane", At: at}}
		recs[i] = r
	}
	var batch state.Batch
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		page := n
		if update {
			page = 0
		}
		batch.Reset()
		for i, r := range recs {
			ext := fmt.Sprintf("%d-%d", page, i)
			r.ID = "id-" + ext
			r.Links["tribecrm"] = "t-" + ext
			r.Links["overplane"] = "o-" + ext
			batch.PutRecord(r)
			batch.PutFingerprint("overplane", "o-"+ext, state.Fingerprint{Hash: hash, Payload: payload, Entity: "prospect",
				At: at, Source: state.FingerprintWrite})
		}
		batch.SetCursor("flow/leads/tribecrm", []byte(fmt.Sprintf(`{"ts":"2025-03-14T09:26:53Z","page":%d}`, n)))
		if err := s.Commit(&batch); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}
