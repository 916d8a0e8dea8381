package overplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
)

// env is one emulator behind a loopback server plus a client for it.
type env struct {
	emu *emulator.Emulator
	srv *httptest.Server
	c   *Client
	h   *httpx.Client
}

func newHTTP(retries int) *httpx.Client {
	return httpx.New(httpx.Options{
		System:       System,
		RetryMax:     retries,
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
		ErrorMessage: ErrorMessage,
		Logger:       zerolog.Nop(),
	})
}

func newEnv(t *testing.T, eo emulator.Options, tune func(*Options)) *env {
	t.Helper()
	emu := emulator.New(eo)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	h := newHTTP(4)
	o := Options{BaseURL: srv.URL + "/", Token: "dev-token", HTTP: h, Logger: zerolog.Nop()}
	if eo.Token != "" {
		o.Token = eo.Token
	}
	if tune != nil {
		tune(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{emu: emu, srv: srv, c: c, h: h}
}

// raw sends a request straight to the emulator (as curl would).
func (e *env) raw(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
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

// scan pulls from cur until Done and returns how often each id was seen.
func scan(t *testing.T, c *Client, cur connectors.Cursor, pageSize int) (map[string]int, connectors.Cursor, []connectors.Page) {
	t.Helper()
	seen := map[string]int{}
	var pages []connectors.Page
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("scan does not end")
		}
		p, err := c.Pull(context.Background(), cur, connectors.PullOptions{PageSize: pageSize})
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		for _, r := range p.Records {
			seen[r.ID]++
		}
		pages = append(pages, p)
		cur = p.Next
		if p.Done {
			return seen, cur, pages
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
