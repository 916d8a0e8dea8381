package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/engine"
)

// A capability a target lacks is reported once per run with its count
// (not as a dead letter per record).
func TestSummaryReportsUnsupportedCapabilityOnce(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	writeSummary(&b, []*engine.Result{{Flow: "f", Mode: engine.ModeSync, Systems: map[string]*engine.Counts{"brt": {Updated: 40}},
		Unsupported: []engine.Unsupported{{Target: "brt", Message: "convert: this server has no conversion route (conversion: auto)", Records: 40}}}})
	out := b.String()
	if strings.Count(out, "cannot do this") != 1 || !strings.Contains(out, "brt cannot do this, 40 record(s) stay as they are: convert: this server has no conversion route") {
		t.Errorf("summary:\n%s", out)
	}
}
