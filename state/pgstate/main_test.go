package pgstate_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/crmsync/crmsync/state/pgstate"
	"github.com/crmsync/crmsync/state/pgstate/pgtest"
	"github.com/crmsync/crmsync/state/statetest"
)

// pg is this test binary's PostgreSQL, started by the first test that needs
// it and stopped by TestMain.
var pg pgtest.Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// openT opens a Store on dsn, closed when t ends.
func openT(t testing.TB, dsn string, o pgstate.Options) *pgstate.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := pgstate.Open(ctx, dsn, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The PostgreSQL engine keeps the contract every state engine shares.
func TestContract(t *testing.T) {
	srv := pg.Get(t)
	statetest.Run(t, statetest.Engine{
		New: func(t *testing.T) func(t *testing.T) statetest.Store {
			dsn := srv.Schema(t)
			return func(t *testing.T) statetest.Store { return openT(t, dsn, pgstate.Options{MaxConns: 4}) }
		},
		Resolution: time.Microsecond,
	})
}
