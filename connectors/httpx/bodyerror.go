package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/logkey"
)

// Do sends req and returns the 2xx response, or a *connectors.Error.
//
// A 2xx reply that fails the checks (Request.ErrorObjects, Request.Check)
// is not success: an idempotent request is sent again, with the same
// backoff and up to the same number of retries as a 5xx, because a gateway
// or an overloaded application answering 200 with an error is as passing as
// a 503; a POST is never sent again and its error is OutcomeUnknown.
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	if req.Check == nil && !req.ErrorObjects {
		return c.send(ctx, req)
	}
	for attempt := 0; ; attempt++ {
		resp, err := c.send(ctx, req)
		if err != nil {
			return nil, err
		}
		err = c.check(req, resp)
		if err == nil {
			return resp, nil
		}
		var ce *connectors.Error
		if !errors.As(err, &ce) || ce.Kind != connectors.Retryable {
			return nil, err
		}
		if ce.Status == 0 {
			ce.Status = resp.Status
		}
		if req.Method == http.MethodPost {
			ce.Kind = connectors.OutcomeUnknown
			return nil, ce
		}
		if attempt >= c.opts.RetryMax {
			return nil, ce
		}
		wait := c.backoff(c.opts.RetryWaitMin, c.opts.RetryWaitMax, attempt, nil)
		c.opts.Logger.Debug().Str(logkey.System, c.opts.System).Str(logkey.Op, ce.Op).Dur("wait", wait).Msg("2xx reply is not what was asked for; sending the request again")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ce
		}
	}
}

func (c *Client) check(req Request, resp *Response) error {
	if req.ErrorObjects {
		if err := ErrorInBody(c.opts.System, req.Method, OpName(req.Method, req.URL), resp); err != nil {
			return err
		}
	}
	if req.Check != nil {
		return req.Check(resp)
	}
	return nil
}

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
	if !bytes.Contains(resp.Body, []byte(`"error"`)) && !bytes.Contains(resp.Body, []byte(`\u`)) {
		return nil // no member "error", spelt plainly or escaped: nothing to decode (the common case, 14 µs a reply)
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
