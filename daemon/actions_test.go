package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state"
)

const testToken = "s3cret-admin-token-0123"

// gatedSource is a source whose every Pull waits until the test lets it
// finish (an empty, complete pull) or the run is cancelled; Get finds
// nothing.
type gatedSource struct {
	connectors.Connector
	name    string
	pulling chan struct{}
	finish  chan struct{}
}

func (g *gatedSource) System() string { return g.name }

func (g *gatedSource) Pull(ctx context.Context, _ connectors.Cursor, _ connectors.PullOptions) (connectors.Page, error) {
	g.pulling <- struct{}{}
	select {
	case <-g.finish:
		return connectors.Page{Done: true, Total: -1}, nil
	case <-ctx.Done():
		return connectors.Page{}, ctx.Err()
	}
}

func (g *gatedSource) Get(context.Context, string, string) (connectors.Record, error) {
	return connectors.Record{}, &connectors.Error{Kind: connectors.NotFound, Err: errors.New("404 not found")}
}

type actionRig struct {
	d      *Daemon
	src    *gatedSource
	store  *state.Store
	srv    *httptest.Server
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newActionRig runs a daemon with one flow whose run at start waits in its
// pull, and serves its admin handler.
func newActionRig(t *testing.T, token string) *actionRig {
	t.Helper()
	return newActionRigWith(t, token, nil)
}

// newActionRigWith is newActionRig with the daemon's options changed by mod.
func newActionRigWith(t *testing.T, token string, mod func(*Options)) *actionRig {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src := &gatedSource{name: "src", pulling: make(chan struct{}, 4), finish: make(chan struct{}, 4)}
	dst := &gatedSource{name: "dst", pulling: make(chan struct{}, 4), finish: make(chan struct{}, 4)}
	logs := &syncBuffer{}
	eng, err := engine.New(engine.Options{Store: st, Logger: zerolog.Nop(), Systems: map[string]*engine.System{
		"src": {Name: "src", Conn: src, PageSize: 10},
		"dst": {Name: "dst", Conn: dst, PageSize: 10},
	}})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Engine: eng, Store: st, Parser: config.ScheduleParser(), Logger: zerolog.New(logs), RunAtStart: true,
		AdminToken: token, ShutdownGrace: 5 * time.Second,
		Jobs: []Job{{Flow: engine.Flow{Name: "f", Source: "src", Targets: []engine.Target{{System: "dst"}}}, Schedule: "@every 1h"}}}
	if mod != nil {
		mod(&o)
	}
	d := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	r := &actionRig{d: d, src: src, store: st, logs: logs, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	r.waitPull(t)
	r.srv = httptest.NewServer(d.adminHandler())
	t.Cleanup(func() {
		r.srv.Close()
		cancel()
		select {
		case r.src.finish <- struct{}{}:
		default:
		}
		<-r.done
	})
	return r
}

func (r *actionRig) waitPull(t *testing.T) {
	t.Helper()
	select {
	case <-r.src.pulling:
	case <-time.After(10 * time.Second):
		t.Fatal("the flow never pulled")
	}
}

// finishRun lets the pull in hand end and waits until its run is stored.
func (r *actionRig) finishRun(t *testing.T, runsBefore int) {
	t.Helper()
	r.src.finish <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, err := r.store.Runs("f", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) > runsBefore && r.d.acquire("f") {
			r.d.release("f")
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never finished (%d runs stored)", len(runs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// post sends an action as a script would (Bearer token) and decodes the answer.
func (r *actionRig) post(t *testing.T, path, token string) (int, actionAnswer) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a actionAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("POST %s: %d, answer not JSON: %v", path, resp.StatusCode, err)
	}
	return resp.StatusCode, a
}

func (r *actionRig) page(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(r.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Issue 11: without admin.token the console's changing actions are off,
// say how to turn them on, and the page shows no buttons.
func TestActionsRefusedWithoutAConfiguredToken(t *testing.T) {
	t.Parallel()
	r := newActionRig(t, "")
	code, a := r.post(t, "/flows/f/run", "anything")
	if code != http.StatusForbidden || !strings.Contains(a.Message, "admin.token") {
		t.Errorf("run now without a configured token: %d %q; want 403 naming admin.token", code, a.Message)
	}
	page := r.page(t, "/")
	if strings.Contains(page, "<button formaction") || !strings.Contains(page, "set <code>admin.token</code>") {
		t.Errorf("the console offers actions, or does not say they are off:\n%s", page)
	}
}

// A wrong or missing token is refused (401), and neither the configured
// token nor the one sent appears in an answer or a log line.
func TestActionsNeedTheToken(t *testing.T) {
	t.Parallel()
	r := newActionRig(t, testToken)
	for _, tok := range []string{"", "wrong-token-wrong-token", testToken[:len(testToken)-1]} {
		code, a := r.post(t, "/flows/f/run", tok)
		if code != http.StatusUnauthorized {
			t.Errorf("token %q: %d %q; want 401", tok, code, a.Message)
		}
	}
	// The console's form: a wrong token comes back to the page with the
	// reason shown, and nothing ran.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(r.srv.URL+"/flows/f/run", url.Values{"token": {"nope-nope-nope-nope"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/?") {
		t.Fatalf("form post: %d to %q; want 303 back to the console", resp.StatusCode, loc)
	}
	if page := r.page(t, loc); !strings.Contains(page, `class="msg bad"`) || !strings.Contains(page, "wrong or missing admin token") {
		t.Errorf("the console does not show why the action was refused:\n%s", page)
	}
	r.finishRun(t, 0)
	if runs, _ := r.store.Runs("f", 100); len(runs) != 1 {
		t.Errorf("%d runs after refused actions; want only the run at start", len(runs))
	}
	if strings.Contains(r.logs.String(), testToken) || strings.Contains(r.logs.String(), "nope-nope") {
		t.Errorf("a token reached the log:\n%s", r.logs.String())
	}
}

// Run now never runs beside the flow's own run: while the run at start is
// in its pull it answers 409; once it has finished, run now starts one run,
// and a second click during that run is refused again.
func TestRunNowNeverRunsBesideTheFlowsRun(t *testing.T) {
	t.Parallel()
	r := newActionRig(t, testToken)
	if code, a := r.post(t, "/flows/f/run", testToken); code != http.StatusConflict || !strings.Contains(a.Message, "is running now") {
		t.Errorf("run now during the run at start: %d %q; want 409", code, a.Message)
	}
	r.finishRun(t, 0)
	if code, a := r.post(t, "/flows/f/run", testToken); code != http.StatusAccepted || a.Flow != "f" {
		t.Fatalf("run now on an idle flow: %d %q; want 202", code, a.Message)
	}
	r.waitPull(t)
	if code, _ := r.post(t, "/flows/f/run", testToken); code != http.StatusConflict {
		t.Errorf("second run now during the first: %d; want 409", code)
	}
	r.finishRun(t, 1)
	if runs, _ := r.store.Runs("f", 100); len(runs) != 2 {
		t.Errorf("%d runs stored; want 2 (at start, run now)", len(runs))
	}
	if code, _ := r.post(t, "/flows/nope/run", testToken); code != http.StatusNotFound {
		t.Errorf("run now of an unknown flow: %d; want 404", code)
	}
}

// Replay and drop from the console: the buttons are on the page; both wait
// for the flow's run to end (409 during it); replay retries the record
// (here its source record is gone, so the dead letter goes), drop forgets it.
func TestReplayAndDropDeadLetters(t *testing.T) {
	t.Parallel()
	r := newActionRig(t, testToken)
	var b state.Batch
	for _, id := range []string{"x", "y"} {
		b.PutDeadLetter(state.DeadLetter{Flow: "f", System: "dst", SourceSystem: "src", SourceEntity: "e", SourceID: id,
			CanonicalID: "c-" + id, Op: "create", Error: "422 name required", Attempts: 3})
	}
	if err := r.store.Commit(&b); err != nil {
		t.Fatal(err)
	}
	dls, err := r.store.DeadLetters("f")
	if err != nil || len(dls) != 2 {
		t.Fatalf("dead letters: %v %v", dls, err)
	}
	keyX, keyY := dls[0].Key, dls[1].Key
	page := r.page(t, "/")
	for _, want := range []string{`name="token"`, `formaction="/flows/f/run"`, `formaction="/deadletters/replay/` + keyX + `"`, `formaction="/deadletters/drop/` + keyY + `"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the console lacks %q", want)
		}
	}
	if code, _ := r.post(t, "/deadletters/drop/"+keyX, testToken); code != http.StatusConflict {
		t.Errorf("drop during the flow's run: %d; want 409", code)
	}
	if code, _ := r.post(t, "/deadletters/replay/"+keyX, testToken); code != http.StatusConflict {
		t.Errorf("replay during the flow's run: %d; want 409", code)
	}
	r.finishRun(t, 0)
	if code, a := r.post(t, "/deadletters/drop/"+keyY, testToken); code != http.StatusOK || !strings.Contains(a.Message, "dropped") {
		t.Errorf("drop: %d %q", code, a.Message)
	}
	if code, a := r.post(t, "/deadletters/replay/"+keyX, testToken); code != http.StatusAccepted {
		t.Fatalf("replay: %d %q", code, a.Message)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, err := r.store.DeadLetters("f")
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters left after replay and drop: %+v", left)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, _ := r.post(t, "/deadletters/replay/"+keyY, testToken); code != http.StatusNotFound {
		t.Errorf("replay of a dropped dead letter: %d; want 404", code)
	}
}
