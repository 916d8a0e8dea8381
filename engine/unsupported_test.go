package engine_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/crmsync/crmsync/connectors"
)

// noConversion is a BlueRockTel whose server has no conversion route, as
// the client reports it (issue 9 item 10): every ConvertStage is
// Unsupported.
type noConversion struct {
	wrapped
	calls *atomic.Int32
}

func (c noConversion) ConvertStage(context.Context, string, string, string) (connectors.Record, error) {
	c.calls.Add(1)
	return connectors.Record{}, &connectors.Error{System: "bluerocktel", Op: "convert prospects to customers", Kind: connectors.Unsupported,
		Message: "conversion not supported by this server"}
}

// TestUnsupportedConversionIsReportedOnce: records whose stage calls for a
// conversion the target cannot do stay where they are; the run reports the
// capability once with how many records it concerns, and owes nothing (no
// dead letter per record).
func TestUnsupportedConversionIsReportedOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	w := newWorld(t, worldOpts{flows: oneWay, concurrency: 1, wrap: map[string]func(connectors.Connector) connectors.Connector{
		"bluerocktel": func(c connectors.Connector) connectors.Connector { return noConversion{wrapped{c}, &calls} },
	}})
	a := w.tribeCreateOrg("Lead", map[string]any{"Name": "Stage A BV", "EmailAddress": "a@stage.example"})
	b := w.tribeCreateOrg("Lead", map[string]any{"Name": "Stage B BV", "EmailAddress": "b@stage.example"})
	w.run("t2b")
	w.tribeConvert(a.ID, "Customer")
	w.tribeConvert(b.ID, "Customer")
	res := w.run("t2b")
	if res.Error != "" {
		t.Fatalf("run failed: %s", res.Error)
	}
	if len(res.Undelivered) != 0 {
		t.Errorf("undelivered after an unsupported conversion: %+v", res.Undelivered)
	}
	if len(res.Unsupported) != 1 || res.Unsupported[0].Records != 2 || res.Unsupported[0].Target != "bluerocktel" ||
		!strings.Contains(res.Unsupported[0].Message, "not supported") {
		t.Fatalf("unsupported report: %+v, want one entry for 2 records", res.Unsupported)
	}
	if w.srv.BlueRockTel.Count("prospects") != 2 || w.srv.BlueRockTel.Count("customers") != 0 {
		t.Errorf("BlueRockTel holds %d prospects, %d customers; want 2 and 0", w.srv.BlueRockTel.Count("prospects"), w.srv.BlueRockTel.Count("customers"))
	}
	for _, r := range []tribeRel{a, b} {
		if key := w.linkedBRT(r.ID); !strings.HasPrefix(key, "prospects:") {
			t.Errorf("link of %s is %q, want the prospect kept", r.ID, key)
		}
	}
	if c := counts(res, "bluerocktel"); c.Failed != 0 || c.Converted != 0 {
		t.Errorf("counts %+v: want no failure and no conversion", c)
	}
}
