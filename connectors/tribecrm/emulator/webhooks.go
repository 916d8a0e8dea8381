package emulator

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// Webhooks, as TribeCRM's page (TDOC:api/concepts/webhooks) describes them
// and docs/apis.md §1 "Webhooks" records with what is our choice:
//
//   - POST /v1/webhooks {"entityType", "webhookUrl", "headers"?, "secret"?}
//     answers 201 with {"id", "entityType", "webhookUrl", "headers",
//     "secret"}: the secret is the one sent or, without one, a new random
//     one, and only this reply shows it. GET /v1/webhooks lists them (a JSON
//     array, without secrets); DELETE /v1/webhooks/{id} answers 204, or 404.
//     Auth is as on every /v1/odata route. Filters are not modelled.
//   - Every create, update or delete of a row of a set whose dotted type is
//     the webhook's entityType, or under it ("Relation" covers
//     Relation.Organization), is POSTed to the webhook's URL as
//     {"webhookId", "payload": {"type": "<Kind><Op>Mutation",
//     "relationshipId" | "entityId", "entityType"}}, signed in the header
//     api.SignatureHeader with api.Sign(secret, body), with the webhook's
//     custom headers. A stage conversion is an update, sent to the
//     webhooks of both the old and the new type (once each).
//   - Deliveries go through one bounded queue and one worker, so a write
//     never waits for a receiver; a change that finds the queue full is
//     dropped (WebhookStats.Dropped). A failed delivery is not retried:
//     nothing public says Tribe retries. Close stops the worker and drops
//     what is still queued (WebhookStats.Discarded).
//   - Knobs (WebhookOptions), every choice drawn from Seed: lost,
//     duplicated, delayed (fixed + jitter) and out-of-order deliveries.
//
// Changes are recorded by the store (store.changed) while the writer holds
// em.mu and handed to the queue after it is released.

// WebhookOptions configures the emulator's deliveries. Zero values take the
// defaults noted; zero knobs deliver each change once, in order, at once.
type WebhookOptions struct {
	// Seed seeds every choice of the knobs below: the same Seed and the
	// same sequence of changes give the same losses, duplicates, jitters
	// and order.
	Seed uint64
	// Loss is the fraction of deliveries never sent (0..1).
	Loss float64
	// Duplicate is the fraction of deliveries sent twice (0..1).
	Duplicate float64
	// Delay is how long after its change a delivery is sent at the
	// earliest; Jitter adds a uniform random part in [0, Jitter).
	Delay, Jitter time.Duration
	// Reorder > 1 shuffles deliveries within windows of that many
	// consecutive deliveries (a delivery moves fewer than Reorder places).
	// A window that is not full after ReorderLinger (default 100ms) is
	// shuffled and sent as it is.
	Reorder       int
	ReorderLinger time.Duration
	// QueueSize bounds the deliveries waiting for the worker (default 1024).
	// It is read when the first webhook is registered.
	QueueSize int
	// Timeout bounds one delivery's POST (default 5s).
	Timeout time.Duration
	// Client sends deliveries (default: the emulator's own client).
	Client *http.Client
	// Sign signs a body (default api.Sign; api.SignRaw is the other
	// reading of Tribe's page).
	Sign func(secret string, body []byte) string
}

// WebhookStats counts deliveries since the emulator started.
type WebhookStats struct {
	Queued     int // deliveries put on the queue (one per matching webhook and change)
	Dropped    int // deliveries refused because the queue was full
	Lost       int // deliveries the Loss knob dropped
	Duplicated int // deliveries the Duplicate knob sent a second time
	Sent       int // POSTs made (a duplicate counts twice)
	Delivered  int // POSTs answered 2xx
	Failed     int // POSTs that failed or were answered otherwise (never retried)
	Discarded  int // deliveries dropped by Close or arriving after it
}

// The defaults of WebhookOptions.
const (
	defaultQueueSize     = 1024
	defaultHookTimeout   = 5 * time.Second
	defaultReorderLinger = 100 * time.Millisecond
)

// hook is one registration.
type hook struct {
	id, url, entityType, secret string
	headers                     []hookHeader
}

type hookHeader struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// delivery is one POST to make.
type delivery struct {
	url, secret string
	headers     []hookHeader
	body        []byte
	at          time.Time // when the change happened
	due         time.Time // not sent before
}

// deliveryBody is the vendor's envelope; its JSON names are api.Field*.
type deliveryBody struct {
	WebhookID string      `json:"webhookId"`
	Payload   payloadBody `json:"payload"`
}

