package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// The signal helper is tested with fake signals fed to watchSignals:
// sending real ones to the test process could kill it.

// signalRig is one watchSignals under test.
type signalRig struct {
	t      *testing.T
	sigs   chan os.Signal
	ctx    context.Context
	stop   <-chan struct{}
	finish func() error
	logs   *syncBuf
	stderr *syncBuf
}

func newSignalRig(t *testing.T, parent context.Context, grace time.Duration) *signalRig {
	t.Helper()
	r := &signalRig{t: t, sigs: make(chan os.Signal, 2), logs: &syncBuf{}, stderr: &syncBuf{}}
	r.ctx, r.stop, r.finish = watchSignals(parent, r.sigs, grace, zerolog.New(r.logs), r.stderr)
	t.Cleanup(func() { _ = r.finish() })
	return r
}

func (r *signalRig) signal(s os.Signal) {
	r.t.Helper()
	select {
	case r.sigs <- s:
	case <-time.After(5 * time.Second):
		r.t.Fatal("the helper does not read its signals")
	}
}

func (r *signalRig) waitStop() {
	r.t.Helper()
	select {
	case <-r.stop:
	case <-time.After(5 * time.Second):
		r.t.Fatal("stop not closed after the first signal")
	}
}

// waitDone waits for the engine context to be cancelled and returns how
// long that took.
func (r *signalRig) waitDone(within time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	select {
	case <-r.ctx.Done():
		return time.Since(start)
	case <-time.After(within):
		r.t.Fatalf("engine context still alive after %s", within)
		return 0
	}
}

func (r *signalRig) assertAlive(d time.Duration) {
	r.t.Helper()
	select {
	case <-r.ctx.Done():
		r.t.Fatalf("engine context cancelled (%v) before the grace period ended", context.Cause(r.ctx))
	case <-time.After(d):
	}
}

