package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The emulator's tests speak HTTP to it, as any client would, and never use
// the client package.

// env is an emulator behind a real loopback HTTP server.
type env struct {
	em  *Emulator
	srv *httptest.Server
}

func newEnv(t testing.TB, o Options) *env {
	t.Helper()
	e := &env{em: New(o)}
	e.srv = httptest.NewServer(e.em)
	t.Cleanup(e.srv.Close)
	return e
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

func postForm(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("token reply is not JSON: %s", data)
	}
	return resp.StatusCode, out
}

// fakeClock is a settable server clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

var (
	orgLead     = funnelSet(flavourOrganization, "Lead")
	orgSuspect  = funnelSet(flavourOrganization, "Suspect")
	orgCustomer = funnelSet(flavourOrganization, "Customer")
	personLead  = funnelSet(flavourPerson, "Lead")
)
