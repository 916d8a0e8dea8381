package pgstate_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
)

func connT(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// The schema is what a DBA expects: one table per kind, with primary keys.
func TestSchemaTablesAndMigrationRecord(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).Schema(t)
	openT(t, dsn, pgstate.Options{})
	c := connT(t, dsn)
	ctx := context.Background()
	rows, _ := c.Query(ctx, `SELECT t.table_name, count(k.column_name)
		FROM information_schema.tables t
		LEFT JOIN information_schema.table_constraints tc ON tc.table_schema = t.table_schema
			AND tc.table_name = t.table_name AND tc.constraint_type = 'PRIMARY KEY'
		LEFT JOIN information_schema.key_column_usage k ON k.constraint_name = tc.constraint_name
			AND k.table_schema = t.table_schema
		WHERE t.table_schema = current_schema() GROUP BY t.table_name ORDER BY t.table_name`)
	got := map[string]int{}
	var name string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&name, &n}, func() error { got[name] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"cursors": 1, "deliveries": 1, "fingerprints": 2, "intents": 2, "links": 2, "records": 1,
		"runs": 2, "schema_migrations": 1, "replicas": 1, "leases": 1, "match_index": 4, "match_index_meta": 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tables and primary-key columns = %v, want %v", got, want)
	}
	var versions []int
	rows, _ = c.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || !reflect.DeepEqual(versions, []int{1, 2, 3}) || pgstate.SchemaVersion() != 3 {
		t.Fatalf("schema_migrations = %v, %v; want [1 2 3]", versions, err)
	}
}

