package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

// pullSignal closes started when the source's second Pull begins.
type pullSignal struct {
	wrapped
	mu      sync.Mutex
	pulls   int
	started chan struct{}
}

func (p *pullSignal) Pull(ctx context.Context, cur connectors.Cursor, o connectors.PullOptions) (connectors.Page, error) {
	p.mu.Lock()
	p.pulls++
	if p.pulls == 2 {
		close(p.started)
	}
	p.mu.Unlock()
	return p.Connector.Pull(ctx, cur, o)
}

// holdFirstCreate holds the target's first create until the source's second
// Pull has begun (or 10 s have passed), and notes which happened.
type holdFirstCreate struct {
	wrapped
	once      sync.Once
	started   chan struct{}
	pipelined bool
}

func (h *holdFirstCreate) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	h.once.Do(func() {
		select {
		case <-h.started:
			h.pipelined = true
		case <-time.After(10 * time.Second):
		}
	})
	return h.Connector.Create(ctx, rec)
}

// Issue 10: the engine pulls the next page while it writes the page in
// hand, and the run still delivers every record once.
func TestNextPageIsPulledWhileThisOneIsWritten(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	src := &pullSignal{started: started}
	dst := &holdFirstCreate{started: started}
	w := newWorld(t, worldOpts{tribe: 30, pageSize: 10, flows: oneWay, wrap: map[string]func(connectors.Connector) connectors.Connector{
		"tribecrm":    func(c connectors.Connector) connectors.Connector { src.Connector = c; return src },
		"bluerocktel": func(c connectors.Connector) connectors.Connector { dst.Connector = c; return dst },
	}})
	c := counts(w.run("t2b"), "bluerocktel")
	if !dst.pipelined {
		t.Error("the first page's writes ran with no pull of the next page in flight")
	}
	if c.Created != 30 || c.Failed != 0 || w.brtTotal() != 30 {
		t.Errorf("counts %+v, BlueRockTel holds %d; want 30 created once", c, w.brtTotal())
	}
}
