package conntest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
)

// Run runs the contract suite against the connector h describes. Each case
// is a subtest of t; every case starts its own emulator, so the cases (and
// the Paging knobs) run in parallel with each other: Harness.Start and
// NewClient must be safe to call from several goroutines.
func Run(t *testing.T, h Harness) {
	h.validate(t)
	s := &suite{h: &h}
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"Paging", s.paging},
		{"Resume", s.resume},
		{"Incremental", s.incremental},
		{"CreateGetFind", s.createGetFind},
		{"UpdateOnlyChanged", s.updateOnlyChanged},
		{"ConvertStage", s.convertStage},
		{"Delete", s.delete},
		{"AuthRefresh", s.authRefresh},
		{"RateLimitHonoured", s.rateLimitHonoured},
		{"Ties5000", s.ties5000},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t)
		})
	}
}

type suite struct {
	h   *Harness
	seq atomic.Int64 // for unique records
}

// known tracks the known-issue checks of one case.
type known struct {
	s     *suite
	fired map[string]bool
	used  map[string]bool
}

func (s *suite) known() *known {
	return &known{s: s, fired: map[string]bool{}, used: map[string]bool{}}
}

// check records the outcome of contract check id: ok, or a failure
// described by format and args (an error, or a log line when the harness
// lists id as known).
func (k *known) check(t testing.TB, id string, ok bool, format string, args ...any) {
	t.Helper()
	_, isKnown := k.s.h.Known[id]
	k.used[id] = true
	if ok {
		return
	}
	if isKnown {
		k.fired[id] = true
		t.Logf("KNOWN ISSUE (%s): "+format, append([]any{id}, args...)...)
		return
	}
	t.Errorf(format, args...)
}

// done ends a case: a known issue that fired skips it with the reason; a
// known issue that was checked and did not fire fails it.
func (k *known) done(t testing.TB) {
	t.Helper()
	var reasons []string
	for _, id := range sortedKeys(k.used) {
		reason, isKnown := k.s.h.Known[id]
		switch {
		case !isKnown:
		case k.fired[id]:
			reasons = append(reasons, id+": "+reason)
		default:
			t.Errorf("known issue %q no longer happens: remove it from the harness", id)
		}
	}
	if len(reasons) > 0 && !t.Failed() {
		t.Skipf("passes except for known issues: %s", strings.Join(reasons, "; "))
	}
}

func (s *suite) next() int { return int(s.seq.Add(1)) }

// env is one emulator behind a loopback server.
type env struct {
	s   *suite
	emu *Emulator
	rec *recorder
	srv *httptest.Server
	api *API
}

func (s *suite) start(t testing.TB, o EmuOptions) *env {
	t.Helper()
	emu := s.h.Start(t, o)
	if emu == nil || emu.Handler == nil || emu.Keys == nil {
		t.Fatal("conntest: Start returned no emulator, handler or Keys")
	}
	rec := &recorder{next: emu.Handler}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return &env{s: s, emu: emu, rec: rec, srv: srv, api: &API{BaseURL: srv.URL, Token: s.h.Token, HTTP: srv.Client()}}
}

// httpClient builds the shared HTTP layer with short waits; tr and observe
// may be nil.
func (s *suite) httpClient(tr http.RoundTripper, observe func(method string, status int, d time.Duration)) *httpx.Client {
	return httpx.New(httpx.Options{
		System:        s.h.System,
		ErrorMessage:  s.h.ErrorMessage,
		RetryMax:      10,
		RetryWaitMin:  time.Millisecond,
		RetryWaitMax:  20 * time.Millisecond,
		RetryAfterMax: 2 * time.Second,
		Timeout:       20 * time.Second,
		Transport:     tr,
		Observe:       observe,
		Logger:        zerolog.Nop(),
	})
}

// client builds a client for the env's server.
func (e *env) client(t testing.TB, cfg ClientConfig) connectors.Connector {
	t.Helper()
	return e.clientAt(t, e.srv.URL, e.s.httpClient(nil, nil), cfg)
}

