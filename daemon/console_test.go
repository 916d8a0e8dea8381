package daemon

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/state"
)

// Issue 11: the admin endpoint has a page a person reads (GET /): each
// flow's state, last run, writes, and what it owes which target; an API's
// error text is shown escaped, never as markup.
func TestConsoleShowsFlowsAndEscapesErrors(t *testing.T) {
	t.Parallel()
	d, _ := newHangingDaemon(t, Options{Version: "v1.2.3, commit abc"})
	var b state.Batch
	fin := time.Now().UTC().Add(-3 * time.Minute)
	b.PutRun(state.Run{Flow: "f", Mode: "sync", Started: fin.Add(-2 * time.Second), Finished: fin,
		Counts: map[string]map[string]int{"dst": {"created": 4, "failed": 1}}, Error: `dst unavailable: <script>alert(1)</script>`})
	for _, id := range []string{"a", "b"} {
		b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "dst", CanonicalID: id, Pending: true, Op: "create", Error: "503", Attempts: 1})
	}
	b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "dst", CanonicalID: "c", Op: "create", Error: "422", Attempts: 1})
	if err := d.o.Store.Commit(&b); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.adminHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{"<b>f</b>", "src → dst", "@every 1h", "failing", "3 min ago", "dst: 4, 1 failed", "dst: 2", `<span class="owed">1</span>`,
		"&lt;script&gt;alert(1)&lt;/script&gt;", "crmsync v1.2.3, commit abc", "no successful run among the last 1"} {
		if !strings.Contains(page, want) {
			t.Errorf("console lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("an error text reached the page as markup")
	}
	resp, err = http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ Version string }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Version != "v1.2.3, commit abc" {
		t.Errorf("/status version = %q (%v); want the build's", st.Version, err)
	}
	resp.Body.Close()
	// The chart of recent runs: one bar per run, a failed run marked, the
	// numbers in each bar's tooltip.
	if n := strings.Count(page, `<rect class="run`); n != 1 || !strings.Contains(page, `<rect class="run failed"`) ||
		!strings.Contains(page, "<title>"+fin.Format("2006-01-02 15:04")) || !strings.Contains(page, "5 records, took 2s") {
		t.Errorf("the run chart lacks the run (%d bars):\n%s", n, page)
	}
	// The dead letters, each with its target, operation and error.
	for _, want := range []string{"<h2>Dead letters</h2>", "<td>dst</td><td>create</td>", "pending (target down)", "422"} {
		if !strings.Contains(page, want) {
			t.Errorf("the dead-letter list lacks %q", want)
		}
	}
	if resp, err := http.Get(srv.URL + "/nope"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %v %v; want 404 (the console is at / only)", resp.StatusCode, err)
	}
}
