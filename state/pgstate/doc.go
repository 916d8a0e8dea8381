// Package pgstate keeps crmsync's state in PostgreSQL, for several
// replicas sharing one database (issue 13). It has the bbolt state.Store's
// methods with the same meaning — the contract suite in state/statetest
// runs against both — and reuses state's types and state.Batch: a page's
// changes go into a Batch and Commit applies them in one transaction, all
// or nothing.
//
// # Schema
//
// One table per kind of state, with real keys (migrations/0001_init.sql):
//
//	table             key                        holds
//	cursors           key                        value bytea
//	records           id                         fields, links, sources, gone (jsonb)
//	links             (system, external_id)      canonical_id (indexed)
//	fingerprints      (system, external_id)      hash, entity, source, at, payload jsonb
//	intents           (system, canonical_id)     entity, flow, at, match, payload jsonb
//	deliveries        key                        flow, system, ids, op, pending, dropped, error,
//	                                             attempts, first_at, last_at, payload jsonb
//	runs              (flow, started_ns)         started, finished, mode, error, counts jsonb
//	schema_migrations version                    name, applied_at
//
// Keys and names use COLLATE "C" so that listings sort byte by byte as in
// bbolt, whatever the database's locale. JSONB holds payloads only.
//
// # Migrations
//
// Open applies the embedded migrations the database lacks, in order, each
// in its own transaction with its schema_migrations row, while holding
// pg_advisory_lock(0x63726d73796e63), so replicas starting together apply
// each version once. A database with a newer version fails with an error
// wrapping state.ErrSchemaTooNew; a read-only Store does not migrate.
//
// # Commits
//
// Commit turns a batch into a few set-based statements, grouped by the
// tables each kind of change touches (plan.go says why that commits the
// same result as applying the changes one by one), and sends them in one
// round trip (a pgx pipeline) inside one transaction. A deadlock or serialization failure is
// retried (up to 3 tries; the failed try left nothing). When the
// connection breaks during COMMIT itself the outcome is unknown to the
// client; the error then says so instead of "nothing written". Durability
// is PostgreSQL's: with the default synchronous_commit=on a commit that
// returned is in the write-ahead log on disk.
//
// # Differences from bbolt
//
//   - Times in columns (fingerprints.at, intents.at, deliveries.first_at
//     and last_at, runs.finished) are kept to the microsecond. A run's
//     Started is its key and is kept to the nanosecond (started_ns);
//     times inside records (sources, gone, fields) are JSON and exact.
//   - Text cannot hold a NUL byte or invalid UTF-8, and JSONB refuses the
//     \u0000 escape: such ids or payload strings make the commit fail
//     (writing nothing) where bbolt would store them.
//   - Stats counts rows; its "meta" entry is the number of applied schema
//     migrations.
//   - Several processes may open the same database: there is no lock like
//     bbolt's flock. Leases that keep two replicas off the same flow are a
//     later slice of issue 13.
//
// Errors name the database as user@host:port/database and never contain
// its password.
package pgstate
