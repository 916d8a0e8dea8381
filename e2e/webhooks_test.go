package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	tribeemu "github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

const tribeHookSecret = "tribe-webhook-secret-0123456789abcdef"

// hookEnv is a test environment whose config turns the webhook receiver on
// at a free loopback port, with TribeCRM's webhook secret, the flow on
// schedule and the receiver's debounce as given; run is `crmsync run`.
type hookEnv struct {
	*testEnv
	addr string
	run  *proc
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func newHookEnv(t testing.TB, seed int, schedule, debounce string) *hookEnv {
	t.Helper()
	addr := freeAddr(t)
	e := newEnv(t, envOptions{Seed: seed, ExampleConcurrency: true, Edit: func(s string) string {
		for _, r := range [][2]string{
			{"${CRMSYNC_WEBHOOKS_LISTEN:-}", addr},
			{"${CRMSYNC_PUBLIC_URL:-}", "http://" + addr},
			{"${TRIBECRM_WEBHOOK_SECRET:-}", tribeHookSecret},
			{"debounce: 1s", "debounce: " + debounce},
			{`schedule: "*/5 * * * *"`, `schedule: "` + schedule + `"`},
			{"admin:\n  listen: 127.0.0.1:9090", "admin:\n  listen: \"\""},
		} {
			if !strings.Contains(s, r[0]) {
				t.Fatalf("config.example.yaml no longer contains %q; update the test", r[0])
			}
			s = strings.Replace(s, r[0], r[1], 1)
		}
		return s
	}})
	return &hookEnv{testEnv: e, addr: addr}
}

// startRun registers the webhooks and starts the real binary's
// `crmsync run --no-start-run`; it returns once the receiver answers.
func (h *hookEnv) startRun(t testing.TB) {
	t.Helper()
	if r := h.cli("webhooks", "register"); r.Code != 0 || !strings.Contains(r.Stdout, "registered") {
		t.Fatalf("webhooks register: %s", r)
	}
	h.run = startProc(t, "run", "--no-start-run", "--config", h.cfgPath)
	waitFor(t, 30*time.Second, "the webhook receiver", func() bool {
		if h.run.exited() {
			t.Fatalf("crmsync run exited:\n%s", h.run.stderr.String())
		}
		resp, err := http.Get("http://" + h.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
}

// stopRun stops the daemon with SIGTERM (the run in hand finishes) and
// expects exit 0.
func (h *hookEnv) stopRun(t testing.TB) {
	t.Helper()
	if err := h.run.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := h.run.wait(30 * time.Second); code != 0 {
		t.Errorf("crmsync run exited %d:\n%s", code, tail(h.run.stderr.String(), 20))
	}
}

func (h *hookEnv) client(t testing.TB) *tribecrm.Client {
	c, err := tribecrm.New(tribecrm.Options{BaseURL: h.urls[tribecrm.System], Token: h.token, HTTP: httpx.New(httpx.Options{System: tribecrm.System, RetryMax: -1})})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deleteTribe deletes a relationship through TribeCRM's API.
func (h *hookEnv) deleteTribe(t testing.TB, set, id string) {
	t.Helper()
	if err := h.client(t).Delete(context.Background(), set, id); err != nil {
		t.Fatalf("delete in TribeCRM: %v", err)
	}
}

// rename renames the n-th organisation (over every stage, so that n below
// the count picks distinct ones) through TribeCRM's API, as its user would.
func (h *hookEnv) rename(t testing.TB, n int, name string) {
	t.Helper()
	var sets, ids []string
	for _, stage := range tribecrm.Stages() {
		set := tribecrm.FunnelSet(tribecrm.FlavourOrganization, stage)
		for _, id := range h.srv.TribeCRM.IDs(set) {
			sets, ids = append(sets, set), append(ids, id)
		}
	}
	i := n % len(ids)
	if _, err := h.client(t).Update(context.Background(), sets[i], ids[i], map[string]any{"Organization": map[string]any{"Name": name}}); err != nil {
		t.Fatalf("rename in TribeCRM: %v", err)
	}
}

// arrived reports whether BlueRockTel holds a record named name.
func (h *hookEnv) arrived(name string) bool {
	for _, r := range h.blueRecords() {
		if r.Name == name {
			return true
		}
	}
	return false
}

// Issue 12: with webhooks, an edit in TribeCRM reaches BlueRockTel without
// waiting for the schedule (here hourly): every one of 15 edits arrives.
// The edit-to-arrival times are logged; BenchmarkWebhookLatency measures
// them over 200 edits.
func TestWebhookEditsArriveBeforeTheSchedule(t *testing.T) {
	t.Parallel()
	h := newHookEnv(t, 60, "@every 1h", "100ms")
	h.sync()
	h.startRun(t)
	lat := h.measure(t, 15)
	t.Logf("15 edits, edit to arrival in BlueRockTel: median %s, max %s", lat[len(lat)/2], lat[len(lat)-1])
	if st := h.srv.TribeCRM.WebhookStats(); st.Delivered == 0 {
		t.Errorf("the emulator delivered no webhook: %+v", st)
	}
}

// measure makes n renames one after the other and returns each one's time
// from the edit to its arrival in BlueRockTel, sorted.
func (h *hookEnv) measure(t testing.TB, n int) []time.Duration {
	var lat []time.Duration
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("Webhook Edit %03d BV", i)
		start := time.Now()
		h.rename(t, i, name)
		waitFor(t, 60*time.Second, name+" in BlueRockTel", func() bool { return h.arrived(name) })
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

// Issue 12: with 30 % of the webhooks lost (and some duplicated and
// reordered), every edit still arrives, at the latest by the next
// scheduled run; a deletion announced for a record that is gone meanwhile
// does not fail the flow.
func TestLostWebhooksArriveByTheNextScheduledRun(t *testing.T) {
	t.Parallel()
	h := newHookEnv(t, 120, "@every 3s", "100ms")
	h.sync()
	h.srv.TribeCRM.SetWebhookOptions(tribeemu.WebhookOptions{Seed: 7, Loss: 0.3, Duplicate: 0.2, Reorder: 4})
	h.startRun(t)
	var names []string
	for i := 0; i < 25; i++ {
		names = append(names, fmt.Sprintf("Lossy Edit %03d BV", i))
		h.rename(t, i, names[i])
	}
	set := tribecrm.FunnelSet(tribecrm.FlavourPerson, "Suspect")
	gone := h.srv.TribeCRM.IDs(set)[0]
	h.deleteTribe(t, set, gone)
	waitFor(t, 60*time.Second, "every edit in BlueRockTel", func() bool {
		for _, n := range names {
			if !h.arrived(n) {
				return false
			}
		}
		return true
	})
	st := h.srv.TribeCRM.WebhookStats()
	if st.Lost == 0 {
		t.Errorf("no webhook was lost (%+v): the test proves nothing", st)
	}
	h.stopRun(t)
	if s := h.status(); s.Flows[0].LastRun == nil || s.Flows[0].LastRun.Error != "" {
		t.Errorf("the flow's last run failed: %+v", s.Flows[0].LastRun)
	}
	t.Logf("webhooks: %+v", st)
}

// Issue 12: stopping the daemon with events queued loses nothing: the
// changes stay at the source, past the cursor, for the next run.
func TestShutdownWithWebhookEventsQueued(t *testing.T) {
	t.Parallel()
	h := newHookEnv(t, 40, "@every 1h", "1h")
	h.sync()
	h.startRun(t)
	for i := 0; i < 5; i++ {
		h.rename(t, i, fmt.Sprintf("Queued Edit %d BV", i))
	}
	waitFor(t, 30*time.Second, "the deliveries", func() bool { return h.srv.TribeCRM.WebhookStats().Delivered >= 5 })
	h.stopRun(t)
	if !strings.Contains(h.run.stderr.String(), "next scheduled run") {
		t.Errorf("the stop does not say what becomes of the waiting events:\n%s", tail(h.run.stderr.String(), 10))
	}
	for i := 0; i < 5; i++ {
		if h.arrived(fmt.Sprintf("Queued Edit %d BV", i)) {
			t.Fatalf("edit %d arrived before any run (debounce is an hour): the test proves nothing", i)
		}
	}
	h.sync()
	for i := 0; i < 5; i++ {
		if n := fmt.Sprintf("Queued Edit %d BV", i); !h.arrived(n) {
			t.Errorf("%s did not arrive with the next run", n)
		}
	}
}

// BenchmarkWebhookLatency measures, with the example config's debounce
// (1s) and an hourly schedule, the time from an edit in TribeCRM to its
// arrival in BlueRockTel over 200 edits made one after the other:
//
//	go test ./e2e -run '^$' -bench WebhookLatency -benchtime 1x
func BenchmarkWebhookLatency(b *testing.B) {
	for i := 0; i < b.N; i++ {
		h := newHookEnv(b, 300, "@every 1h", "1s")
		h.sync()
		h.startRun(b)
		b.ResetTimer()
		lat := h.measure(b, 200)
		b.StopTimer()
		h.stopRun(b)
		b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "median-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
	}
}

// crmsync webhooks register|list|delete against TribeCRM's registration
// API: register is idempotent, list marks ours, delete --all removes them,
// and no output holds the secret.
func TestWebhooksRegisterListDelete(t *testing.T) {
	t.Parallel()
	h := newHookEnv(t, 10, "@every 1h", "1s")
	first := h.cli("webhooks", "register", "--json")
	var rows []struct{ System, ID, Topic, URL, Status string }
	if first.Code != 0 {
		t.Fatalf("register: %s", first)
	}
	decodeJSON(t, first.Stdout, &rows)
	if len(rows) < 2 {
		t.Fatalf("register made %d webhooks: %s", len(rows), first.Stdout)
	}
	for _, r := range rows {
		if r.Status != "registered" || r.URL != "http://"+h.addr+"/webhooks/tribecrm" {
			t.Errorf("first register: %+v", r)
		}
	}
	again := h.cli("webhooks", "register", "--json")
	decodeJSON(t, again.Stdout, &rows)
	for _, r := range rows {
		if r.Status != "kept" {
			t.Errorf("second register re-registered %s: %+v", r.Topic, r)
		}
	}
	list := h.cli("webhooks", "list", "--json")
	var listed []struct {
		ID   string
		Ours bool
	}
	decodeJSON(t, list.Stdout, &listed)
	if len(listed) != len(rows) {
		t.Errorf("list shows %d webhooks; %d registered", len(listed), len(rows))
	}
	for _, l := range listed {
		if !l.Ours {
			t.Errorf("webhook %s not marked ours", l.ID)
		}
	}
	if del := h.cli("webhooks", "delete", "--all"); del.Code != 0 || strings.Count(del.Stdout, "deleted") != len(rows) {
		t.Errorf("delete --all: %s", del)
	}
	if list := h.cli("webhooks", "list", "--json"); strings.TrimSpace(list.Stdout) != "null" && strings.TrimSpace(list.Stdout) != "[]" {
		t.Errorf("webhooks left after delete --all: %s", list.Stdout)
	}
	if bad := h.cli("webhooks", "delete", "no-such-id"); bad.Code == 0 || !strings.Contains(bad.Stderr, "no-such-id") {
		t.Errorf("deleting an unknown id: %s", bad)
	}
	for _, r := range []cliResult{first, again, list} {
		if strings.Contains(r.Stdout+r.Stderr, tribeHookSecret) {
			t.Error("the secret is in the output")
		}
	}
}

func decodeJSON(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, s)
	}
}
