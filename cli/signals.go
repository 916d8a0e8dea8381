package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// ExitInterrupted is the exit status after a second SIGINT/SIGTERM cut a
// stop short (128 + SIGINT, as shells report an interrupted command).
const ExitInterrupted = 130

// Causes of the cancellation of the context handleSignals returns
// (context.Cause tells them apart).
var (
	errGraceExpired     = errors.New("stopping: the shutdown grace period ended before the page in hand was done")
	errInterruptedTwice = errors.New("stopping: interrupted twice")
)

// handleSignals turns SIGINT and SIGTERM into a bounded two-step stop for
// sync, backfill and run:
//
//   - the first signal closes stop (the engine finishes and commits the page
//     in hand, then returns) and starts a timer of grace;
//   - when grace ends, ctx is cancelled: requests in flight are cut;
//   - a second signal cancels ctx at once.
//
// ctx is the context to give the engine; it is also cancelled with parent.
// finish stops listening for signals (later ones get their default
// behaviour again) and releases ctx; it returns an *ExitError with
// ExitInterrupted when a second signal came, else nil. Call it once the
// work is done, and defer it too: calls after the first return the same.
func handleSignals(parent context.Context, grace time.Duration, log zerolog.Logger, stderr io.Writer) (ctx context.Context, stop <-chan struct{}, finish func() error) {
	sigs := make(chan os.Signal, 2) // buffered: signal.Notify does not block
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, stop, watchFinish := watchSignals(parent, sigs, grace, log, stderr)
	return ctx, stop, func() error {
		signal.Stop(sigs)
		return watchFinish()
	}
}

// watchSignals is handleSignals reading signals from sigs (tests feed it
// fake ones).
func watchSignals(parent context.Context, sigs <-chan os.Signal, grace time.Duration, log zerolog.Logger, stderr io.Writer) (context.Context, <-chan struct{}, func() error) {
	ctx, cancel := context.WithCancelCause(parent)
	stop := make(chan struct{})
	quit := make(chan struct{}) // closed by finish
	exited := make(chan struct{})
	twice := false // written by the watcher, read by finish after it exited
	go func() {
		defer close(exited)
		var sig os.Signal
		select {
		case sig = <-sigs:
		case <-quit:
			return
		case <-ctx.Done():
			return
		}
		log.Info().Str("signal", sig.String()).
			Msgf("stopping: finishing the page in hand (up to %s); send the signal again to stop at once", grace)
		close(stop)
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-timer.C:
			log.Warn().
				Msgf("stopping: the page in hand did not finish within %s: cancelling its requests (uncommitted work will be resumed by the next run)", grace)
			cancel(errGraceExpired)
		case <-sigs:
			twice = true
		case <-quit:
			return
		case <-ctx.Done():
			// parent cancelled: nothing left to bound
		}
		if !twice {
			// ctx is done; a further signal still means "at once".
			select {
			case <-sigs:
				twice = true
			case <-quit:
				return
			}
		}
		fmt.Fprintln(stderr, "crmsync: interrupted twice: stopping at once, cancelling the requests in flight; uncommitted work will be resumed by the next run")
		cancel(errInterruptedTwice)
	}()
	var once sync.Once
	var err error
	return ctx, stop, func() error {
		once.Do(func() {
			close(quit)
			<-exited
			cancel(context.Canceled)
			if twice {
				err = &ExitError{Code: ExitInterrupted}
			}
		})
		return err
	}
}
