package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/buildinfo"
	"github.com/crmsync/crmsync/engine"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// Issue 11: after a restart, the series alerts read must exist before the
// first run ends, and the last success must survive the restart.
func TestPrimeGivesAlertsTheirSeriesAtStart(t *testing.T) {
	t.Parallel()
	m := New(buildinfo.Info{Version: "v1.2.3", Revision: "abc", Go: "go1.99"})
	last := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m.Prime([]Flow{{Name: "f", Source: "tribecrm", Targets: []string{"overplane"}, LastSuccess: last, DeadLetters: 2, Pending: map[string]int{"overplane": 5}}})
	out := scrape(t, m)
	for _, want := range []string{
		`crmsync_runs_total{flow="f",mode="sync",result="error"} 0`,
		`crmsync_runs_total{flow="f",mode="sync",result="ok"} 0`,
		`crmsync_records_total{flow="f",outcome="failed",system="overplane"} 0`,
		`crmsync_records_total{flow="f",outcome="failed",system="tribecrm"} 0`,
		`crmsync_last_success_timestamp_seconds{flow="f"} 1.7961192e+09`,
		`crmsync_dead_letters{flow="f"} 2`,
		`crmsync_pending_writes{flow="f",target="overplane"} 5`,
		`crmsync_build_info{go="go1.99",revision="abc",version="v1.2.3"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %s", want)
		}
	}
	// A failing first run counts from 0, and the last success stays.
	m.RunDone("f", engine.ModeSync, time.Second, io.EOF)
	out = scrape(t, m)
	if !strings.Contains(out, `crmsync_last_attempt_timestamp_seconds{flow="f"}`) {
		t.Errorf("a failed run left no last attempt: \"stuck, not running\" cannot be told from \"running, failing\"")
	}
	if !strings.Contains(out, `crmsync_runs_total{flow="f",mode="sync",result="error"} 1`) || !strings.Contains(out, `crmsync_last_success_timestamp_seconds{flow="f"} 1.7961192e+09`) {
		t.Errorf("after a failed run:\n%s", out)
	}
}

func TestPrimeWithoutHistoryLeavesLastSuccessAbsent(t *testing.T) {
	t.Parallel()
	m := New(buildinfo.Info{})
	m.Prime([]Flow{{Name: "f", Source: "a", Targets: []string{"b"}}})
	if strings.Contains(scrape(t, m), "crmsync_last_success_timestamp_seconds{") {
		t.Error("a flow that never succeeded has a last success")
	}
}
