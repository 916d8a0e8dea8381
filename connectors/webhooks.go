package connectors

import (
	"context"
	"errors"
	"net/http"
)

// Webhooks is what a type whose system pushes change events (TribeCRM)
// adds to its registration (Type.Webhooks). crmsync's receiver calls Verify
// for every delivery addressed to a system of the type, then schedules the
// flows that read from that system; the record itself is read afterwards
// by the flow's normal, cursor-driven pull, so an event is a hint and a
// lost one costs only latency (the cron schedule stays the safety net).
type Webhooks struct {
	// Verify checks one delivery, its headers and raw body, against
	// secret in constant time and returns the event it carries. A missing
	// or wrong signature is an error for which errors.Is(err,
	// ErrBadSignature) holds; a body that is signed but not an event of
	// the vendor's shape is another error. Neither error holds the secret.
	Verify func(h http.Header, body, secret []byte) (WebhookEvent, error)
}

// ErrBadSignature is the error of a delivery whose signature is missing or
// does not match the secret.
var ErrBadSignature = errors.New("webhook signature missing or wrong")

// WebhookEvent is one verified delivery.
type WebhookEvent struct {
	// WebhookID is the vendor's id of the registration that sent it.
	WebhookID string
	// Mutation is the vendor's name for what happened, e.g.
	// "RelationshipUpdateMutation".
	Mutation string
	// Op is the kind of change: "create", "update" or "delete".
	Op string
	// ID is the changed entity's or relationship's id.
	ID string
}

// Webhook is one registration on the vendor's side.
type Webhook struct {
	ID string `json:"id"`
	// URL is where the vendor delivers.
	URL string `json:"url"`
	// Topic is the entity type it is bound to ("Relation.Organization").
	Topic string `json:"topic"`
	// Secret is set when the server chose it at registration (it is shown
	// once); empty when crmsync sent its own.
	Secret string `json:"-"`
}

// WebhookRegistrar is implemented by a connector whose system lets crmsync
// manage its webhooks (crmsync webhooks register|list|delete).
type WebhookRegistrar interface {
	// WebhookTopics are the entity types to register so that every change
	// the connector's Pull would see is announced.
	WebhookTopics() []string
	// RegisterWebhook binds a new webhook on topic, delivering to url,
	// signed with secret (empty: the server chooses one, returned once).
	RegisterWebhook(ctx context.Context, url, topic, secret string) (Webhook, error)
	// ListWebhooks lists the registrations the token can see.
	ListWebhooks(ctx context.Context) ([]Webhook, error)
	// DeleteWebhook removes one registration.
	DeleteWebhook(ctx context.Context, id string) error
}
