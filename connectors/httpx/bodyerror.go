package httpx

import (
	"encoding/json"
	"net/http"

	"github.com/crmsync/crmsync/connectors"
)

// ErrorInBody checks a 2xx reply for an error object in its body: a JSON
// object with a top-level "error" object and no "id"/"ID" member, the shape
// of an OData error (OData JSON Format 4.01 §21, used by TribeCRM) and of
// Overplane's error envelope. Gateways and some applications answer a
// failure with 200 and such a body; taking it for success would lose the
// write. It returns nil for any other body, and otherwise a
// *connectors.Error: Retryable for idempotent methods, OutcomeUnknown for a
// POST (the client cannot know whether the server acted).
func ErrorInBody(system, method, op string, resp *Response) error {
	if resp == nil || len(resp.Body) == 0 || resp.Body[0] != '{' {
		return nil
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(resp.Body, &top) != nil {
		return nil
	}
	raw, ok := top["error"]
	if !ok {
		return nil
	}
	if _, ok := top["id"]; ok {
		return nil
	}
	if _, ok := top["ID"]; ok {
		return nil
	}
	var e struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return nil
	}
	kind := connectors.Retryable
	if method == http.MethodPost {
		kind = connectors.OutcomeUnknown
	}
	msg := e.Message
	if msg == "" {
		msg = e.Code
	}
	return &connectors.Error{System: system, Op: op, Kind: kind, Status: resp.Status,
		Message: "the reply is an error, though its status is " + http.StatusText(resp.Status) + ": " + snippet([]byte(msg))}
}
