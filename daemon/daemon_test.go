package daemon

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state"
)

// hangingSource is a source whose Pull hangs until its context is
// cancelled, like an HTTP request to a server that never answers.
type hangingSource struct {
	connectors.Connector // nil: the engine calls nothing else before the pull
	name                 string
	pulling              chan struct{} // receives once per Pull
}

func (h *hangingSource) System() string { return h.name }

func (h *hangingSource) Pull(ctx context.Context, _ connectors.Cursor, _ connectors.PullOptions) (connectors.Page, error) {
	h.pulling <- struct{}{}
	<-ctx.Done()
	return connectors.Page{}, ctx.Err()
}

// newHangingDaemon returns a daemon whose one flow hangs in its first pull
// (the run at start), and the channel that receives when it does.
func newHangingDaemon(t *testing.T, o Options) (*Daemon, chan struct{}) {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src := &hangingSource{name: "src", pulling: make(chan struct{}, 1)}
	dst := &hangingSource{name: "dst", pulling: make(chan struct{}, 1)}
	eng, err := engine.New(engine.Options{Store: st, Logger: zerolog.Nop(), Systems: map[string]*engine.System{
		"src": {Name: "src", Conn: src, PageSize: 10},
		"dst": {Name: "dst", Conn: dst, PageSize: 10},
	}})
	if err != nil {
		t.Fatal(err)
	}
	o.Engine, o.Store, o.Parser, o.Logger, o.RunAtStart = eng, st, config.ScheduleParser(), zerolog.Nop(), true
	o.Jobs = []Job{{Flow: engine.Flow{Name: "f", Source: "src", Targets: []engine.Target{{System: "dst"}}}, Schedule: "@every 1h"}}
	return New(o), src.pulling
}

// start runs d in the background and waits for its run to hang.
func start(t *testing.T, d *Daemon, ctx context.Context, pulling chan struct{}) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case <-pulling:
	case <-time.After(10 * time.Second):
		t.Fatal("the run at start never pulled")
	}
	return done
}

func waitReturn(t *testing.T, done chan error, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("Run did not return within %s", within)
		return 0
	}
}

func TestDefaultShutdownGrace(t *testing.T) {
	t.Parallel()
	if d := New(Options{}); d.o.ShutdownGrace != DefaultShutdownGrace || DefaultShutdownGrace != 10*time.Second {
		t.Errorf("default grace %s, want 10s", d.o.ShutdownGrace)
	}
}

// A stop waits for the hung run up to the grace, then cancels it.
func TestShutdownGraceCancelsAHungRun(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	d, pulling := newHangingDaemon(t, Options{ShutdownGrace: grace})
	ctx, stop := context.WithCancel(context.Background())
	done := start(t, d, ctx, pulling)
	stop()
	took := waitReturn(t, done, 10*time.Second)
	if took < grace {
		t.Errorf("Run returned %s after the stop, before the %s grace", took, grace)
	}
}

// Cancelling RunContext (the CLI does at a second signal) cuts the hung run
// at once, long before the grace ends.
func TestRunContextCancelCutsAtOnce(t *testing.T) {
	t.Parallel()
	runCtx, cut := context.WithCancel(context.Background())
	d, pulling := newHangingDaemon(t, Options{ShutdownGrace: time.Hour, RunContext: runCtx})
	ctx, stop := context.WithCancel(runCtx)
	done := start(t, d, ctx, pulling)
	stop()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) during the grace with its run still hung", err)
	case <-time.After(100 * time.Millisecond):
	}
	cut()
	if took := waitReturn(t, done, 5*time.Second); took > 2*time.Second {
		t.Errorf("Run took %s to return after RunContext was cancelled", took)
	}
}

// RunContext being done stops the daemon even when ctx is not.
func TestRunContextDoneStops(t *testing.T) {
	t.Parallel()
	runCtx, cut := context.WithCancel(context.Background())
	d, pulling := newHangingDaemon(t, Options{ShutdownGrace: time.Hour, RunContext: runCtx})
	done := start(t, d, context.Background(), pulling)
	cut()
	waitReturn(t, done, 5*time.Second)
}
