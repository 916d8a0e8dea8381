package tribecrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// recorded is one request the test server saw.
type recorded struct {
	Method   string
	RawQuery string
	Path     string
	Body     []byte
}

// env is an emulator behind a real loopback HTTP server plus a client.
type env struct {
	em  *emulator.Emulator
	srv *httptest.Server
	c   *Client

	mu   sync.Mutex
	reqs []recorded
}

func (e *env) requests() []recorded {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]recorded(nil), e.reqs...)
}

func (e *env) resetRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reqs = nil
}

func newHTTP(t testing.TB) *httpx.Client {
	t.Helper()
	return httpx.New(httpx.Options{
		System:       System,
		ErrorMessage: ErrorMessage,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 20 * time.Millisecond,
		Logger:       zerolog.Nop(),
	})
}

func newEnv(t testing.TB, eo emulator.Options, tweak func(*Options)) *env {
	t.Helper()
	e := &env{em: emulator.New(eo)}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.mu.Lock()
		e.reqs = append(e.reqs, recorded{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Body: body})
		e.mu.Unlock()
		e.em.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	o := Options{BaseURL: e.srv.URL, Token: "dev-token", HTTP: newHTTP(t), Logger: zerolog.Nop()}
	if tweak != nil {
		tweak(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	return e
}

// pullResult is what a whole pull pass produced.
type pullResult struct {
	all    []connectors.Record
	latest map[string]connectors.Record // last copy seen per id
	next   connectors.Cursor
	pages  int
	last   connectors.Page
}

// pullPass pulls from cursor until Done.
func pullPass(t testing.TB, c *Client, cursor connectors.Cursor, opts connectors.PullOptions) pullResult {
	t.Helper()
	res := pullResult{latest: map[string]connectors.Record{}}
	for {
		p, err := c.Pull(context.Background(), cursor, opts)
		if err != nil {
			t.Fatalf("pull page %d: %v", res.pages, err)
		}
		res.pages++
		for _, r := range p.Records {
			res.all = append(res.all, r)
			res.latest[r.ID] = r
		}
		cursor = p.Next
		res.last = p
		if p.Done {
			res.next = cursor
			return res
		}
		if res.pages > 100000 {
			t.Fatal("pull does not end")
		}
	}
}

// raw sends a request to the emulator over HTTP and decodes the JSON answer.
func (e *env) raw(t testing.TB, method, pathAndQuery string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+pathAndQuery, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer dev-token")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", method, pathAndQuery, data)
		}
	}
	return resp.StatusCode, out
}

func field(rec map[string]any, path string) any {
	var cur any = rec
	for _, seg := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	return cur
}

var orgLead = FunnelSet(FlavourOrganization, "Lead")
var orgSuspect = FunnelSet(FlavourOrganization, "Suspect")
var orgCustomer = FunnelSet(FlavourOrganization, "Customer")
var personLead = FunnelSet(FlavourPerson, "Lead")

func asError(err error, target **connectors.Error) bool { return errors.As(err, target) }

var guidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// withStatus returns a seeded relationship of the given flavour that has a
// Status, with its rendered row.
func withStatus(t testing.TB, em *emulator.Emulator, flavour string) (string, string, map[string]any) {
	t.Helper()
	for _, stage := range funnelStages {
		set := FunnelSet(flavour, stage)
		for _, id := range em.IDs(set) {
			if row, _, _ := em.Entity(id); row["Status"] != nil {
				return set, id, row
			}
		}
	}
	t.Fatalf("no seeded %s relationship with a Status", flavour)
	return "", "", nil
}
