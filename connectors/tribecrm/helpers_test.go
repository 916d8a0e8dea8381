package tribecrm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
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
	em  *Emulator
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

func newEnv(t testing.TB, eo EmulatorOptions, tweak func(*Options)) *env {
	t.Helper()
	e := &env{em: NewEmulator(eo)}
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

// errMessage returns the OData error message of a reply, failing when the
// body is not an OData error.
func errMessage(t testing.TB, body map[string]any) string {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an OData error body: %v", body)
	}
	if _, ok := e["code"]; !ok {
		t.Fatalf("OData error without code: %v", body)
	}
	m, _ := e["message"].(string)
	if m == "" {
		t.Fatalf("OData error without message: %v", body)
	}
	return m
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
