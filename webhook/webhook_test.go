package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
)

const hookSecret = "generic-hook-secret-0123456789"
const vendorSecret = "vendor-secret-abcdefghijklmnop"

// fakeVerify stands for a vendor type's Verify: X-Sig is hex HMAC-SHA-256
// of the body, the body {"webhookId": ..., "id": ...}.
func fakeVerify(h http.Header, body, secret []byte) (connectors.WebhookEvent, error) {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal([]byte(h.Get("X-Sig")), []byte(hex.EncodeToString(m.Sum(nil)))) {
		return connectors.WebhookEvent{}, connectors.ErrBadSignature
	}
	var ev struct{ WebhookID, ID string }
	if err := json.Unmarshal(body, &ev); err != nil {
		return connectors.WebhookEvent{}, err
	}
	return connectors.WebhookEvent{WebhookID: ev.WebhookID, ID: ev.ID, Op: "update"}, nil
}

func vendorSig(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

type rig struct {
	r        *Receiver
	srv      *httptest.Server
	mu       sync.Mutex
	outcomes map[string]int
	log      bytes.Buffer
}

func newRig(t *testing.T, mod func(*Options)) *rig {
	t.Helper()
	g := &rig{outcomes: map[string]int{}}
	o := Options{
		Sources:    []Source{{Name: "tribe", Verify: fakeVerify, Secret: []byte(vendorSecret), Flows: []string{"tribe-to-all", "tribe-to-brt"}}},
		HookSecret: []byte(hookSecret), HookFlows: []string{"op-to-tribe"},
		Debounce: 100 * time.Millisecond,
		Logger:   zerolog.New(&syncWriter{w: &g.log, mu: &g.mu}),
		Observe: func(src, outcome string) {
			g.mu.Lock()
			g.outcomes[outcome]++
			g.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&o)
	}
	g.r = New(o)
	g.srv = httptest.NewServer(g.r.Handler())
	t.Cleanup(g.srv.Close)
	return g
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (g *rig) post(t *testing.T, path string, body []byte, h map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+path, bytes.NewReader(body))
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (g *rig) hook(t *testing.T, flow string, body []byte, at time.Time, secret string) (int, string) {
	ts := strconv.FormatInt(at.Unix(), 10)
	code, msg, _ := g.post(t, "/hooks/"+flow, body, map[string]string{HeaderTimestamp: ts, HeaderSignature: SignHook([]byte(secret), ts, body)})
	return code, msg
}

func (g *rig) vendor(t *testing.T, body []byte, secret string) (int, string) {
	code, msg, _ := g.post(t, "/webhooks/tribe", body, map[string]string{"X-Sig": vendorSig(body, secret)})
	return code, msg
}

func (g *rig) secretsLeaked() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.log.String()
	return strings.Contains(l, hookSecret) || strings.Contains(l, vendorSecret)
}

// triggers runs the dispatcher and collects the flows it triggers.
func (g *rig) triggers(t *testing.T) (func() []string, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.r.Run(ctx, func(f string) { mu.Lock(); got = append(got, f); mu.Unlock() })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }, func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGenericHookSignatureAndReplay(t *testing.T) {
	t.Parallel()
	g := newRig(t, nil)
	got, _ := g.triggers(t)
	body := []byte(`{"changed":"prospect 42"}`)
	now := time.Now()
	cases := []struct {
		name string
		code int
		send func() (int, string)
	}{
		{"no headers", 401, func() (int, string) { c, m, _ := g.post(t, "/hooks/op-to-tribe", body, nil); return c, m }},
		{"wrong secret", 401, func() (int, string) { return g.hook(t, "op-to-tribe", body, now, "another-secret-entirely") }},
		{"tampered body", 401, func() (int, string) {
			ts := strconv.FormatInt(now.Unix(), 10)
			c, m, _ := g.post(t, "/hooks/op-to-tribe", []byte(`{"changed":"prospect 43"}`), map[string]string{HeaderTimestamp: ts, HeaderSignature: SignHook([]byte(hookSecret), ts, body)})
			return c, m
		}},
		{"replayed an hour later", 401, func() (int, string) { return g.hook(t, "op-to-tribe", body, now.Add(-time.Hour), hookSecret) }},
		{"unknown flow", 404, func() (int, string) { return g.hook(t, "nope", body, now, hookSecret) }},
	}
	for _, tc := range cases {
		if code, msg := tc.send(); code != tc.code {
			t.Errorf("%s: %d %q, want %d", tc.name, code, msg, tc.code)
		}
	}
	frappe := func(sig string) (int, string) {
		c, m, _ := g.post(t, "/hooks/op-to-tribe", body, map[string]string{HeaderFrappeSignature: sig})
		return c, m
	}
	if code, msg := frappe(SignFrappe([]byte("another-secret-entirely"), body)); code != 401 {
		t.Errorf("Frappe signature with the wrong secret: %d %q", code, msg)
	}
	time.Sleep(300 * time.Millisecond) // three debounce windows: nothing may run
	if n := len(got()); n != 0 {
		t.Fatalf("refused requests triggered %d runs", n)
	}
	if code, msg := g.hook(t, "op-to-tribe", body, now, hookSecret); code != http.StatusAccepted {
		t.Fatalf("a good request: %d %q", code, msg)
	}
	waitFor(t, "the triggered run", func() bool { return len(got()) == 1 })
	// An ERPNext (Overplane) webhook with Enable Security signs the body
	// alone, as Frappe does.
	if code, msg := frappe(SignFrappe([]byte(hookSecret), body)); code != http.StatusAccepted {
		t.Fatalf("a Frappe-signed request: %d %q", code, msg)
	}
	waitFor(t, "the Frappe-triggered run", func() bool { return len(got()) == 2 })
	if got()[0] != "op-to-tribe" || got()[1] != "op-to-tribe" {
		t.Errorf("triggered %v", got())
	}
	if g.secretsLeaked() {
		t.Error("a secret is in the log")
	}
}

func TestVendorWebhookChecks(t *testing.T) {
	t.Parallel()
	var known atomic.Value
	known.Store([]connectors.Webhook{{ID: "wh-1"}})
	reads := atomic.Int32{}
	clock := atomic.Int64{}
	clock.Store(time.Now().UnixNano())
	g := newRig(t, func(o *Options) {
		o.Sources[0].Known = func(context.Context) ([]connectors.Webhook, error) {
			reads.Add(1)
			return known.Load().([]connectors.Webhook), nil
		}
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		o.MaxBody = 1024
	})
	got, _ := g.triggers(t)
	ev := []byte(`{"webhookId":"wh-1","id":"7"}`)
	if code, msg := g.vendor(t, ev, "wrong-secret"); code != 401 || strings.Contains(msg, vendorSecret) {
		t.Errorf("bad signature: %d %q", code, msg)
	}
	if code, _, _ := g.post(t, "/webhooks/tribe", ev, nil); code != 401 {
		t.Errorf("unsigned: %d", code)
	}
	if code, _, _ := g.post(t, "/webhooks/hubspot", ev, map[string]string{"X-Sig": vendorSig(ev, vendorSecret)}); code != 404 {
		t.Errorf("unknown source: %d", code)
	}
	big := []byte(`{"webhookId":"wh-1","id":"` + strings.Repeat("x", 2000) + `"}`)
	if code, _ := g.vendor(t, big, vendorSecret); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized: %d", code)
	}
	if code, _ := g.vendor(t, []byte(`not json`), vendorSecret); code != 400 {
		t.Errorf("signed garbage: %d", code)
	}
	stranger := []byte(`{"webhookId":"wh-9","id":"7"}`)
	if code, _ := g.vendor(t, stranger, vendorSecret); code != 404 {
		t.Errorf("unknown webhook: %d", code)
	}
	if code, msg := g.vendor(t, ev, vendorSecret); code != http.StatusAccepted {
		t.Fatalf("good delivery: %d %q", code, msg)
	}
	waitFor(t, "both flows of the source", func() bool { return len(got()) == 2 })
	// A webhook registered after the list was read is found once the
	// refresh interval has passed, not by a read per request.
	known.Store([]connectors.Webhook{{ID: "wh-1"}, {ID: "wh-9"}})
	before := reads.Load()
	if code, _ := g.vendor(t, stranger, vendorSecret); code != 404 || reads.Load() != before {
		t.Errorf("within the refresh interval: %d, %d reads (want 404 and no read)", code, reads.Load()-before)
	}
	clock.Add(int64(knownRefresh))
	if code, _ := g.vendor(t, stranger, vendorSecret); code != http.StatusAccepted {
		t.Errorf("after the refresh interval: %d", code)
	}
	if g.secretsLeaked() {
		t.Error("a secret is in the log")
	}
}

