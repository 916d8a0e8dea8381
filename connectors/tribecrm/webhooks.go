package tribecrm

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// TribeCRM webhooks: Verify for crmsync's receiver, and the registration
// API (connectors.WebhookRegistrar). What is known of Tribe's webhooks and
// what is our choice is in docs/apis.md §1 "Webhooks"; the shared facts
// (header, field names, signature) are constants in connectors/tribecrm/api.

var _ connectors.WebhookRegistrar = (*Client)(nil)

// maxSignatureHeaders bounds how many header values VerifyWebhook compares.
const maxSignatureHeaders = 8

// VerifyWebhook checks one delivery against secret in constant time and
// returns its event (connectors.Webhooks.Verify).
//
// The signature is read from api.SignatureHeader or, since Tribe does not
// name its header, from any header whose name holds "signature". It must
// equal one of api.Signatures(secret, body) (both readings of Tribe's
// "hex, then Base64"). A missing or wrong signature, or an empty secret, is
// connectors.ErrBadSignature. A signed body that is not {"webhookId",
// "payload": {entityId or relationshipId}} is another error. No error holds
// the secret or a signature.
func VerifyWebhook(h http.Header, body, secret []byte) (connectors.WebhookEvent, error) {
	if len(secret) == 0 {
		return connectors.WebhookEvent{}, fmt.Errorf("tribecrm webhook: no secret to check against: %w", connectors.ErrBadSignature)
	}
	given := signatureValues(h)
	if len(given) == 0 {
		return connectors.WebhookEvent{}, fmt.Errorf("tribecrm webhook: no %s header: %w", api.SignatureHeader, connectors.ErrBadSignature)
	}
	if !signatureMatches(given, api.Signatures(string(secret), body)) {
		return connectors.WebhookEvent{}, fmt.Errorf("tribecrm webhook: %w", connectors.ErrBadSignature)
	}
	return parseDelivery(body)
}

// signatureValues returns the values of api.SignatureHeader, or else of
// every header whose name holds "signature", at most maxSignatureHeaders.
func signatureValues(h http.Header) []string {
	vals := h.Values(api.SignatureHeader)
	if len(vals) == 0 {
		for name, v := range h {
			if strings.Contains(strings.ToLower(name), "signature") {
				vals = append(vals, v...)
			}
		}
	}
	if len(vals) > maxSignatureHeaders {
		vals = vals[:maxSignatureHeaders]
	}
	return vals
}

// signatureMatches compares every given value with every accepted one in
// constant time, without stopping at the first match.
func signatureMatches(given, accepted []string) bool {
	ok := 0
	for _, g := range given {
		g = strings.TrimSpace(g)
		for _, a := range accepted {
			ok |= subtle.ConstantTimeCompare([]byte(g), []byte(a))
		}
	}
	return ok == 1
}

// mutationKeys are where a payload may name its type: our emulator writes
// api.FieldMutationType; the others are tolerated because Tribe's payload
// schemas are not public.
var mutationKeys = []string{api.FieldMutationType, "@type", "_type", "mutationType", "__typename"}

// parseDelivery decodes a verified body into an event.
func parseDelivery(body []byte) (connectors.WebhookEvent, error) {
	var env struct {
		WebhookID string          `json:"webhookId"`
		Payload   json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return connectors.WebhookEvent{}, errors.New("tribecrm webhook: the body is not a JSON object")
	}
	if env.WebhookID == "" {
		return connectors.WebhookEvent{}, errors.New("tribecrm webhook: the body has no webhookId")
	}
	var p map[string]any
	if json.Unmarshal(env.Payload, &p) != nil || p == nil {
		return connectors.WebhookEvent{}, errors.New("tribecrm webhook: the payload is not an object")
	}
	ev := connectors.WebhookEvent{WebhookID: env.WebhookID}
	ev.ID = stringField(p, api.FieldRelationshipID)
	if ev.ID == "" {
		ev.ID = stringField(p, api.FieldEntityID)
	}
	if ev.ID == "" {
		return connectors.WebhookEvent{}, errors.New("tribecrm webhook: the payload has neither entityId nor relationshipId")
	}
	for _, k := range mutationKeys {
		if op, ok := api.MutationOp(stringField(p, k)); ok {
			ev.Mutation, ev.Op = stringField(p, k), op
			break
		}
	}
	return ev, nil
}

func stringField(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// firstString returns the first non-empty string among keys of m.
func firstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s := stringField(m, k); s != "" {
			return s
		}
	}
	return ""
}

