package pgstate

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/crmsync/crmsync/state"
)

// DefaultTimeout bounds each call of a Store (and Open) when
// Options.Timeout is zero or negative.
const DefaultTimeout = 30 * time.Second

// Options tune Open.
type Options struct {
	// Timeout bounds each read or commit (the Store's methods take no
	// context, like the bbolt Store's). Zero or negative means
	// DefaultTimeout.
	Timeout time.Duration
	// ReadOnly refuses writes (with an error wrapping state.ErrReadOnly)
	// and does not migrate: the schema must be there already.
	ReadOnly bool
	// MaxConns caps the pool (pgxpool's default when zero).
	MaxConns int32

	// beforeCommit, set by tests only, runs inside Commit's transaction
	// after every change was sent and before COMMIT.
	beforeCommit func(ctx context.Context, tx pgx.Tx) error
}

// Store is crmsync's state in a PostgreSQL database. Its methods mean what
// the bbolt state.Store's do. It is safe for concurrent use.
type Store struct {
	pool     *pgxpool.Pool
	name     string // the database, for errors: user@host/db, never the password
	timeout  time.Duration
	readOnly bool
	before   func(ctx context.Context, tx pgx.Tx) error
	// fence, when set (a Fenced view), is checked in every write's
	// transaction.
	fence *state.Lease
}

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string), applies the schema migrations it lacks under an
// advisory lock (read-write only) and returns the Store. Errors name the
// database but never its password.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open state database %s: bad connection string: %w", describeDSN(dsn), redactErr(err, dsn, ""))
	}
	name := describe(cfg.ConnConfig)
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	if o.ReadOnly {
		// The server refuses writes too, whatever a caller sends.
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	s := &Store{name: name, timeout: o.Timeout, readOnly: o.ReadOnly, before: o.beforeCommit}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	pw := cfg.ConnConfig.Password
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open state database %s: %w", name, redactErr(err, dsn, pw))
	}
	s.pool = pool
	if err := s.prepare(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open state database %s: %w", name, redactErr(err, dsn, pw))
	}
	return s, nil
}

// prepare checks the connection and brings the schema up to date.
func (s *Store) prepare(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if s.readOnly {
		return checkSchema(ctx, conn.Conn())
	}
	return migrate(ctx, conn.Conn())
}

// Close closes the pool. Closing twice is harmless.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Name is the database the Store uses, as user@host:port/database.
func (s *Store) Name() string { return s.name }

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

func (s *Store) writable(what string) error {
	if s.readOnly {
		return fmt.Errorf("%s: state database %s: %w", what, s.name, state.ErrReadOnly)
	}
	return nil
}

// Stats counts the rows of each kind, under the bbolt engine's bucket
// names; "meta" counts the applied schema migrations.
func (s *Store) Stats() (map[string]int, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	var m, c, r, l, f, i, d, n int
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM schema_migrations), (SELECT count(*) FROM cursors), (SELECT count(*) FROM records),
		(SELECT count(*) FROM links), (SELECT count(*) FROM fingerprints), (SELECT count(*) FROM intents),
		(SELECT count(*) FROM deliveries), (SELECT count(*) FROM runs)`).Scan(&m, &c, &r, &l, &f, &i, &d, &n)
	if err != nil {
		return nil, s.fail("read state stats", err)
	}
	return map[string]int{"meta": m, "cursors": c, "records": r, "links": l, "fingerprints": f,
		"intents": i, "deadletters": d, "runs": n}, nil
}

// fail wraps err with what failed and the database's name.
func (s *Store) fail(what string, err error) error {
	return fmt.Errorf("%s: state database %s: %w", what, s.name, err)
}

// describe names a database for messages: user@host:port/database.
func describe(c *pgx.ConnConfig) string {
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "unix(" + host + ")"
	}
	return fmt.Sprintf("%s@%s:%d/%s", c.User, host, c.Port, c.Database)
}

// describeDSN names a connection string that does not parse, without its
// password: the scheme and host of a URL, or nothing.
func describeDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return "(unparsable connection string)"
}

// redactErr returns err with the password (and the whole DSN, which holds
// it) replaced, in case a driver message quotes them.
func redactErr(err error, dsn, password string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	if dsn != "" {
		clean = strings.ReplaceAll(clean, dsn, "<connection string>")
	}
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			clean = strings.ReplaceAll(clean, pw, "xxxxx")
			clean = strings.ReplaceAll(clean, url.QueryEscape(pw), "xxxxx")
		}
	}
	if password != "" {
		clean = strings.ReplaceAll(clean, password, "xxxxx")
	}
	if clean == msg {
		return err
	}
	return &redacted{msg: clean}
}

// redacted is an error whose message had a secret taken out. It does not
// unwrap: the original error would print the secret again.
type redacted struct{ msg string }

func (r *redacted) Error() string { return r.msg }

// isSerialization reports a transaction that lost a race and may be retried.
func isSerialization(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

var _ state.Storage = (*Store)(nil)
var _ state.Leaser = (*Store)(nil)
