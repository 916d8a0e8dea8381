package engine_test

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

// salesView is BlueRockTel as a role-5 (sales) user sees it once one
// prospect leaves the viewable_by_sale scope: lists leave it out and a
// read of it answers 403 (issue 9 item 12).
type salesView struct {
	wrapped
	hidden *atomic.Int64
}

func (s salesView) hides(entity, id string) bool {
	return entity == "prospects" && id == strconv.FormatInt(s.hidden.Load(), 10)
}

func (s salesView) Pull(ctx context.Context, cur connectors.Cursor, o connectors.PullOptions) (connectors.Page, error) {
	pg, err := s.Connector.Pull(ctx, cur, o)
	var kept []connectors.Record
	for _, r := range pg.Records {
		if !s.hides(r.Entity, r.ID) {
			kept = append(kept, r)
		}
	}
	pg.Records = kept
	return pg, err
}

func (s salesView) Get(ctx context.Context, entity, id string) (connectors.Record, error) {
	if s.hides(entity, id) {
		return connectors.Record{}, &connectors.Error{System: "bluerocktel", Op: "GET prospects", Kind: connectors.Forbidden,
			Status: http.StatusForbidden, Message: "This action is unauthorized."}
	}
	return s.Connector.Get(ctx, entity, id)
}

// TestForbiddenReadDoesNotStopTheFlow: the delete reconciliation confirms
// each record a complete scan missed with a read. A 403 on that read means
// the record exists but this user may not see it: the run goes on, the
// record is not deleted downstream, and the others still sync.
func TestForbiddenReadDoesNotStopTheFlow(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var hidden atomic.Int64
	w := newWorld(t, worldOpts{others: 4, now: clk.Now, flows: `
  - name: b2t
    source: bluerocktel
    deletes:
      policy: delete
    targets:
      - system: tribecrm
`, wrap: map[string]func(connectors.Connector) connectors.Connector{
		"bluerocktel": func(c connectors.Connector) connectors.Connector { return salesView{wrapped{c}, &hidden} },
	}})
	if c := counts(w.run("b2t"), "tribecrm"); c.Created != 4 {
		t.Fatalf("created %d in TribeCRM, want 4", c.Created)
	}
	ids := w.srv.BlueRockTel.IDs("prospects")
	hidden.Store(ids[0])
	w.brtEdit("prospects", strconv.FormatInt(ids[1], 10), map[string]any{"phone": "+31 20 111 2222"})
	clk.Add(25 * time.Hour)
	res := w.run("b2t")
	if res.Error != "" {
		t.Fatalf("a 403 on one read stopped the run: %s", res.Error)
	}
	if c := counts(res, "tribecrm"); c.Deleted != 0 || c.Updated != 1 {
		t.Errorf("counts %+v: want the edit written and nothing deleted", c)
	}
	if w.srv.TribeCRM.Len() != 4 {
		t.Errorf("TribeCRM holds %d relationships, want 4 (a record this user may not read is not gone)", w.srv.TribeCRM.Len())
	}
}
