package webhook

import (
	"context"
	"time"

	"github.com/crmsync/crmsync/logkey"
)

// Run takes events off the queue until ctx is done and calls trigger once
// per flow per debounce window: the first event for a flow opens the
// window, later ones in it are folded in, and trigger(flow) is called when
// it closes. trigger must not block (the daemon starts the run, or notes
// one more after the run in progress). Events still queued or waiting when
// ctx is done are counted and dropped: their changes stay at the source,
// past the flow's cursor, for the next scheduled run.
func (r *Receiver) Run(ctx context.Context, trigger func(flow string)) {
	due := map[string]time.Time{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			r.drop(len(r.queue), len(due))
			return
		case flows := <-r.queue:
			now := time.Now()
			for _, f := range flows {
				if _, waiting := due[f]; !waiting {
					due[f] = now.Add(r.o.Debounce)
				}
			}
		case <-timer.C:
		}
		now := time.Now()
		next := time.Duration(-1)
		for f, at := range due {
			if wait := at.Sub(now); wait > 0 {
				if next < 0 || wait < next {
					next = wait
				}
				continue
			}
			delete(due, f)
			r.o.Logger.Debug().Str(logkey.Flow, f).Msg("webhook events: running the flow")
			trigger(f)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if next >= 0 {
			timer.Reset(next)
		}
	}
}

func (r *Receiver) drop(queued, waiting int) {
	if queued+waiting == 0 {
		return
	}
	if r.o.Observe != nil {
		for i := 0; i < queued; i++ {
			r.o.Observe("", "dropped")
		}
	}
	r.o.Logger.Info().Int("queued", queued).Int("flows_waiting", waiting).
		Msg("stopping with webhook events not yet run: their changes stay at the source for the next scheduled run")
}
