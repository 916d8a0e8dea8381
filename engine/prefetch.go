package engine

import (
	"context"

	"github.com/crmsync/crmsync/connectors"
)

// prefetch pulls the source's next page while the engine writes the page
// in hand (issue 10: most of a run's time had no request in flight). The
// page protocol is unchanged: a prefetched page is handled only after the
// page before it is committed, from the cursor that commit stores, and one
// that is not used (the run fails or stops) is dropped, as if it had never
// been read. At most one page is read ahead.
type prefetch struct {
	cursor connectors.Cursor
	done   chan pullResult
	cancel context.CancelFunc
}

type pullResult struct {
	page connectors.Page
	err  error
}

// start pulls the page at cursor in the background.
func (p *prefetch) start(ctx context.Context, src connectors.Connector, cursor connectors.Cursor, opts connectors.PullOptions) {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan pullResult, 1)
	p.cursor, p.done, p.cancel = cursor, done, cancel
	go func() {
		page, err := src.Pull(pctx, cursor, opts)
		done <- pullResult{page, err}
	}()
}

// take returns the page at cursor: the one read ahead when it is that
// page, else a pull made now.
func (p *prefetch) take(ctx context.Context, src connectors.Connector, cursor connectors.Cursor, opts connectors.PullOptions) (connectors.Page, error) {
	if p.done != nil && sameCursor(p.cursor, cursor) {
		res := <-p.done
		p.cancel()
		p.done = nil
		return res.page, res.err
	}
	p.drop()
	return src.Pull(ctx, cursor, opts)
}

// drop cancels a page read ahead and waits for its pull to end.
func (p *prefetch) drop() {
	if p.done == nil {
		return
	}
	p.cancel()
	<-p.done
	p.done = nil
}

func sameCursor(a, b connectors.Cursor) bool { return string(a) == string(b) }
