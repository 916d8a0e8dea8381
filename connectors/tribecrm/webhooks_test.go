package tribecrm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/api"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

const hookBody = `{"webhookId":"9d1c0e2a-0000-4000-8000-000000000001","payload":{"type":"RelationshipUpdateMutation","relationshipId":"3f2b0c4d-1111-4222-8333-444455556666","entityType":"Relationship.Organization.CommercialRelationship.Lead"}}`

func signed(header, sig string) http.Header {
	h := http.Header{}
	h.Set(header, sig)
	return h
}

func TestVerifyWebhookSignature(t *testing.T) {
	verify := Type().Webhooks.Verify // as the receiver finds it
	secret := []byte("s3cret-of-the-hook")
	body := []byte(hookBody)
	good := api.Sign(string(secret), body)
	upper, raw := api.Signatures(string(secret), body)[1], api.SignRaw(string(secret), body)

	for name, h := range map[string]http.Header{
		"hex text":                 signed(api.SignatureHeader, good),
		"upper-case hex text":      signed(api.SignatureHeader, upper),
		"raw MAC":                  signed(api.SignatureHeader, raw),
		"another signature header": signed("X-TribeCRM-Webhook-Signature", good),
		"spaces around":            signed(api.SignatureHeader, " "+good+" "),
	} {
		ev, err := verify(h, body, secret)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		want := connectors.WebhookEvent{WebhookID: "9d1c0e2a-0000-4000-8000-000000000001", Mutation: api.RelationshipUpdateMutation,
			Op: api.OpUpdate, ID: "3f2b0c4d-1111-4222-8333-444455556666"}
		if ev != want {
			t.Errorf("%s: event %+v, want %+v", name, ev, want)
		}
	}

	tampered := []byte(strings.Replace(hookBody, "Update", "Deletion", 1))
	flipped := []byte(good)
	flipped[10] ^= 1
	for name, c := range map[string]struct {
		h      http.Header
		body   []byte
		secret []byte
	}{
		"tampered body":      {signed(api.SignatureHeader, good), tampered, secret},
		"tampered signature": {signed(api.SignatureHeader, string(flipped)), body, secret},
		"missing header":     {http.Header{"Content-Type": {"application/json"}}, body, secret},
		"empty header":       {signed(api.SignatureHeader, ""), body, secret},
		"wrong secret":       {signed(api.SignatureHeader, good), body, []byte("another")},
		"no secret":          {signed(api.SignatureHeader, api.Sign("", body)), body, nil},
		"hex not Base64":     {signed(api.SignatureHeader, strings.ToLower(mustDecodeB64(t, good))), body, secret},
	} {
		_, err := verify(c.h, c.body, c.secret)
		if !errors.Is(err, connectors.ErrBadSignature) {
			t.Errorf("%s: err = %v, want ErrBadSignature", name, err)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, string(secret)) || strings.Contains(msg, good[:16]) {
			t.Errorf("%s: the error shows the secret or the signature: %s", name, msg)
		}
	}
}

func mustDecodeB64(t *testing.T, s string) string {
	t.Helper()
	var out []byte
	if err := json.Unmarshal([]byte(`"`+s+`"`), &out); err != nil { // []byte decodes Base64
		t.Fatal(err)
	}
	return string(out)
}

func TestVerifyWebhookRefusesSignedNonEvents(t *testing.T) {
	secret := []byte("k")
	for name, body := range map[string]string{
		"not JSON":      `webhookId=1`,
		"array":         `[{"webhookId":"w"}]`,
		"no webhookId":  `{"payload":{"entityId":"e"}}`,
		"no payload":    `{"webhookId":"w"}`,
		"payload array": `{"webhookId":"w","payload":[]}`,
		"no id":         `{"webhookId":"w","payload":{"type":"EntityUpdateMutation"}}`,
	} {
		b := []byte(body)
		_, err := VerifyWebhook(signed(api.SignatureHeader, api.Sign("k", b)), b, secret)
		if err == nil || errors.Is(err, connectors.ErrBadSignature) {
			t.Errorf("%s: err = %v, want a shape error", name, err)
		}
	}
	// Tribe's page promises only webhookId and entityId/relationshipId: a
	// payload without our type field is still an event, of unknown op.
	b := []byte(`{"webhookId":"w","payload":{"entityId":"e-1","@type":"EntityCreationMutation"}}`)
	ev, err := VerifyWebhook(signed(api.SignatureHeader, api.Sign("k", b)), b, secret)
	if err != nil || ev.ID != "e-1" || ev.Op != api.OpCreate || ev.Mutation != api.EntityCreationMutation {
		t.Errorf("event %+v, %v", ev, err)
	}
	b = []byte(`{"webhookId":"w","payload":{"entityId":"e-2"}}`)
	if ev, err := VerifyWebhook(signed(api.SignatureHeader, api.Sign("k", b)), b, secret); err != nil || ev.ID != "e-2" || ev.Op != "" {
		t.Errorf("untyped event %+v, %v", ev, err)
	}
}

