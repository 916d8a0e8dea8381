package pgstate

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/crmsync/state"
)

// migrationFiles are the schema versions, NNNN_name.sql, applied in order.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pg_advisory_lock key held while migrating, so that
// replicas starting together apply each version once ("crmsync" in ASCII).
const migrationLock int64 = 0x63726d73796e63

type migration struct {
	version int
	name    string
	sql     string
}

// migrations lists the embedded migrations, oldest first.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	out := make([]migration, 0, len(names))
	for _, n := range names {
		base := path.Base(n)
		num, rest, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration file %s: name must be NNNN_what.sql", base)
		}
		body, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(rest, ".sql"), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migrations: version %d follows %d", m.version, i)
		}
	}
	return out, nil
}

// SchemaVersion is the newest schema version this build applies.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate applies the missing migrations, each in its own transaction
// together with its schema_migrations row, holding the advisory lock.
func migrate(ctx context.Context, conn *pgx.Conn) (err error) {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the caller's may be what ended the migration.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLock); uerr != nil && err == nil {
			err = fmt.Errorf("release the migration lock: %w", uerr)
		}
	}()
	if _, err := conn.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	have, err := appliedVersion(ctx, conn)
	if err != nil {
		return err
	}
	if want := ms[len(ms)-1].version; have > want {
		return fmt.Errorf("schema version %d, this crmsync understands up to %d: %w", have, want, state.ErrSchemaTooNew)
	}
	for _, m := range ms[have:] {
		if err := applyMigration(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
		return err
	})
	if err != nil {
		return fmt.Errorf("apply migration %04d_%s: %w", m.version, m.name, err)
	}
	return nil
}

func appliedVersion(ctx context.Context, conn *pgx.Conn) (int, error) {
	var v int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	return v, nil
}

// checkSchema is the read-only check: the schema must be exactly current.
func checkSchema(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return err
	}
	want := SchemaVersion()
	if !exists {
		return fmt.Errorf("no crmsync schema (open it once read-write to create it): %w", state.ErrReadOnly)
	}
	have, err := appliedVersion(ctx, conn)
	if err != nil {
		return err
	}
	switch {
	case have > want:
		return fmt.Errorf("schema version %d, this crmsync understands up to %d: %w", have, want, state.ErrSchemaTooNew)
	case have < want:
		return fmt.Errorf("schema version %d needs a migration to %d; open it once read-write: %w", have, want, state.ErrReadOnly)
	}
	return nil
}
