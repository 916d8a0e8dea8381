package engine_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/engine"
)

// forbidding refuses its first create with a 403, classified as httpx
// classifies one: a credential that may not act on that record (issue 9
// item 12: a BlueRockTel sales user and a prospect not visible to sales).
type forbidding struct {
	wrapped
	creates *atomic.Int32
}

func (f forbidding) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	if f.creates.Add(1) == 1 {
		return connectors.Record{}, &connectors.Error{System: "bluerocktel", Op: "POST /api/v1/prospects", Kind: httpx.Classify(http.StatusForbidden, false),
			Status: http.StatusForbidden, Message: "This action is unauthorized."}
	}
	return f.Connector.Create(ctx, rec)
}

// TestForbiddenRecordDoesNotStopTheFlow: a 403 on one record is that
// record refused (a dead letter with the API's message), not the target
// down: every other record is written in the same run, and the run says
// what it owes.
func TestForbiddenRecordDoesNotStopTheFlow(t *testing.T) {
	t.Parallel()
	var creates atomic.Int32
	w := newWorld(t, worldOpts{tribe: 9, pageSize: 3, concurrency: 1, flows: oneWay, wrap: map[string]func(connectors.Connector) connectors.Connector{
		"bluerocktel": func(c connectors.Connector) connectors.Connector { return forbidding{wrapped{c}, &creates} },
	}})
	all := w.tribeAll()
	res, err := w.eng.Run(w.ctx, w.flow("t2b"), engine.RunOptions{Mode: engine.ModeSync})
	if err != nil {
		t.Fatalf("a 403 on one record stopped the run: %v", err)
	}
	if got := w.brtTotal(); got != len(all)-1 {
		t.Errorf("BlueRockTel holds %d records, want every one but the refused: %d", got, len(all)-1)
	}
	dls, _ := w.st.DeadLetters("t2b")
	if len(dls) != 1 || !strings.Contains(dls[0].Error, "unauthorized") {
		t.Fatalf("dead letters %+v, want the refused record with the API's message", dls)
	}
	if len(res.Undelivered) != 1 || res.Undelivered[0].Status != "dead" {
		t.Errorf("the run owes %+v; want the one refused record, dead", res.Undelivered)
	}
}