type payloadBody struct {
	Type           string `json:"type"`
	EntityID       string `json:"entityId,omitempty"`
	RelationshipID string `json:"relationshipId,omitempty"`
	EntityType     string `json:"entityType"`
}

// change is one write recorded by the store, for the webhooks.
type change struct {
	id           string
	op           string // api.OpCreate, OpUpdate or OpDelete
	relationship bool
	types        []string // the dotted types it had; the last is its type now
}

// webhooks holds the registrations, the queue and the worker.
type webhooks struct {
	mu      sync.Mutex
	opts    WebhookOptions
	hooks   []*hook // in registration order
	ids     *mrand.Rand
	topics  map[string]bool
	stats   WebhookStats
	lossR   *mrand.Rand
	dupR    *mrand.Rand
	jitterR *mrand.Rand
	orderR  *mrand.Rand
	started bool
	closed  bool
	queue   chan delivery
	done    chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	client  *http.Client
	wg      sync.WaitGroup
}

func newWebhooks(o WebhookOptions, topics map[string]bool, idSeed uint64) *webhooks {
	w := &webhooks{topics: topics, ids: emukit.Rand(idSeed)}
	w.setOptions(o)
	return w
}

// setOptions applies o and reseeds the knobs' choices. Caller holds w.mu or
// owns w.
func (w *webhooks) setOptions(o WebhookOptions) {
	if o.Timeout <= 0 {
		o.Timeout = defaultHookTimeout
	}
	if o.ReorderLinger <= 0 {
		o.ReorderLinger = defaultReorderLinger
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.Sign == nil {
		o.Sign = api.Sign
	}
	w.opts = o
	w.lossR = emukit.Rand(o.Seed ^ 0x1055)
	w.dupR = emukit.Rand(o.Seed ^ 0xd0b1e)
	w.jitterR = emukit.Rand(o.Seed ^ 0x717e5)
	w.orderR = emukit.Rand(o.Seed ^ 0x04de5)
}

// SetWebhookOptions replaces the delivery knobs for later deliveries and
// reseeds their choices (QueueSize is kept once the worker runs).
func (em *Emulator) SetWebhookOptions(o WebhookOptions) {
	w := em.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	w.setOptions(o)
}

// WebhookStats returns the delivery counts so far.
func (em *Emulator) WebhookStats() WebhookStats {
	w := em.hooks
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close stops the webhook worker (cancelling a delivery in flight) and drops
// the deliveries still queued (counted in WebhookStats.Discarded); changes
// made after Close are not delivered. The API itself keeps answering.
func (em *Emulator) Close() error {
	em.hooks.close()
	return nil
}

// webhookTopics returns the entity types a webhook may be bound to: the
// dotted type of every entity set and each of its dotted prefixes
// ("Relation", "Relationship.Organization").
func webhookTopics(sets map[string]*setInfo) map[string]bool {
	out := map[string]bool{}
	for _, si := range sets {
		parts := strings.Split(si.typ.name, ".")
		for i := range parts {
			out[strings.Join(parts[:i+1], ".")] = true
		}
	}
	return out
}

// matches reports whether a webhook bound to topic hears a change of typ.
func matches(topic, typ string) bool { return typ == topic || strings.HasPrefix(typ, topic+".") }

// ---------------------------------------------------------------- recording

// changed records a write of e for the webhooks. Caller holds em.mu.
func (st *store) changed(e *entity, op string) {
	kind := st.sets[e.set].kind
	st.changes = append(st.changes, change{id: e.id, op: op, relationship: kind == setFunnel || kind == setIdentity, types: []string{e.typ.name}})
}

// takeChanges returns the recorded writes, one per row (a create or delete
// wins over an update; the types are merged), and forgets them. Caller
// holds em.mu.
func (st *store) takeChanges() []change {
	if len(st.changes) <= 1 {
		out := st.changes
		st.changes = nil
		return out
	}
	var out []change
	at := map[string]int{}
	for _, c := range st.changes {
		i, seen := at[c.id]
		if !seen {
			at[c.id] = len(out)
			out = append(out, c)
			continue
		}
		if c.op != api.OpUpdate {
			out[i].op = c.op
		}
		for _, t := range c.types {
			out[i].types = appendNew(out[i].types, t)
		}
	}
	st.changes = nil
	return out
}

func appendNew(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// unlockAndNotify releases em.mu (held for writing) and queues the
// deliveries of the writes made under it.
func (em *Emulator) unlockAndNotify() {
	ch := em.st.takeChanges()
	em.mu.Unlock()
	em.hooks.notify(ch)
}

// notify queues one delivery per change and matching webhook, without ever
// blocking: a full queue drops it.
func (w *webhooks) notify(changes []change) {
	if len(changes) == 0 {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range changes {
		for _, h := range w.hooks {
			if !hears(h, c) {
				continue
			}
			d := delivery{url: h.url, secret: h.secret, headers: h.headers, body: deliveryJSON(h.id, c), at: now}
			switch {
			case w.closed:
				w.stats.Discarded++
			default:
				select {
				case w.queue <- d:
					w.stats.Queued++
				default:
					w.stats.Dropped++
				}
			}
		}
	}
}

func hears(h *hook, c change) bool {
	for _, t := range c.types {
		if matches(h.entityType, t) {
			return true
		}
	}
	return false
}

func deliveryJSON(hookID string, c change) []byte {
	p := payloadBody{Type: api.Mutation(c.relationship, c.op), EntityType: c.types[len(c.types)-1]}
	if c.relationship {
		p.RelationshipID = c.id
	} else {
		p.EntityID = c.id
	}
	b, _ := json.Marshal(deliveryBody{WebhookID: hookID, Payload: p})
	return b
}

// ---------------------------------------------------------------- worker

// start starts the worker once. Caller holds w.mu.
func (w *webhooks) start() {
	if w.started || w.closed {
		return
	}
	w.started = true
	w.queue = make(chan delivery, w.opts.QueueSize)
	w.done = make(chan struct{})
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	w.wg.Add(1)
	go w.run()
}

func (w *webhooks) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	started := w.started
	w.mu.Unlock()
	if !started {
		return
	}
	close(w.done)
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		select {
		case <-w.queue:
			w.stats.Discarded++
		default:
			w.client.CloseIdleConnections()
			return
		}
	}
}

func (w *webhooks) run() {
	defer w.wg.Done()
	for {
		batch := w.collect()
		if batch == nil {
			return
		}
		plan := w.plan(batch)
		for i, d := range plan {
			if !w.wait(d.due) {
				w.discard(len(plan) - i)
				return
			}
			w.send(d)
		}
	}
}

// collect takes the next window of deliveries off the queue: one, or with
// Reorder up to Reorder of them, waiting at most ReorderLinger for more. It
// returns nil once the webhooks are closed.
func (w *webhooks) collect() []delivery {
	var first delivery
	select {
	case first = <-w.queue:
	case <-w.done:
		return nil
	}
	batch := []delivery{first}
	w.mu.Lock()
	window, linger := w.opts.Reorder, w.opts.ReorderLinger
	w.mu.Unlock()
	if window <= 1 {
		return batch
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(batch) < window {
		select {
		case d := <-w.queue:
			batch = append(batch, d)
		case <-t.C:
			return batch
		case <-w.done:
			w.discard(len(batch))
			return nil
		}
	}
	return batch
}

// plan applies the knobs to a window, in queue order: each delivery is lost
// or kept, kept ones may be duplicated, each gets its due time, and with
// Reorder the window is shuffled. Each knob draws from its own stream, so
// the k-th delivery's fate does not depend on how deliveries were windowed.
func (w *webhooks) plan(batch []delivery) []delivery {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.opts
	out := make([]delivery, 0, len(batch))
	for _, d := range batch {
		lost := w.lossR.Float64() < o.Loss
		dup := w.dupR.Float64() < o.Duplicate
		d.due = d.at.Add(o.Delay)
		if o.Jitter > 0 {
			d.due = d.due.Add(time.Duration(w.jitterR.Int64N(int64(o.Jitter))))
		}
		if lost {
			w.stats.Lost++
			continue
		}
		out = append(out, d)
		if dup {
			w.stats.Duplicated++
			out = append(out, d)
		}
	}
	if o.Reorder > 1 {
		w.orderR.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

// wait sleeps until due; false when the webhooks were closed meanwhile.
func (w *webhooks) wait(due time.Time) bool {
	d := time.Until(due)
	if d <= 0 {
		select {
		case <-w.done:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.done:
		return false
	}
}

func (w *webhooks) discard(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats.Discarded += n
}

// send makes one POST; a failure is counted, never retried.
func (w *webhooks) send(d delivery) {
	w.mu.Lock()
	client, timeout, sign := w.opts.Client, w.opts.Timeout, w.opts.Sign
	w.mu.Unlock()
	if client == nil {
		client = w.client
	}
	ok := post(w.ctx, client, timeout, d, sign(d.secret, d.body))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stats.Sent++
	if ok {
		w.stats.Delivered++
	} else {
		w.stats.Failed++
	}
}

func post(ctx context.Context, client *http.Client, timeout time.Duration, d delivery, sig string) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		return false
	}
	for _, h := range d.headers {
		req.Header.Set(h.Name, h.Value)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.SignatureHeader, sig)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// ---------------------------------------------------------------- HTTP

// hookReply is a registration as the API shows it; Secret only on create.
type hookReply struct {
	ID         string       `json:"id"`
	EntityType string       `json:"entityType"`
	WebhookURL string       `json:"webhookUrl"`
	Headers    []hookHeader `json:"headers"`
	Secret     string       `json:"secret,omitempty"`
}

func (h *hook) reply(withSecret bool) hookReply {
	r := hookReply{ID: h.id, EntityType: h.entityType, WebhookURL: h.url, Headers: h.headers}
	if r.Headers == nil {
		r.Headers = []hookHeader{}
	}
	if withSecret {
		r.Secret = h.secret
	}
	return r
}

// serveWebhooks answers /v1/webhooks and /v1/webhooks/{id}.
func (em *Emulator) serveWebhooks(w http.ResponseWriter, r *http.Request) {
	id, hasID := strings.CutPrefix(r.URL.Path, api.WebhooksPath+"/")
	switch {
	case !hasID && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, em.hooks.list())
	case !hasID && r.Method == http.MethodPost:
		em.serveCreateWebhook(w, r)
	case hasID && id != "" && r.Method == http.MethodDelete:
		if !em.hooks.remove(id) {
			writeODataError(w, http.StatusNotFound, "No webhook with id '"+id+"'.")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case hasID && id != "" && r.Method == http.MethodGet:
		h, ok := em.hooks.get(id)
		if !ok {
			writeODataError(w, http.StatusNotFound, "No webhook with id '"+id+"'.")
			return
		}
		writeJSON(w, http.StatusOK, h)
	default:
		if hasID {
			w.Header().Set("Allow", "GET, DELETE")
		} else {
			w.Header().Set("Allow", "GET, POST")
		}
		writeODataError(w, http.StatusMethodNotAllowed, "The HTTP method '"+r.Method+"' is not allowed on this resource.")
	}
}

func (em *Emulator) serveCreateWebhook(w http.ResponseWriter, r *http.Request) {
	var body struct {
		EntityType string       `json:"entityType"`
		WebhookURL string       `json:"webhookUrl"`
		Headers    []hookHeader `json:"headers"`
		Secret     *string      `json:"secret"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || json.Unmarshal(data, &body) != nil {
		writeODataError(w, http.StatusBadRequest, "The request body must be a webhook object.")
		return
	}
	h, err := em.hooks.add(body.EntityType, body.WebhookURL, body.Headers, body.Secret)
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Location", baseURL(r)+api.WebhooksPath+"/"+h.id)
	writeJSON(w, http.StatusCreated, h.reply(true))
}

// add registers a webhook after checking it, and starts the worker.
func (w *webhooks) add(entityType, rawURL string, headers []hookHeader, secret *string) (*hook, error) {
	if !w.topics[entityType] {
		return nil, badRequest("Unknown entityType '%s': expected an entity type such as 'Relation.Organization'.", entityType)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, badRequest("webhookUrl must be an absolute http(s) URL.")
	}
	for _, hd := range headers {
		if hd.Name == "" || strings.ContainsAny(hd.Name, " :\r\n") || strings.ContainsAny(hd.Value, "\r\n") {
			return nil, badRequest("Each header needs a name and a value without line breaks.")
		}
	}
	h := &hook{url: rawURL, entityType: entityType, headers: headers}
	if secret != nil && *secret != "" {
		h.secret = *secret
	} else {
		h.secret = rand.Text()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	h.id = newGUID(w.ids)
	w.hooks = append(w.hooks, h)
	w.start()
	return h, nil
}

func (w *webhooks) list() []hookReply {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]hookReply, 0, len(w.hooks))
	for _, h := range w.hooks {
		out = append(out, h.reply(false))
	}
	return out
}

func (w *webhooks) get(id string) (hookReply, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range w.hooks {
		if strings.EqualFold(h.id, id) {
			return h.reply(false), true
		}
	}
	return hookReply{}, false
}

func (w *webhooks) remove(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, h := range w.hooks {
		if strings.EqualFold(h.id, id) {
			w.hooks = append(w.hooks[:i], w.hooks[i+1:]...)
			return true
		}
	}
	return false
}
