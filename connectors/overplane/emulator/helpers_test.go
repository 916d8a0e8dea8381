package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// server is one emulator behind a loopback server.
type server struct {
	emu *Emulator
	srv *httptest.Server
}

func newServer(t *testing.T, o Options) *server {
	t.Helper()
	emu := New(o)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &server{emu: emu, srv: srv}
}

// raw sends a request to the emulator (as curl would) and decodes the reply.
func (s *server) raw(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer dev-token")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	data, _ := io.ReadAll(resp.Body)
	if len(data) > 0 {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", method, path, data)
		}
	}
	return resp.StatusCode, m
}

// noLinks is Options.ValidateLinks for the profile that accepts any text in
// a Link field.
func noLinks() *bool {
	off := false
	return &off
}
