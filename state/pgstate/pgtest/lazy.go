package pgtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// Lazy starts the server the first time a test asks for it, so a test
// binary whose PostgreSQL tests are filtered out starts none. Declare one
// per test binary and call Stop from TestMain after m.Run.
type Lazy struct {
	once sync.Once
	srv  *Server
	err  error
}

// Get returns the server, starting it on first use. Without PostgreSQL it
// skips t, saying why; a server that is there but fails to start fails t.
func (l *Lazy) Get(t testing.TB) *Server {
	t.Helper()
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		l.srv, l.err = Start(ctx)
	})
	switch {
	case errors.Is(l.err, ErrUnavailable):
		t.Skipf("PostgreSQL half skipped: %v", l.err)
	case l.err != nil:
		t.Fatalf("PostgreSQL for tests: %v", l.err)
	}
	return l.srv
}

// Stop stops the server if Get started one.
func (l *Lazy) Stop() error {
	return l.srv.Stop()
}

// Main is a TestMain body: it runs m, stops the server if a test started
// one, and returns the exit code (1 when stopping failed).
func (l *Lazy) Main(m *testing.M) int {
	code := m.Run()
	if err := l.Stop(); err != nil {
		println("stop test PostgreSQL:", err.Error())
		if code == 0 {
			code = 1
		}
	}
	return code
}
