package daemon

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/webhook"
)

const hookSecret = "generic-hook-secret-0123456789"

// Issue 12: events for a flow that is running fold into one more run right
// after it (a change they announce may be past what the run has read), and
// an event for an idle flow runs it at once; never two runs at once.
func TestTriggerWhileBusyRunsOnceMoreAfter(t *testing.T) {
	t.Parallel()
	r := newActionRig(t, "")
	for i := 0; i < 5; i++ {
		r.d.Trigger("f") // during the run at start
	}
	r.src.finish <- struct{}{}
	r.waitPull(t) // the one extra run
	r.d.Trigger("f")
	r.src.finish <- struct{}{}
	r.waitPull(t) // the trigger during the extra run gives one more
	r.finishRun(t, 2)
	select {
	case <-r.src.pulling:
		t.Fatal("a fourth run: events that arrived during one run must fold into one extra run")
	case <-time.After(300 * time.Millisecond):
	}
	r.d.Trigger("f") // idle: runs now
	r.waitPull(t)
	r.finishRun(t, 3)
	if runs, _ := r.store.Runs("f", 100); len(runs) != 4 {
		t.Errorf("%d runs stored; want 4", len(runs))
	}
	r.d.Trigger("nope") // an unknown flow is ignored
}

// The receiver runs on its own listener in `crmsync run`: a signed hook
// runs the flow; the admin endpoint does not serve it.
func TestWebhookListenerRunsTheFlow(t *testing.T) {
	t.Parallel()
	addr := make(chan string, 1)
	r := newActionRigWith(t, "", func(o *Options) {
		o.Webhooks = webhook.New(webhook.Options{HookSecret: []byte(hookSecret), HookFlows: []string{"f"}, Debounce: 20 * time.Millisecond, Logger: zerolog.Nop()})
		o.WebhookListen = "127.0.0.1:0"
		o.WebhookReady = func(a string) { addr <- a }
	})
	r.finishRun(t, 0)
	hook := "http://" + <-addr + "/hooks/f"
	body := []byte(`{"prospect":"42"}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest(http.MethodPost, hook, bytes.NewReader(body))
	req.Header.Set(webhook.HeaderTimestamp, ts)
	req.Header.Set(webhook.HeaderSignature, webhook.SignHook([]byte(hookSecret), ts, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("signed hook: %d", resp.StatusCode)
	}
	r.waitPull(t)
	r.finishRun(t, 1)
	if resp, err := http.Post(r.srv.URL+"/hooks/f", "application/json", bytes.NewReader(body)); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("the admin endpoint answers /hooks/f with %d; want 404 (the receiver has its own listener)", resp.StatusCode)
		}
	}
}
