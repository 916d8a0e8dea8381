package conntest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
)

// pagingCase is one fault knob under which a full pull must lose nothing.
type pagingCase struct {
	name    string
	records int
	page    int
	emu     EmuOptions // Records is set from records
	toxic   bool       // put Toxiproxy (latency + reset_peer) between client and emulator
	edits   int        // EditDuringPaging(edits)
	fault   string     // injected fault kind that must have happened
	// rateLimit: answer 429 with Retry-After: 1 once more than a third of
	// the requests a fault-free pull makes arrive within a second, so that
	// the pull spans about three rate-limit windows whatever the connector.
	rateLimit bool
}

var pagingCases = []pagingCase{
	{name: "none", records: 400, page: 50},
	{name: "latency", records: 150, page: 30, emu: EmuOptions{Faults: emukit.Faults{Latency: 3 * time.Millisecond}}},
	{name: "5xx20pct", records: 300, page: 40, emu: EmuOptions{Faults: emukit.Faults{ErrorRate: 0.2, Seed: 11}}, fault: "5xx"},
	{name: "429RetryAfter", records: 60, page: 10, rateLimit: true, fault: "429"},
	{name: "resets", records: 300, page: 40, emu: EmuOptions{Faults: emukit.Faults{ResetRate: 0.2, Seed: 13}}, fault: "reset"},
	{name: "toxiproxy", records: 200, page: 8, toxic: true},
	{name: "pageCap", records: 150, page: 50, emu: EmuOptions{PageCap: 7}},
	{name: "oneTimestamp", records: 600, page: 25, emu: EmuOptions{Ties: true}},
	{name: "editsWhilePaging", records: 400, page: 25, edits: 2},
}

func (s *suite) paging(t *testing.T) {
	for _, pc := range pagingCases {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			s.pagingOne(t, pc)
		})
	}
}

