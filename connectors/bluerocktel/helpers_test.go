package bluerocktel

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
)

type env struct {
	emu *Emulator
	srv *httptest.Server
	cli *Client
}

func newHTTP() *httpx.Client {
	return httpx.New(httpx.Options{
		System:        System,
		ErrorMessage:  ErrorMessage,
		RetryWaitMin:  time.Millisecond,
		RetryWaitMax:  5 * time.Millisecond,
		RetryAfterMax: 3 * time.Second,
		Logger:        zerolog.Nop(),
	})
}

// newEnv starts an emulator on loopback and a client for it.
func newEnv(t *testing.T, eo EmulatorOptions, tweak func(*Options)) *env {
	t.Helper()
	emu := NewEmulator(eo)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	o := Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(), Logger: zerolog.Nop()}
	if eo.Token != "" {
		o.Token = eo.Token
	}
	if tweak != nil {
		tweak(&o)
	}
	cli, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{emu: emu, srv: srv, cli: cli}
}

func (e *env) newClient(t *testing.T, tweak func(*Options)) *Client {
	t.Helper()
	o := Options{BaseURL: e.srv.URL, Token: "dev-token", HTTP: newHTTP(), Logger: zerolog.Nop()}
	if tweak != nil {
		tweak(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// raw sends a request straight to the emulator and decodes a JSON answer.
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

// pullAll pulls until Done, returning every record and the last cursor.
func pullAll(t *testing.T, c *Client, cur connectors.Cursor, size int) ([]connectors.Record, connectors.Cursor, []connectors.Page) {
	t.Helper()
	var recs []connectors.Record
	var pages []connectors.Page
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("pull does not end")
		}
		pg, err := c.Pull(context.Background(), cur, connectors.PullOptions{PageSize: size})
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		recs = append(recs, pg.Records...)
		pages = append(pages, pg)
		cur = pg.Next
		if pg.Done {
			return recs, cur, pages
		}
	}
}

func idSet(recs []connectors.Record, entity string) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		if entity == "" || r.Entity == entity {
			out[r.ID]++
		}
	}
	return out
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
