package api

import (
	"crypto/hmac"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// TribeCRM webhooks: the facts the client (registration, Verify) and the
// emulator (registration API, deliveries) share. Sources, and which of these
// are unverified choices, are in docs/apis.md §1 "Webhooks":
//   - TDOC:api/concepts/webhooks (developer.tribecrm.nl): the routes, the
//     envelope {"webhookId", "payload"}, the six mutation names, entityId /
//     relationshipId, and the signature (HMAC-SHA-512 of the raw body keyed
//     with the webhook's secret, as hex, then Base64 of that hex text).
//   - efficy-sa/n8n-nodes-tribecrm, nodes/TribeCrm/resources/webhook.ts (the
//     vendor's own node, removed in 3b2c1f0 as "unstable"): the create body
//     {"entityType", "webhookUrl", "headers": [{"name","value"}]}.

// WebhooksPath is the REST route of the webhook registrations (POST, GET;
// DELETE WebhooksPath/{id}).
const WebhooksPath = "/v1/webhooks"

// SignatureHeader is the request header that carries a delivery's
// signature. Unverified: Tribe's page says "a signature in the message
// header" without naming it, so a verifier also looks at any header whose
// name holds "signature" (connectors/tribecrm VerifyWebhook).
const SignatureHeader = "X-Signature"

// The fields of a registration (create body and replies). EntityType,
// WebhookURL and Headers are the vendor's n8n node's; ID and Secret are
// unverified (Tribe says the secret is "found on the webhook management
// page", so the server makes it; a create reply carrying it is our choice).
const (
	FieldID         = "id"
	FieldEntityType = "entityType"
	FieldWebhookURL = "webhookUrl"
	FieldHeaders    = "headers"
	FieldSecret     = "secret"
)

// The fields of a delivery. WebhookID, Payload, EntityID and
// RelationshipID are Tribe's page's. MutationType (the payload's own name,
// e.g. "RelationshipUpdateMutation") and EntityType (the dotted _Type of
// what changed) are unverified: the page says only that the payload is one
// of the six mutations and that their schemas are on the configuration page.
const (
	FieldWebhookID      = "webhookId"
	FieldPayload        = "payload"
	FieldEntityID       = "entityId"
	FieldRelationshipID = "relationshipId"
	FieldMutationType   = "type"
	FieldChangedType    = "entityType"
)

// The six payload types a delivery carries (Tribe's page, verbatim).
const (
	EntityCreationMutation       = "EntityCreationMutation"
	EntityUpdateMutation         = "EntityUpdateMutation"
	EntityDeletionMutation       = "EntityDeletionMutation"
	RelationshipCreationMutation = "RelationshipCreationMutation"
	RelationshipUpdateMutation   = "RelationshipUpdateMutation"
	RelationshipDeletionMutation = "RelationshipDeletionMutation"
)

// The kinds of change, as connectors.WebhookEvent.Op names them.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// Mutation returns the payload type of a change: relationship says whether
// a relationship (not an entity such as a Relation) changed; op is OpCreate,
// OpUpdate or OpDelete.
func Mutation(relationship bool, op string) string {
	kind := "Entity"
	if relationship {
		kind = "Relationship"
	}
	switch op {
	case OpCreate:
		return kind + "CreationMutation"
	case OpDelete:
		return kind + "DeletionMutation"
	default:
		return kind + "UpdateMutation"
	}
}

// MutationOp returns the op of a payload type, and false for a name that is
// not one of the six.
func MutationOp(mutation string) (string, bool) {
	switch mutation {
	case EntityCreationMutation, RelationshipCreationMutation:
		return OpCreate, true
	case EntityUpdateMutation, RelationshipUpdateMutation:
		return OpUpdate, true
	case EntityDeletionMutation, RelationshipDeletionMutation:
		return OpDelete, true
	}
	return "", false
}

// Sign returns the signature the emulator writes on a delivery body: the
// Base64 of the lower-case hex text of HMAC-SHA-512(secret, body). Tribe's
// page: "SHA-512 encode it using the webhook secret ... this produces a
// hexadecimal string ... Convert the hex string to Base64", which the issue
// and research/apis.md read as Base64 of the hex text. The page's next
// sentence is cut in the stored copy ("Use a hex-to-Base64 converter, not
// a ..."), and a hex-to-Base64 converter decodes the hex first, which
// gives the Base64 of the raw MAC (SignRaw). Verifiers accept both readings
// (Signatures); the hex case is unverified too.
func Sign(secret string, body []byte) string {
	return base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(mac(secret, body))))
}

// SignRaw is the other reading of Tribe's page: the Base64 of the raw
// HMAC-SHA-512 bytes.
func SignRaw(secret string, body []byte) string {
	return base64.StdEncoding.EncodeToString(mac(secret, body))
}

// Signatures returns every signature a verifier accepts for body: Sign,
// Sign over upper-case hex, and SignRaw. Each is a full 512-bit MAC, so
// taking three forms costs a forger nothing.
func Signatures(secret string, body []byte) []string {
	m := mac(secret, body)
	lower := hex.EncodeToString(m)
	return []string{
		base64.StdEncoding.EncodeToString([]byte(lower)),
		base64.StdEncoding.EncodeToString([]byte(strings.ToUpper(lower))),
		base64.StdEncoding.EncodeToString(m),
	}
}

func mac(secret string, body []byte) []byte {
	h := hmac.New(sha512.New, []byte(secret))
	h.Write(body)
	return h.Sum(nil)
}