func (s *suite) pagingOne(t *testing.T, pc pagingCase) {
	o := pc.emu
	o.Records = pc.records
	e := s.start(t, o)
	before := e.emu.Keys()
	if len(before) < pc.records {
		t.Fatalf("emulator holds %d records, asked for %d", len(before), pc.records)
	}

	var transportErrs atomic.Int64
	observe := func(_ string, status int, _ time.Duration) {
		if status == 0 {
			transportErrs.Add(1)
		}
	}
	base := e.srv.URL
	var tr http.RoundTripper
	if pc.toxic {
		base = e.toxiproxy(t)
		// A fresh connection per request, so the per-connection toxics
		// apply per request.
		tr = &http.Transport{DisableKeepAlives: true, Proxy: nil}
	}
	if pc.rateLimit {
		mark := e.rec.mark()
		pullUntilDone(t, e.client(t, ClientConfig{}), nil, connectors.PullOptions{PageSize: pc.page}, 0)
		_, n := e.rec.since(mark)
		limit := max(2, (n-mark)/3)
		e.emu.SetFaults(emukit.Faults{RateLimit: limit, RetryAfter: time.Second})
		t.Logf("%s: a fault-free pull takes %d requests; limit %d per second", pc.name, n-mark, limit)
	}
	c := e.clientAt(t, base, s.httpClient(tr, observe), ClientConfig{})

	if pc.edits > 0 {
		if e.emu.EditDuringPaging == nil {
			t.Skip("the emulator has no knob to edit records while a client pages")
		}
		e.emu.EditDuringPaging(pc.edits)
	}
	res := pullUntilDone(t, c, nil, connectors.PullOptions{PageSize: pc.page}, 0)
	if pc.edits > 0 {
		e.emu.EditDuringPaging(0)
	}
	after := e.emu.Keys()
	dups := 0
	for _, n := range res.seen {
		if n > 1 {
			dups += n - 1
		}
	}
	t.Logf("%s: %d records held, %d distinct pulled, %d repeats, %d pages, Total=%d FullScan=%v, faults: %s, transport errors: %d",
		pc.name, len(after), len(res.seen), dups, res.pages, res.last.Total, res.last.FullScan, fmtInjected(e.emu.Injected()), transportErrs.Load())

	if !res.last.Done {
		t.Fatal("last page not Done")
	}
	if !res.last.FullScan {
		t.Error("a pull from a nil cursor read everything but its last page says FullScan=false")
	}
	if pc.fault != "" && e.emu.Injected()[pc.fault] == 0 {
		t.Errorf("no %s fault was injected: the case proved nothing", pc.fault)
	}
	// (Go's transport silently retries a GET whose reused connection the
	// emulator's reset knob cut; Toxiproxy's resets hit fresh connections.)
	if pc.toxic && transportErrs.Load() == 0 {
		t.Error("no connection was cut: the case proved nothing")
	}

	k := s.known()
	defer k.done(t)
	if pc.edits == 0 {
		if m := missing(before, res.seen); len(m) > 0 {
			t.Fatalf("%d of %d records never pulled: %s", len(m), len(before), firstN(m, 5))
		}
		want := countKeys(before)
		var extra []string
		for k := range res.seen {
			if want[k] == 0 {
				extra = append(extra, k)
			}
		}
		if len(extra) > 0 {
			t.Errorf("pulled %d records the emulator does not hold: %s", len(extra), firstN(extra, 5))
		}
		if !s.h.Overlap && dups > 0 {
			for _, k := range sortedKeys(res.seen) {
				if res.seen[k] > 1 {
					t.Fatalf("nothing changed, yet %s was returned %d times (%d repeats in all)", k, res.seen[k], dups)
				}
			}
		}
		if pc.name == "none" { // once is enough
			k.check(t, CheckTotal, res.last.Total == -1 || res.last.Total == len(before),
				"last page Total = %d, want %d (the records the whole pull covers) or -1", res.last.Total, len(before))
		}
		return
	}

	// Edits while paging. A record edited while we page may be returned by
	// this pull or, when the edit moved it behind the reader, by the next
	// pull from the saved cursor; but a pull that says FullScan must return
	// every record that existed all along (it proves which records exist).
	whole := intersect(before, after)
	notInFirst := missing(whole, res.seen)
	k.check(t, CheckFullScanEdits, len(notInFirst) == 0 || !res.last.FullScan,
		"the pull says FullScan, yet %d records that existed for the whole pull (edited while it paged) are not in it: %s",
		len(notInFirst), firstN(notInFirst, 5))
	again := pullUntilDone(t, c, res.next, connectors.PullOptions{PageSize: pc.page}, 0)
	for k, r := range again.latest {
		res.latest[k] = r
		res.seen[k]++
	}
	t.Logf("%s: %d records only returned by the next pull, which returned %d records", pc.name, len(notInFirst), len(again.seen))
	if m := missing(whole, res.seen); len(m) > 0 {
		t.Fatalf("%d records that existed all along were returned by neither this pull nor the next: %s", len(m), firstN(m, 5))
	}
	// The last copy returned of every record is its current state.
	checker := e.client(t, ClientConfig{})
	ctx := context.Background()
	stale := 0
	for _, k := range after {
		got, ok := res.latest[k]
		if !ok {
			t.Errorf("%s (created while paging) returned by neither this pull nor the next", k)
			continue
		}
		entity, id := splitKey(k)
		now, err := checker.Get(ctx, entity, id)
		if err != nil {
			t.Fatalf("get %s: %v", k, err)
		}
		if a, b := fieldsJSON(t, got), fieldsJSON(t, now); a != b {
			stale++
			if stale <= 3 {
				t.Errorf("%s: last pulled copy is not its current state:\npulled %s\nnow    %s", k, a, b)
			}
		}
	}
	if stale > 0 {
		t.Fatalf("%d records: an edit made while paging was lost", stale)
	}
}

// toxiproxy starts an in-process Toxiproxy between the client and the
// emulator's server, with a latency toxic on every connection and a
// reset_peer toxic (RST as soon as the answer starts) on 30% of them,
// and returns the base URL to dial.
func (e *env) toxiproxy(t testing.TB) string {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	upstream := strings.TrimPrefix(e.srv.URL, "http://")
	p := toxiproxy.NewProxy(srv, "conntest-"+e.s.h.System, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	for _, tox := range []string{
		`{"name":"lag","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":2,"jitter":1}}`,
		`{"name":"rst","type":"reset_peer","stream":"downstream","toxicity":0.3,"attributes":{"timeout":0}}`,
	} {
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(tox)); err != nil {
			t.Fatalf("toxiproxy toxic %s: %v", tox, err)
		}
	}
	if _, _, err := net.SplitHostPort(p.Listen); err != nil {
		t.Fatalf("toxiproxy listens on %q: %v", p.Listen, err)
	}
	return "http://" + p.Listen
}
