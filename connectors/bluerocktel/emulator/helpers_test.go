package emulator

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// env is one emulator behind a loopback server; the tests speak plain HTTP
// to it.
type env struct {
	emu *Emulator
	srv *httptest.Server
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	emu := New(o)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &env{emu: emu, srv: srv}
}

// raw sends a request to the emulator and decodes a JSON object answer.
// Redirects are not followed.
func (e *env) raw(t *testing.T, method, path string, hdr map[string]string, body string) (int, http.Header, map[string]any, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return resp.StatusCode, resp.Header, m, data
}

var authJSON = map[string]string{"Authorization": "Bearer dev-token", "Accept": "application/json"}

func jsonHdr(extra map[string]string) map[string]string {
	h := map[string]string{"Authorization": "Bearer dev-token", "Accept": "application/json", "Content-Type": "application/json"}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

// sameJSON compares two values by their JSON encoding.
func sameJSON(got, want any) bool {
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(want)
	return string(a) == string(b)
}