// Issue 12: a burst of 1,000 events gives one or a few runs, not 1,000,
// and none is lost: the last event is followed by a run.
func TestBurstIsDebounced(t *testing.T) {
	t.Parallel()
	g := newRig(t, func(o *Options) {
		o.Burst = 2000
		o.RateLimit = 10000
		o.Queue = 2000
		o.Debounce = 200 * time.Millisecond
	})
	got, _ := g.triggers(t)
	body := []byte(`{"webhookId":"wh-1","id":"1"}`)
	var wg sync.WaitGroup
	codes := make(chan int, 1000)
	began := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 125; i++ {
				c, _ := g.vendor(t, body, vendorSecret)
				codes <- c
			}
		}()
	}
	wg.Wait()
	sending := time.Since(began)
	close(codes)
	for c := range codes {
		if c != http.StatusAccepted {
			t.Fatalf("an event of the burst got %d", c)
		}
	}
	waitFor(t, "the runs", func() bool { return len(got()) >= 2 })
	time.Sleep(600 * time.Millisecond) // three windows: any further run shows
	n := map[string]int{}
	for _, f := range got() {
		n[f]++
	}
	// One run per debounce window the burst spanned (a slow, loaded machine
	// spreads it over more windows), plus the window it ends in.
	most := int(sending/(200*time.Millisecond)) + 2
	for _, f := range []string{"tribe-to-all", "tribe-to-brt"} {
		if n[f] < 1 || n[f] > most {
			t.Errorf("flow %s ran %d times for 1,000 events sent in %s; want 1..%d (one per 200ms window)", f, n[f], sending, most)
		}
	}
}