// WebhookTopics returns the entity types whose changes Pull reads: the
// dotted _Type of each funnel set pulled (Tribe binds a webhook to an
// entity type "such as Relation.Organization") and, unless SkipRelations,
// Relation.Organization, Relation.Person and Address, whose edits do not
// move the relationship's LastMutationDate.
func (c *Client) WebhookTopics() []string {
	out := make([]string, 0, len(c.sets)+len(watchedSets))
	for _, set := range c.sets {
		out = append(out, TypeOfSet(set))
	}
	if c.watchRel {
		for _, set := range watchedSets {
			out = append(out, TypeOfSet(set))
		}
	}
	return out
}

// RegisterWebhook creates a webhook: POST /v1/webhooks with entityType and
// webhookUrl (the vendor's n8n node's fields) and, when secret is set, our
// own secret (unverified: Tribe's page has the server make it). The
// returned Webhook's Secret is the one the server answered with when it
// differs from secret (it chose one); it is registered with the HTTP layer
// so that no log or error prints it.
func (c *Client) RegisterWebhook(ctx context.Context, hookURL, topic, secret string) (connectors.Webhook, error) {
	const op = "POST " + api.WebhooksPath
	if hookURL == "" || topic == "" {
		return connectors.Webhook{}, rejected(op, "a webhook needs a URL and an entity type")
	}
	c.http.AddSecret(secret)
	body := map[string]any{api.FieldEntityType: topic, api.FieldWebhookURL: hookURL}
	if secret != "" {
		body[api.FieldSecret] = secret
	}
	resp, err := c.do(ctx, http.MethodPost, c.base+api.WebhooksPath, op, body)
	if err != nil {
		return connectors.Webhook{}, err
	}
	var m map[string]any
	if err := resp.Decode(&m); err != nil || m == nil {
		return connectors.Webhook{}, &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Status: resp.Status, Message: "the reply is not a webhook object"}
	}
	w := webhookOf(m)
	if w.ID == "" {
		return connectors.Webhook{}, &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Status: resp.Status, Message: "the reply has no webhook id"}
	}
	if w.URL == "" {
		w.URL = hookURL
	}
	if w.Topic == "" {
		w.Topic = topic
	}
	if got := firstString(m, api.FieldSecret, "Secret"); got != "" && got != secret {
		c.http.AddSecret(got)
		w.Secret = got
	}
	return w, nil
}

// webhookOf reads one registration. The keys besides the n8n node's are
// tolerated because the reply's shape is not public (GET /v1/odata/Webhook
// would answer PascalCase).
func webhookOf(m map[string]any) connectors.Webhook {
	return connectors.Webhook{
		ID:    firstString(m, api.FieldID, "ID", "Id", api.FieldWebhookID),
		URL:   firstString(m, api.FieldWebhookURL, "url", "WebhookUrl", "Url"),
		Topic: firstString(m, api.FieldEntityType, "EntityType"),
	}
}

// ListWebhooks returns the registrations (GET /v1/webhooks), a JSON array
// or an OData-style {"value": [...]}. Secrets are never copied from it.
func (c *Client) ListWebhooks(ctx context.Context) ([]connectors.Webhook, error) {
	const op = "GET " + api.WebhooksPath
	resp, err := c.do(ctx, http.MethodGet, c.base+api.WebhooksPath, op, nil)
	if err != nil {
		return nil, err
	}
	rows, err := webhookRows(resp.Body)
	if err != nil {
		return nil, &connectors.Error{System: System, Op: op, Kind: connectors.Retryable, Status: resp.Status, Err: err}
	}
	out := make([]connectors.Webhook, 0, len(rows))
	for _, m := range rows {
		out = append(out, webhookOf(m))
	}
	return out, nil
}

// webhookRows decodes a list reply: an array, or an object with "value".
func webhookRows(body []byte) ([]map[string]any, error) {
	body = bytes.TrimSpace(body)
	var rows []map[string]any
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &rows); err != nil {
			return nil, fmt.Errorf("decode webhook list: %w", err)
		}
		return rows, nil
	}
	var env struct {
		Value *[]map[string]any `json:"value"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Value == nil {
		return nil, errors.New("the webhook list is neither an array nor an object with \"value\"")
	}
	return *env.Value, nil
}

// DeleteWebhook removes one registration (DELETE /v1/webhooks/{id}). An
// unknown id is a NotFound error.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	const op = "DELETE " + api.WebhooksPath
	if id == "" {
		return rejected(op, "no webhook id")
	}
	_, err := c.do(ctx, http.MethodDelete, c.base+api.WebhooksPath+"/"+url.PathEscape(id), op, nil)
	return err
}
