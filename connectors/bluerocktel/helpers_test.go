package bluerocktel

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
	"github.com/crmsync/crmsync/connectors/httpx"
)

// The client's tests run against the emulator over loopback HTTP; the
// emulator's own behaviour is tested in its package.

type env struct {
	emu *brtemu.Emulator
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
func newEnv(t *testing.T, eo brtemu.Options, tweak func(*Options)) *env {
	t.Helper()
	emu := brtemu.New(eo)
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

// emuNaming is the emulator's spelling for the client's (camel or snake).
func emuNaming(n Naming) brtemu.Naming { return brtemu.Naming(n) }

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