func stopClosed(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func TestSignalsFirstClosesStopAndGraceCancels(t *testing.T) {
	t.Parallel()
	const grace = 300 * time.Millisecond
	r := newSignalRig(t, context.Background(), grace)
	if stopClosed(r.stop) {
		t.Fatal("stop closed before any signal")
	}
	start := time.Now()
	r.signal(syscall.SIGTERM)
	r.waitStop()
	// The page in hand gets the grace period: the context stays alive.
	r.assertAlive(grace / 2)
	r.waitDone(10 * time.Second)
	if took := time.Since(start); took < grace {
		t.Errorf("engine context cancelled after %s, before the %s grace", took, grace)
	}
	if cause := context.Cause(r.ctx); !errors.Is(cause, errGraceExpired) {
		t.Errorf("cause %v, want the grace expiry", cause)
	}
	if err := r.finish(); err != nil {
		t.Errorf("finish after one signal: %v, want nil (not an interruption)", err)
	}
	logs := r.logs.String()
	for _, want := range []string{
		"stopping: finishing the page in hand (up to 300ms); send the signal again to stop at once",
		"did not finish within 300ms: cancelling its requests (uncommitted work will be resumed by the next run)",
		`"signal":"terminated"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	if s := r.stderr.String(); s != "" {
		t.Errorf("one signal wrote to stderr: %q", s)
	}
}

func TestSignalsSecondCancelsAtOnce(t *testing.T) {
	t.Parallel()
	r := newSignalRig(t, context.Background(), time.Hour)
	r.signal(syscall.SIGINT)
	r.waitStop()
	r.assertAlive(50 * time.Millisecond)
	r.signal(syscall.SIGTERM)
	if took := r.waitDone(5 * time.Second); took > 2*time.Second {
		t.Errorf("second signal took %s to cancel", took)
	}
	if cause := context.Cause(r.ctx); !errors.Is(cause, errInterruptedTwice) {
		t.Errorf("cause %v, want the second signal", cause)
	}
	err := r.finish()
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitInterrupted || ExitInterrupted != 130 {
		t.Fatalf("finish: %v, want exit status 130", err)
	}
	if ee.Err != nil {
		t.Errorf("the exit error carries a message (%v): Execute would print it a second time", ee.Err)
	}
	if err2 := r.finish(); err2 != err {
		t.Errorf("a second finish returned %v, want the same %v", err2, err)
	}
	msg := r.stderr.String()
	if !strings.Contains(msg, "interrupted twice") || !strings.Contains(msg, "uncommitted work will be resumed by the next run") {
		t.Errorf("stderr %q does not say it was interrupted twice and what happens to uncommitted work", msg)
	}
}

func TestSignalsSecondAfterGraceStillExits130(t *testing.T) {
	t.Parallel()
	r := newSignalRig(t, context.Background(), 10*time.Millisecond)
	r.signal(syscall.SIGTERM)
	r.waitDone(5 * time.Second)
	r.signal(syscall.SIGTERM)
	// The signal is read by the watcher; finish waits for it to exit.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.stderr.String(), "interrupted twice") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var ee *ExitError
	if err := r.finish(); !errors.As(err, &ee) || ee.Code != ExitInterrupted {
		t.Fatalf("finish: %v, want exit status 130", err)
	}
}

func TestSignalsNoneThenFinish(t *testing.T) {
	t.Parallel()
	r := newSignalRig(t, context.Background(), time.Hour)
	if err := r.finish(); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if stopClosed(r.stop) {
		t.Error("stop closed without a signal")
	}
	if r.ctx.Err() == nil {
		t.Error("finish did not release the engine context")
	}
	// Once finished, signals are no longer read (handleSignals has also
	// stopped their delivery by then).
	select {
	case r.sigs <- syscall.SIGTERM:
	default:
		t.Fatal("signal channel full")
	}
	time.Sleep(20 * time.Millisecond)
	if len(r.sigs) != 1 || stopClosed(r.stop) {
		t.Error("a signal after finish was acted on")
	}
	if r.logs.String() != "" || r.stderr.String() != "" {
		t.Errorf("output without a signal: logs %q stderr %q", r.logs.String(), r.stderr.String())
	}
}

func TestSignalsParentCancelled(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithCancel(context.Background())
	r := newSignalRig(t, parent, time.Hour)
	cancel()
	r.waitDone(5 * time.Second)
	if stopClosed(r.stop) {
		t.Error("stop closed by the parent's cancellation")
	}
	if err := r.finish(); err != nil {
		t.Errorf("finish: %v", err)
	}
}

func TestHandleSignalsRegistersAndFinishes(t *testing.T) {
	t.Parallel()
	// No signal is sent: this checks the wiring (Notify, Stop, finish).
	ctx, stop, finish := handleSignals(context.Background(), time.Second, zerolog.Nop(), &bytes.Buffer{})
	if ctx.Err() != nil || stopClosed(stop) {
		t.Fatal("stopped before any signal")
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() == nil {
		t.Error("finish did not release the engine context")
	}
}

// syncBuf is a bytes.Buffer safe for the watcher goroutine and the test.
type syncBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// --shutdown-grace is on sync, backfill and run, and must be positive.
func TestShutdownGraceFlag(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 1, "info", nil)
	for _, args := range [][]string{{"sync"}, {"backfill", "t2b"}, {"run", "--admin", ""}} {
		name := args[0]
		code, _, errOut := w.run(append(args, "--config", w.cfg, "--shutdown-grace", "0s")...)
		if code != 2 || !strings.Contains(errOut, "--shutdown-grace 0s must be positive") {
			t.Errorf("%s --shutdown-grace 0s: exit %d, stderr %q; want 2 and why", name, code, errOut)
		}
		code, out, _ := w.run(name, "--help")
		if code != 0 || !strings.Contains(out, "--shutdown-grace duration") || !strings.Contains(out, "default: the config's shutdown_grace, else 10s") {
			t.Errorf("%s --help lacks --shutdown-grace:\n%s", name, out)
		}
	}
	// A positive flag is accepted (and the run goes through).
	w.mustRun("sync", "--config", w.cfg, "--shutdown-grace", "2s")
}
