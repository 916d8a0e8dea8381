package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// receiver is a webhook endpoint that records every delivery.
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	got     []received
	release chan struct{} // when set, each delivery waits for it
}

type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

func newReceiver(t *testing.T, block bool) *receiver {
	rc := &receiver{}
	if block {
		rc.release = make(chan struct{})
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, received{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		if rc.release != nil {
			select {
			case <-rc.release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(func() {
		if rc.release != nil {
			close(rc.release)
		}
		rc.srv.Close()
	})
	return rc
}

func (rc *receiver) deliveries() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// event is a decoded delivery body.
type event struct {
	WebhookID string `json:"webhookId"`
	Payload   struct {
		Type           string `json:"type"`
		EntityID       string `json:"entityId"`
		RelationshipID string `json:"relationshipId"`
		EntityType     string `json:"entityType"`
	} `json:"payload"`
}

func (r received) event(t *testing.T) event {
	t.Helper()
	var ev event
	if err := json.Unmarshal(r.body, &ev); err != nil {
		t.Fatalf("delivery is not JSON: %s", r.body)
	}
	return ev
}

func (ev event) id() string { return ev.Payload.RelationshipID + ev.Payload.EntityID }

// call sends a request and returns the status and the raw body.
func (e *env) call(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// register creates a webhook and returns its reply.
func (e *env) register(t *testing.T, topic, url, secret string) hookReply {
	t.Helper()
	body := map[string]any{api.FieldEntityType: topic, api.FieldWebhookURL: url}
	if secret != "" {
		body[api.FieldSecret] = secret
	}
	st, data := e.call(t, http.MethodPost, api.WebhooksPath, "dev-token", body)
	if st != http.StatusCreated {
		t.Fatalf("register %s: %d %s", topic, st, data)
	}
	var h hookReply
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func (e *env) rename(t *testing.T, set, id, name string) {
	t.Helper()
	if st, data := e.call(t, http.MethodPut, "/v1/odata/"+set+"("+id+")", "dev-token", map[string]any{"Name": name}); st != http.StatusOK {
		t.Fatalf("PUT %s(%s): %d %s", set, id, st, data)
	}
}

// waitFor polls cond; a guard against a hang, not a speed limit.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settled reports whether every queued delivery was sent, lost or dropped.
func settled(s WebhookStats) bool { return s.Sent+s.Lost == s.Queued+s.Duplicated }

func TestWebhookRegistrationCRUD(t *testing.T) {
	e := newEnv(t, Options{Records: 2})
	defer e.em.Close()
	if st, _ := e.call(t, http.MethodGet, api.WebhooksPath, "", nil); st != http.StatusUnauthorized {
		t.Fatalf("list without a token: %d, want 401", st)
	}
	if st, _ := e.call(t, http.MethodPost, api.WebhooksPath, "wrong", map[string]any{}); st != http.StatusUnauthorized {
		t.Fatalf("create with a wrong token: %d, want 401", st)
	}
	for name, body := range map[string]map[string]any{
		"unknown type": {api.FieldEntityType: "Relation.Planet", api.FieldWebhookURL: "https://hooks.example/x"},
		"no type":      {api.FieldWebhookURL: "https://hooks.example/x"},
		"no url":       {api.FieldEntityType: "Relation.Organization"},
		"relative url": {api.FieldEntityType: "Relation.Organization", api.FieldWebhookURL: "/hooks"},
		"ftp url":      {api.FieldEntityType: "Relation.Organization", api.FieldWebhookURL: "ftp://hooks.example/x"},
	} {
		if st, data := e.call(t, http.MethodPost, api.WebhooksPath, "dev-token", body); st != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, st, data)
		}
	}

	chosen := e.register(t, "Relation.Organization", "https://hooks.example/a", "")
	if chosen.ID == "" || len(chosen.Secret) < 16 {
		t.Fatalf("created webhook lacks an id or a server-chosen secret: %+v", chosen)
	}
	own := e.register(t, typeOfSet(orgLead), "https://hooks.example/b", "our-secret")
	if own.Secret != "our-secret" || own.EntityType != typeOfSet(orgLead) || own.WebhookURL != "https://hooks.example/b" {
		t.Fatalf("created webhook = %+v", own)
	}

	st, data := e.call(t, http.MethodGet, api.WebhooksPath, "dev-token", nil)
	var list []map[string]any
	if st != http.StatusOK || json.Unmarshal(data, &list) != nil || len(list) != 2 {
		t.Fatalf("list: %d %s", st, data)
	}
	for _, h := range list {
		if _, shown := h[api.FieldSecret]; shown {
			t.Errorf("the list shows a secret: %v", h)
		}
	}
	if list[0][api.FieldID] != chosen.ID || list[1][api.FieldID] != own.ID {
		t.Errorf("list order or ids: %v", list)
	}
	// The same registrations as the OData set Webhook.
	st, data = e.call(t, http.MethodGet, "/v1/odata/Webhook", "dev-token", nil)
	var set struct {
		Value []map[string]any `json:"value"`
	}
	if st != http.StatusOK || json.Unmarshal(data, &set) != nil || len(set.Value) != 2 || set.Value[0][api.FieldID] != chosen.ID {
		t.Errorf("GET /v1/odata/Webhook: %d %s", st, data)
	}

	if st, data := e.call(t, http.MethodDelete, api.WebhooksPath+"/"+chosen.ID, "dev-token", nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d %s", st, data)
	}
	if st, _ := e.call(t, http.MethodDelete, api.WebhooksPath+"/"+chosen.ID, "dev-token", nil); st != http.StatusNotFound {
		t.Fatalf("second delete: %d, want 404", st)
	}
	if st, _ := e.call(t, http.MethodDelete, api.WebhooksPath+"/"+own.ID, "", nil); st != http.StatusUnauthorized {
		t.Fatalf("delete without a token: %d, want 401", st)
	}
	_, data = e.call(t, http.MethodGet, api.WebhooksPath, "dev-token", nil)
	if json.Unmarshal(data, &list) != nil || len(list) != 1 || list[0][api.FieldID] != own.ID {
		t.Fatalf("list after delete: %s", data)
	}
}

func TestWebhookEditIsDeliveredOnceSigned(t *testing.T) {
	e := newEnv(t, Options{Records: 40, SeedSets: []string{orgLead}})
	rc := newReceiver(t, false)
	h := e.register(t, typeOfSet(orgLead), rc.srv.URL+"/hook", "s3cret")
	id := e.em.IDs(orgLead)[0]
	e.rename(t, orgLead, id, "Renamed once")
	waitFor(t, "the delivery", func() bool { return e.em.WebhookStats().Delivered == 1 })
	e.em.Close()

	got := rc.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries for one edit, want 1", len(got))
	}
	if s := e.em.WebhookStats(); s.Queued != 1 || s.Sent != 1 || s.Lost+s.Duplicated+s.Dropped+s.Discarded+s.Failed != 0 {
		t.Errorf("stats = %+v", s)
	}
	d := got[0]
	if sig := d.header.Get(api.SignatureHeader); sig != api.Sign("s3cret", d.body) {
		t.Errorf("%s = %q, want the signature of the body", api.SignatureHeader, sig)
	}
	if ct := d.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	ev := d.event(t)
	if ev.WebhookID != h.ID || ev.Payload.Type != api.RelationshipUpdateMutation || ev.Payload.RelationshipID != id ||
		ev.Payload.EntityID != "" || ev.Payload.EntityType != typeOfSet(orgLead) {
		t.Errorf("delivery = %s", d.body)
	}
	var raw map[string]map[string]any
	_ = json.Unmarshal(d.body, &raw)
	for _, k := range []string{api.FieldMutationType, api.FieldRelationshipID, api.FieldChangedType} {
		if _, ok := raw[api.FieldPayload][k]; !ok {
			t.Errorf("payload lacks %q: %s", k, d.body)
		}
	}
}

// TestWebhookChangesReachTheMatchingWebhooks walks every kind of write and
// checks which webhook hears it, with which payload.
func TestWebhookChangesReachTheMatchingWebhooks(t *testing.T) {
	e := newEnv(t, Options{Records: 10, SeedSets: []string{orgLead, personLead}})
	defer e.em.Close()
	rc := newReceiver(t, false)
	hooks := map[string]string{} // webhook id -> topic
	for _, topic := range []string{typeOfSet(orgLead), typeOfSet(orgCustomer), "Relation.Organization", "Relation.Person", "Relationship"} {
		hooks[e.register(t, topic, rc.srv.URL, "k").ID] = topic
	}
	seen := 0
	expect := func(step string, want map[string]string) { // topic -> payload type
		t.Helper()
		total := seen + len(want)
		waitFor(t, step, func() bool { return len(rc.deliveries()) >= total })
		got := map[string]event{}
		for _, d := range rc.deliveries()[seen:] {
			ev := d.event(t)
			got[hooks[ev.WebhookID]] = ev
		}
		seen = total
		for topic, typ := range want {
			if got[topic].Payload.Type != typ {
				t.Errorf("%s: webhook %s heard %+v, want %s", step, topic, got[topic].Payload, typ)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: heard by %d webhooks, want %d: %v", step, len(got), len(want), got)
		}
	}

	// A relationship created with its organisation inline: two changes.
	st, data := e.call(t, http.MethodPost, "/v1/odata/"+orgLead, "dev-token", map[string]any{
		"Relation": map[string]any{"ID": e.em.TenantID()}, "Organization": map[string]any{"Name": "Hookline BV"}})
	if st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, data)
	}
	var created map[string]any
	_ = json.Unmarshal(data, &created)
	relID, _ := created["ID"].(string)
	expect("create", map[string]string{typeOfSet(orgLead): api.RelationshipCreationMutation, "Relationship": api.RelationshipCreationMutation,
		"Relation.Organization": api.EntityCreationMutation})

	// Its organisation edited.
	ent, _, _ := e.em.Entity(relID)
	orgID, _ := field(ent, "Organization.ID").(string)
	if st, data := e.call(t, http.MethodPut, "/v1/odata/"+relationOrganization+"("+orgID+")", "dev-token", map[string]any{"PhoneNumber": "+31 1"}); st != http.StatusOK {
		t.Fatalf("edit organisation: %d %s", st, data)
	}
	expect("organisation edit", map[string]string{"Relation.Organization": api.EntityUpdateMutation})

	// Converted from Lead to Customer: one update, to the webhooks of both
	// stages, naming the new type.
	if st, data := e.call(t, http.MethodPost, "/v1/odata/"+orgLead, "dev-token", map[string]any{"ID": relID, "_UpgradeType": orgCustomer}); st != http.StatusOK {
		t.Fatalf("convert: %d %s", st, data)
	}
	expect("conversion", map[string]string{typeOfSet(orgLead): api.RelationshipUpdateMutation, typeOfSet(orgCustomer): api.RelationshipUpdateMutation,
		"Relationship": api.RelationshipUpdateMutation})
	for _, d := range rc.deliveries()[seen-3:] {
		if ev := d.event(t); ev.Payload.EntityType != typeOfSet(orgCustomer) || ev.Payload.RelationshipID != relID {
			t.Errorf("conversion delivery %s", d.body)
		}
	}

	// Deleted.
	if st, _ := e.call(t, http.MethodDelete, "/v1/odata/"+orgCustomer+"("+relID+")", "dev-token", nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d", st)
	}
	expect("delete", map[string]string{typeOfSet(orgCustomer): api.RelationshipDeletionMutation, "Relationship": api.RelationshipDeletionMutation})

	// A person lead edit is heard by Relationship only; a refused write by none.
	e.rename(t, personLead, e.em.IDs(personLead)[0], "P")
	expect("person lead edit", map[string]string{"Relationship": api.RelationshipUpdateMutation})
	if st, _ := e.call(t, http.MethodPut, "/v1/odata/"+orgLead+"("+e.em.IDs(orgLead)[0]+")", "dev-token", map[string]any{"Nope": 1}); st != http.StatusBadRequest {
		t.Fatalf("bad edit: %d", st)
	}
	e.rename(t, personLead, e.em.IDs(personLead)[0], "P2")
	expect("after a refused write", map[string]string{"Relationship": api.RelationshipUpdateMutation})
	waitFor(t, "every delivery", func() bool { return settled(e.em.WebhookStats()) })
	if s := e.em.WebhookStats(); s.Queued != seen {
		t.Errorf("%d deliveries queued, %d expected: a refused write was announced", s.Queued, seen)
	}
}

func TestWebhookCustomHeadersAreSent(t *testing.T) {
	e := newEnv(t, Options{Records: 3, SeedSets: []string{orgLead}})
	defer e.em.Close()
	rc := newReceiver(t, false)
	st, data := e.call(t, http.MethodPost, api.WebhooksPath, "dev-token", map[string]any{
		api.FieldEntityType: "Relationship", api.FieldWebhookURL: rc.srv.URL,
		api.FieldHeaders: []map[string]string{{"name": "X-Route", "value": "crm-a"}, {"name": api.SignatureHeader, "value": "forged"}}})
	if st != http.StatusCreated {
		t.Fatalf("register: %d %s", st, data)
	}
	var h hookReply
	_ = json.Unmarshal(data, &h)
	e.rename(t, orgLead, e.em.IDs(orgLead)[0], "x")
	waitFor(t, "the delivery", func() bool { return len(rc.deliveries()) == 1 })
	d := rc.deliveries()[0]
	if d.header.Get("X-Route") != "crm-a" {
		t.Errorf("custom header not sent: %v", d.header)
	}
	if d.header.Get(api.SignatureHeader) != api.Sign(h.Secret, d.body) {
		t.Error("a custom header replaced the signature")
	}
}

// editAll renames n distinct org leads, in order, and returns their ids.
func editAll(t *testing.T, e *env, n int) []string {
	t.Helper()
	ids := e.em.IDs(orgLead)[:n]
	for i, id := range ids {
		e.rename(t, orgLead, id, "edit "+string(rune('a'+i%26)))
	}
	return ids
}

// knobRun edits n records with the knobs o and returns the ids received, in
// arrival order, once everything is settled.
func knobRun(t *testing.T, n int, o WebhookOptions) ([]string, []string, WebhookStats) {
	t.Helper()
	e := newEnv(t, Options{Records: n, SeedSets: []string{orgLead}, Webhooks: o})
	rc := newReceiver(t, false)
	e.register(t, typeOfSet(orgLead), rc.srv.URL, "k")
	ids := editAll(t, e, n)
	waitFor(t, "every delivery", func() bool { return settled(e.em.WebhookStats()) })
	e.em.Close()
	var got []string
	for _, d := range rc.deliveries() {
		got = append(got, d.event(t).id())
	}
	return ids, got, e.em.WebhookStats()
}

func TestWebhookLossAndDuplicatesFollowTheSeed(t *testing.T) {
	const n = 300
	o := WebhookOptions{Seed: 42, Loss: 0.3, Duplicate: 0.2}
	ids, got, s := knobRun(t, n, o)
	if s.Queued != n || s.Sent != len(got) || s.Delivered != s.Sent || s.Sent != n-s.Lost+s.Duplicated {
		t.Fatalf("stats %+v for %d edits and %d arrivals", s, n, len(got))
	}
	// With a fixed seed the fractions are fixed too; these bands are wide
	// (over 4 standard deviations) only so that the check states the knob.
	if s.Lost < 60 || s.Lost > 120 || s.Duplicated < 20 || s.Duplicated > 70 {
		t.Errorf("lost %d, duplicated %d of %d: not near 30%% and 20%% of the kept", s.Lost, s.Duplicated, n)
	}
	t.Logf("seed 42, %d edits: %d lost, %d duplicated, %d arrived", n, s.Lost, s.Duplicated, len(got))
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	lost, dup := 0, 0
	for _, id := range ids {
		switch count[id] {
		case 0:
			lost++
		case 2:
			dup++
		case 1:
		default:
			t.Errorf("%s arrived %d times", id, count[id])
		}
	}
	if lost != s.Lost || dup != s.Duplicated {
		t.Errorf("arrivals show %d lost and %d duplicated, stats say %d and %d", lost, dup, s.Lost, s.Duplicated)
	}

	// The same seed loses and duplicates the same deliveries; another does not.
	_, again, s2 := knobRun(t, n, o)
	if s2.Lost != s.Lost || s2.Duplicated != s.Duplicated || !sameCounts(got, again) {
		t.Errorf("seed 42 twice: %+v then %+v", s, s2)
	}
	o.Seed = 43
	if _, other, _ := knobRun(t, n, o); sameCounts(got, other) {
		t.Error("seeds 42 and 43 lost and duplicated the same deliveries")
	}
}

func sameCounts(a, b []string) bool {
	ca, cb := map[string]int{}, map[string]int{}
	for _, x := range a {
		ca[x]++
	}
	for _, x := range b {
		cb[x]++
	}
	if len(ca) != len(cb) {
		return false
	}
	for k, v := range ca {
		if cb[k] != v {
			return false
		}
	}
	return true
}

func TestWebhookReorderShufflesWithinTheWindow(t *testing.T) {
	const n, window = 64, 8
	ids, got, s := knobRun(t, n, WebhookOptions{Seed: 7, Reorder: window, ReorderLinger: 500 * time.Millisecond})
	if len(got) != n || !sameCounts(ids, got) || s.Lost+s.Duplicated != 0 {
		t.Fatalf("reorder alone changed what arrived: %d of %d, %+v", len(got), n, s)
	}
	pos := map[string]int{}
	for i, id := range ids {
		pos[id] = i
	}
	moved := 0
	for i, id := range got {
		d := i - pos[id]
		if d < 0 {
			d = -d
		}
		if d >= window {
			t.Errorf("%s moved %d places, window %d", id, d, window)
		}
		if d != 0 {
			moved++
		}
	}
	if moved == 0 {
		t.Error("Reorder sent every delivery in order")
	}
	_, plain, _ := knobRun(t, n, WebhookOptions{Seed: 7})
	if !slices.Equal(plain, ids) {
		t.Error("without Reorder the deliveries did not arrive in order")
	}
}

func TestWebhookDelayHoldsDeliveriesBack(t *testing.T) {
	const delay = 80 * time.Millisecond
	e := newEnv(t, Options{Records: 3, SeedSets: []string{orgLead}, Webhooks: WebhookOptions{Delay: delay, Jitter: 20 * time.Millisecond, Seed: 1}})
	defer e.em.Close()
	rc := newReceiver(t, false)
	e.register(t, typeOfSet(orgLead), rc.srv.URL, "k")
	before := time.Now()
	e.rename(t, orgLead, e.em.IDs(orgLead)[0], "later")
	waitFor(t, "the delivery", func() bool { return len(rc.deliveries()) == 1 })
	if waited := rc.deliveries()[0].at.Sub(before); waited < delay {
		t.Errorf("delivered %v after the edit, before the %v delay", waited, delay)
	}
}

// TestWebhookDeadReceiverDoesNotBlockTheAPI: a receiver that never answers
// and one that refuses connections; the API keeps answering, the queue
// stays bounded, and Close returns with the rest dropped.
func TestWebhookDeadReceiverDoesNotBlockTheAPI(t *testing.T) {
	const n, queue = 60, 4
	e := newEnv(t, Options{Records: n, SeedSets: []string{orgLead}, Webhooks: WebhookOptions{QueueSize: queue, Timeout: time.Minute}})
	hung := newReceiver(t, true)
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close()
	e.register(t, typeOfSet(orgLead), hung.srv.URL, "k")
	e.register(t, "Relationship", refusedURL, "k")

	done := make(chan int)
	go func() { // the API's answers, counted off the test goroutine
		ok := 0
		for _, id := range e.em.IDs(orgLead) {
			b, _ := json.Marshal(map[string]any{"Name": "edited"})
			req, _ := http.NewRequest(http.MethodPut, e.srv.URL+"/v1/odata/"+orgLead+"("+id+")", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer dev-token")
			if resp, err := e.srv.Client().Do(req); err == nil {
				if resp.StatusCode == http.StatusOK {
					ok++
				}
				resp.Body.Close()
			}
		}
		done <- ok
	}()
	select {
	case ok := <-done:
		if ok != n {
			t.Fatalf("%d of %d edits answered 200", ok, n)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the API blocked behind a receiver that does not answer")
	}
	waitFor(t, "the stuck delivery", func() bool { return len(hung.deliveries()) == 1 })
	s := e.em.WebhookStats()
	if s.Queued > queue+2 || s.Dropped < 2*n-(queue+2) || s.Queued+s.Dropped != 2*n {
		t.Errorf("stats with a stuck worker: %+v", s)
	}
	e.em.Close()
	s = e.em.WebhookStats()
	if s.Queued != s.Sent+s.Discarded || s.Delivered != 0 || s.Failed != s.Sent {
		t.Errorf("stats after Close: %+v", s)
	}
	e.rename(t, orgLead, e.em.IDs(orgLead)[0], "after close")
	if after := e.em.WebhookStats(); after.Discarded != s.Discarded+2 || len(hung.deliveries()) != 1 {
		t.Errorf("a change after Close: %+v", after)
	}
}