func TestFloodIsBounded(t *testing.T) {
	t.Parallel()
	g := newRig(t, func(o *Options) { o.RateLimit = 1; o.Burst = 3; o.Queue = 2 })
	body := []byte(`{"webhookId":"wh-1","id":"1"}`)
	// No dispatcher: the queue fills after 2, the bucket empties after 3.
	var codes []int
	for i := 0; i < 5; i++ {
		c, _ := g.vendor(t, body, vendorSecret)
		codes = append(codes, c)
	}
	want := []int{202, 202, 503, 429, 429}
	for i := range want {
		if codes[i] != want[i] {
			t.Fatalf("codes %v, want %v (queue of 2, burst of 3)", codes, want)
		}
	}
	_, _, h := g.post(t, "/webhooks/tribe", body, map[string]string{"X-Sig": vendorSig(body, vendorSecret)})
	if h.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestShutdownWithEventsQueuedSaysSo(t *testing.T) {
	t.Parallel()
	g := newRig(t, func(o *Options) { o.Debounce = time.Hour })
	_, stop := g.triggers(t)
	for i := 0; i < 3; i++ {
		if c, _ := g.vendor(t, []byte(`{"webhookId":"wh-1","id":"1"}`), vendorSecret); c != 202 {
			t.Fatal(c)
		}
	}
	waitFor(t, "the queue to drain into the window", func() bool { return len(g.r.queue) == 0 })
	stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !strings.Contains(g.log.String(), "next scheduled run") {
		t.Errorf("the stop does not say what becomes of the waiting events: %s", g.log.String())
	}
}