// Replicas starting together against an empty database each apply the
// schema once: no error, one row per version.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).Schema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := pgstate.Open(context.Background(), dsn, pgstate.Options{MaxConns: 2})
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	var n int
	if err := connT(t, dsn).QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != pgstate.SchemaVersion() {
		t.Fatalf("schema_migrations rows = %d, %v; want one per version (%d)", n, err, pgstate.SchemaVersion())
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).Schema(t)
	openT(t, dsn, pgstate.Options{}).Close()
	if _, err := connT(t, dsn).Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES (99, 'future')`); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := pgstate.Open(context.Background(), dsn, pgstate.Options{ReadOnly: ro})
		if !errors.Is(err, state.ErrSchemaTooNew) || !strings.Contains(err.Error(), "99") {
			t.Fatalf("Open (read-only %v) of a schema at version 99 = %v; want ErrSchemaTooNew naming it", ro, err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).Schema(t)
	if _, err := pgstate.Open(context.Background(), dsn, pgstate.Options{ReadOnly: true}); !errors.Is(err, state.ErrReadOnly) {
		t.Fatalf("read-only Open of an empty database = %v; want ErrReadOnly (nothing to read, nothing created)", err)
	}
	rw := openT(t, dsn, pgstate.Options{})
	var b state.Batch
	b.SetCursor("k", []byte("v"))
	if err := rw.Commit(&b); err != nil {
		t.Fatal(err)
	}
	ro := openT(t, dsn, pgstate.Options{ReadOnly: true})
	if c, err := ro.Cursor("k"); err != nil || string(c) != "v" {
		t.Fatalf("read-only Cursor = %q, %v", c, err)
	}
	if err := ro.Commit(&b); !errors.Is(err, state.ErrReadOnly) {
		t.Errorf("Commit on read-only = %v", err)
	}
	if err := ro.PutIntents([]state.Intent{{ID: "a", System: "b"}}); !errors.Is(err, state.ErrReadOnly) {
		t.Errorf("PutIntents on read-only = %v", err)
	}
	if err := ro.DropDeadLetter("a/b/c"); !errors.Is(err, state.ErrReadOnly) {
		t.Errorf("DropDeadLetter on read-only = %v", err)
	}
}

// A server that hangs up on every connection, on a port the kernel picked.
func hangUpServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// The password in a DSN never shows in an error, whatever fails.
func TestErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	const pw = "s3cr3t-Pa55"
	addr := hangUpServer(t)
	host, port, _ := net.SplitHostPort(addr)
	dsns := []string{
		"postgres://crmsync:" + pw + "@" + addr + "/crm?connect_timeout=5&sslmode=disable",
		fmt.Sprintf("host=%s port=%s user=crmsync password=%s dbname=crm connect_timeout=5 sslmode=disable", host, port, pw),
		"postgres://crmsync:" + pw + "@" + host + ":notaport/crm",
		"postgres://crmsync:" + pw + "@" + addr + "/crm?sslmode=bogus",
		"host=" + host + " password='" + pw + "' port=",
	}
	for _, dsn := range dsns {
		_, err := pgstate.Open(context.Background(), dsn, pgstate.Options{Timeout: 10 * time.Second})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		t.Logf("%v", err)
		if strings.Contains(err.Error(), pw) || strings.Contains(fmt.Sprintf("%+v", err), pw) {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), "state database") {
			t.Errorf("error does not say what failed: %v", err)
		}
	}
}

// The same on a real server, for an error the server itself reports.
func TestServerErrorsNeverShowThePassword(t *testing.T) {
	t.Parallel()
	srv := pg.Get(t)
	const pw = "s3cr3t-Pa55"
	dsn := srv.DSN + " dbname=no_such_db password=" + pw
	_, err := pgstate.Open(context.Background(), dsn, pgstate.Options{})
	if err == nil || !strings.Contains(err.Error(), "no_such_db") {
		t.Fatalf("Open of a missing database = %v; want it named", err)
	}
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("error shows the password: %v", err)
	}
}

// A commit whose connection dies inside its transaction (the server ends
// the backend after every change was sent, before COMMIT) leaves nothing;
// the Store goes on with a new connection.
func TestConnectionDiesMidTransaction(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).Schema(t)
	killer := connT(t, dsn)
	var killed []uint32
	o := pgstate.WithBeforeCommit(pgstate.Options{MaxConns: 2}, func(ctx context.Context, tx pgx.Tx) error {
		pid := tx.Conn().PgConn().PID()
		var ok bool
		if err := killer.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&ok); err != nil || !ok {
			return fmt.Errorf("terminate backend %d: %v, %v", pid, ok, err)
		}
		killed = append(killed, pid)
		return nil
	})
	s := openT(t, dsn, o)
	var b state.Batch
	for i := 0; i < 50; i++ {
		r := funnel.New(fmt.Sprintf("r%d", i))
		r.Links["overplane"] = fmt.Sprintf("o%d", i)
		b.PutRecord(r)
		b.PutFingerprint("overplane", fmt.Sprintf("o%d", i), state.Fingerprint{Hash: "h"})
	}
	b.PutRun(state.Run{Flow: "leads"})
	b.SetCursor("flow/leads/tribecrm", []byte("page-1"))
	err := s.Commit(&b)
	if err == nil {
		t.Fatal("Commit succeeded on a connection killed before COMMIT")
	}
	if len(killed) == 0 {
		t.Fatal("the hook did not run")
	}
	t.Logf("Commit with its backend %d killed: %v", killed[0], err)
	plain := openT(t, dsn, pgstate.Options{})
	st, err := plain.Stats()
	if err != nil {
		t.Fatal(err)
	}
	delete(st, "meta")
	for kind, n := range st {
		if n != 0 {
			t.Errorf("%d %s left by a commit whose connection died", n, kind)
		}
	}
	if err := plain.Commit(&b); err != nil {
		t.Fatalf("the same page on a working connection: %v", err)
	}
	if c, _ := s.Cursor("flow/leads/tribecrm"); string(c) != "page-1" {
		t.Fatalf("the first Store, after losing a connection, reads cursor %q", c)
	}
}

// What PostgreSQL cannot hold (a NUL in text or in a JSON string) fails the
// commit and writes none of it, where bbolt would store it.
func TestNULFailsTheWholeCommit(t *testing.T) {
	t.Parallel()
	s := openT(t, pg.Get(t).Schema(t), pgstate.Options{})
	for name, add := range map[string]func(b *state.Batch){
		"payload": func(b *state.Batch) {
			b.PutFingerprint("overplane", "1", state.Fingerprint{Hash: "h", Payload: map[string]any{"name": "a\x00b"}})
		},
		"id": func(b *state.Batch) { b.Link("overplane", "a\x00b", "c") },
	} {
		var b state.Batch
		b.SetCursor("flow/leads/tribecrm", []byte("advanced"))
		b.PutRecord(funnel.New("r"))
		add(&b)
		if err := s.Commit(&b); err == nil || !strings.Contains(err.Error(), "nothing written") {
			t.Fatalf("%s with a NUL: Commit = %v; want an error saying nothing was written", name, err)
		}
		if c, _ := s.Cursor("flow/leads/tribecrm"); c != nil {
			t.Fatalf("%s with a NUL: cursor written", name)
		}
		if r, _ := s.Record("r"); r != nil {
			t.Fatalf("%s with a NUL: record written", name)
		}
	}
}