func (e *env) clientAt(t testing.TB, baseURL string, hc *httpx.Client, cfg ClientConfig) connectors.Connector {
	t.Helper()
	c := e.s.h.NewClient(t, baseURL, hc, cfg)
	if c == nil {
		t.Fatal("conntest: NewClient returned nil")
	}
	if c.System() != e.s.h.System {
		t.Fatalf("client System() = %q, want %q", c.System(), e.s.h.System)
	}
	return c
}

// pullResult is what pulling until Done produced.
type pullResult struct {
	seen   map[string]int               // key -> times returned
	latest map[string]connectors.Record // last copy returned per key
	order  []connectors.Record          // every record in order
	pages  int
	next   connectors.Cursor
	last   connectors.Page
}

// pullUntilDone pulls from cursor until a page says Done, or maxPages pages
// (0: no limit but a safety net) have been read.
func pullUntilDone(t testing.TB, c connectors.Connector, cursor connectors.Cursor, opts connectors.PullOptions, maxPages int) pullResult {
	t.Helper()
	res := pullResult{seen: map[string]int{}, latest: map[string]connectors.Record{}}
	ctx := context.Background()
	for {
		if res.pages > 200000 {
			t.Fatal("pull does not end")
		}
		p, err := c.Pull(ctx, cursor, opts)
		if err != nil {
			t.Fatalf("pull page %d: %v", res.pages+1, err)
		}
		res.pages++
		for _, r := range p.Records {
			checkRecord(t, r)
			k := Key(r.Entity, r.ID)
			res.seen[k]++
			res.latest[k] = r
			res.order = append(res.order, r)
		}
		if len(p.Next) == 0 {
			t.Fatalf("page %d has no Next cursor", res.pages)
		}
		cursor = p.Next
		res.last = p
		res.next = cursor
		if p.Done || (maxPages > 0 && res.pages >= maxPages) {
			return res
		}
	}
}

func checkRecord(t testing.TB, r connectors.Record) {
	t.Helper()
	if r.Entity == "" || r.ID == "" || r.Fields == nil {
		t.Fatalf("record without entity, id or fields: %+v", r)
	}
	if r.UpdatedAt.IsZero() || r.UpdatedAt.Location() != time.UTC || r.CreatedAt.Location() != time.UTC {
		t.Fatalf("record %s/%s: timestamps not set in UTC: created %v updated %v", r.Entity, r.ID, r.CreatedAt, r.UpdatedAt)
	}
}

// missing returns the keys of want not in seen.
func missing(want []string, seen map[string]int) []string {
	var out []string
	for _, k := range want {
		if seen[k] == 0 {
			out = append(out, k)
		}
	}
	return out
}

func intersect(a, b []string) []string {
	in := countKeys(b)
	var out []string
	for _, k := range a {
		if in[k] > 0 {
			out = append(out, k)
		}
	}
	return out
}

// expectKind fails unless err has the given kind.
func expectKind(t testing.TB, what string, err error, kind connectors.Kind) {
	t.Helper()
	if connectors.KindOf(err) != kind {
		t.Fatalf("%s: want a %v error, got %v", what, kind, err)
	}
}

// mangle upper-cases a match value and pads it with spaces: Find compares
// case-insensitively after trimming.
func mangle(ms []connectors.Match) []connectors.Match {
	out := make([]connectors.Match, len(ms))
	for i, m := range ms {
		out[i] = connectors.Match{Field: m.Field, Value: "  " + strings.ToUpper(m.Value) + " "}
	}
	return out
}

func contains(recs []connectors.Record, entity, id string) bool {
	for _, r := range recs {
		if r.Entity == entity && r.ID == id {
			return true
		}
	}
	return false
}

func fieldsJSON(t testing.TB, r connectors.Record) string {
	t.Helper()
	b, err := json.Marshal(r.Fields)
	if err != nil {
		t.Fatalf("record %s/%s: fields do not encode: %v", r.Entity, r.ID, err)
	}
	return string(b)
}

func fmtInjected(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := []string{}
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