func TestWebhookTopicsAreThePulledTypes(t *testing.T) {
	e := newEnv(t, emulator.Options{Records: 1}, nil)
	got := e.c.WebhookTopics()
	if len(got) != 13 || !slices.Contains(got, "Relation.Organization") || !slices.Contains(got, "Relation.Person") || !slices.Contains(got, "Address") ||
		!slices.Contains(got, "Relationship.Person.CommercialRelationship.HotProspect") {
		t.Errorf("topics = %v", got)
	}
	few := newEnv(t, emulator.Options{Records: 1}, func(o *Options) { o.Stages = []string{"Lead"}; o.SkipRelations = true })
	want := []string{"Relationship.Organization.CommercialRelationship.Lead", "Relationship.Person.CommercialRelationship.Lead"}
	if got := few.c.WebhookTopics(); !slices.Equal(got, want) {
		t.Errorf("topics with stages [Lead] and no relations = %v, want %v", got, want)
	}
}

func TestWebhookRegistrationAgainstTheEmulator(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, emulator.Options{Records: 1}, nil)
	defer e.em.Close()
	var reg []connectors.Webhook
	for _, topic := range e.c.WebhookTopics() {
		w, err := e.c.RegisterWebhook(ctx, "https://crmsync.example/hooks/tribe", topic, "")
		if err != nil {
			t.Fatalf("register %s: %v", topic, err)
		}
		if w.ID == "" || w.Topic != topic || w.URL != "https://crmsync.example/hooks/tribe" || len(w.Secret) < 16 {
			t.Fatalf("registered %+v", w)
		}
		reg = append(reg, w)
	}
	var sent map[string]any
	req := e.requests()[0]
	if req.Method != http.MethodPost || req.Path != "/v1/webhooks" || json.Unmarshal(req.Body, &sent) != nil {
		t.Fatalf("first request %s %s %s", req.Method, req.Path, req.Body)
	}
	if sent["entityType"] != reg[0].Topic || sent["webhookUrl"] != reg[0].URL {
		t.Errorf("create body %s", req.Body)
	}
	if _, has := sent["secret"]; has {
		t.Errorf("a secret was sent though none was given: %s", req.Body)
	}

	own, err := e.c.RegisterWebhook(ctx, "https://crmsync.example/hooks/tribe", "Relation.Organization", "our-own-secret")
	if err != nil || own.Secret != "" {
		t.Fatalf("register with our secret: %+v, %v (Secret must stay empty: crmsync sent it)", own, err)
	}

	list, err := e.c.ListWebhooks(ctx)
	if err != nil || len(list) != len(reg)+1 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	for i, w := range list[:len(reg)] {
		if w.ID != reg[i].ID || w.Topic != reg[i].Topic || w.URL != reg[i].URL || w.Secret != "" {
			t.Errorf("listed %+v, registered %+v", w, reg[i])
		}
	}
	if err := e.c.DeleteWebhook(ctx, reg[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := e.c.DeleteWebhook(ctx, reg[0].ID); connectors.KindOf(err) != connectors.NotFound {
		t.Errorf("deleting it again: %v, want NotFound", err)
	}
	if list, _ := e.c.ListWebhooks(ctx); len(list) != len(reg) || slices.ContainsFunc(list, func(w connectors.Webhook) bool { return w.ID == reg[0].ID }) {
		t.Errorf("after delete: %+v", list)
	}
}

// TestWebhookRoundTrip: registered by the client, sent by the emulator on
// an edit, verified by VerifyWebhook with the secret registration returned.
func TestWebhookRoundTrip(t *testing.T) {
	ctx := context.Background()
	type got struct {
		ev  connectors.WebhookEvent
		err error
	}
	var (
		mu     sync.Mutex
		events []got
		secret string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		ev, err := VerifyWebhook(r.Header, body, []byte(secret))
		events = append(events, got{ev, err})
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	defer recv.Close()
	e := newEnv(t, emulator.Options{Records: 20, SeedSets: []string{FunnelSet(FlavourOrganization, "Lead")}}, nil)
	defer e.em.Close()
	set := FunnelSet(FlavourOrganization, "Lead")
	w, err := e.c.RegisterWebhook(ctx, recv.URL, TypeOfSet(set), "")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = w.Secret
	mu.Unlock()

	id := e.em.IDs(set)[3]
	if _, err := e.c.Update(ctx, set, id, map[string]any{"Name": "Pushed BV"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second) // a guard against a hang
	for e.em.WebhookStats().Sent < 1 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 {
		t.Fatalf("%d deliveries, want 1", len(events))
	}
	if g := events[0]; g.err != nil || g.ev.WebhookID != w.ID || g.ev.ID != id || g.ev.Op != api.OpUpdate || g.ev.Mutation != api.RelationshipUpdateMutation {
		t.Errorf("verified %+v, %v; want an update of %s by %s", g.ev, g.err, id, w.ID)
	}
}

// TestWebhookSecretNeverInErrors: a server that echoes the secret in its
// refusal; the client's error must not carry it.
func TestWebhookSecretNeverInErrors(t *testing.T) {
	const secret = "do-not-print-me-7731"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		msg, _ := json.Marshal("bad webhook " + string(body))
		_, _ = w.Write([]byte(`{"error":{"code":"BadRequest","message":` + string(msg) + `}}`))
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: "t", HTTP: newHTTP(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RegisterWebhook(context.Background(), "https://x.example/h", "Relation.Organization", secret)
	if err == nil || connectors.KindOf(err) != connectors.Rejected {
		t.Fatalf("err = %v, want a rejection", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the secret: %v", err)
	}
}

// TestEmulatorWebhookParams: `crmsync emulate --emulator-option
// tribecrm.webhook_*` reach the emulator's knobs; bad ones are refused.
func TestEmulatorWebhookParams(t *testing.T) {
	for _, bad := range []map[string]string{
		{"webhook_loss": "1.5"}, {"webhook_loss": "x"}, {"webhook_duplicate": "-0.1"}, {"webhook_delay": "-1s"},
		{"webhook_jitter": "soon"}, {"webhook_reorder": "-2"}, {"webhook_seed": "-1"}, {"webhook_signature": "md5"}, {"webhook_los": "0.1"},
	} {
		if _, err := Type().Emulator.New(connectors.EmulatorOptions{Records: 1, Params: bad}); err == nil {
			t.Errorf("%v was accepted", bad)
		}
	}
	h, err := Type().Emulator.New(connectors.EmulatorOptions{Records: 4, Params: map[string]string{
		"webhook_loss": "1", "webhook_seed": "9", "webhook_delay": "1ms", "webhook_jitter": "1ms", "webhook_reorder": "2", "webhook_signature": "raw"}})
	if err != nil {
		t.Fatal(err)
	}
	em := h.(*emulator.Emulator)
	defer em.Close()
	srv := httptest.NewServer(em)
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.RegisterWebhook(ctx, "http://127.0.0.1:1/never", "Relationship", ""); err != nil {
		t.Fatal(err)
	}
	set := FunnelSets()[0]
	for _, s := range FunnelSets() {
		if em.Count(s) > 0 {
			set = s
			break
		}
	}
	if _, err := c.Update(ctx, set, em.IDs(set)[0], map[string]any{"Name": "lost on purpose"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second) // a guard against a hang
	for em.WebhookStats().Lost < 1 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if s := em.WebhookStats(); s.Queued != 1 || s.Lost != 1 || s.Sent != 0 {
		t.Errorf("webhook_loss=1: %+v", s)
	}
}
