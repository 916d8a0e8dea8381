package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/crmsync/crmsync/connectors"
)

// OpName names a request the way Do does when Request.Op is empty:
// "GET /v1/odata/Relation_Organization" (method and URL path, no query).
func OpName(method, rawURL string) string { return method + " " + pathOf(rawURL) }

// DecodeList reads the body of a 2xx list reply: a JSON object that holds
// the list's elements in an array under key (OData's "value", Laravel's
// paginator "data", Overplane's "data"). It returns the elements decoded as
// T and, when envelope is not nil, decodes the reply's other top-level
// members (@odata.nextLink, has_more, last_page, ...) into envelope with
// encoding/json, as unmarshalling the whole body would (case-insensitive
// field names, the last of two equal names wins).
//
// A body that is not such a list is never an empty page. When the body is
// not a JSON object, has no member key, has it null or not an array, or has
// it more than once at the top level (encoding/json would silently keep the
// last one), DecodeList returns a *connectors.Error of Kind Retryable with
// System system, Op op (name the request, see OpName) and a Message saying
// what is wrong; so does an element that does not decode as T. The message
// quotes no member values. An empty array is a valid empty list.
func DecodeList[T any](system, op string, body []byte, key string, envelope any) ([]T, error) {
	fail := func(format string, args ...any) error {
		return &connectors.Error{System: system, Op: op, Kind: connectors.Retryable, Message: fmt.Sprintf(format, args...)}
	}
	raw, rest, msg := collection(body, key)
	if msg != "" {
		return nil, fail("%s", msg)
	}
	items := []T{}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fail("%q: %v", key, err)
	}
	if envelope != nil {
		if err := json.Unmarshal(rest, envelope); err != nil {
			return nil, fail("reply envelope: %v", err)
		}
	}
	return items, nil
}

// maxNamed is how many other top-level member names a "no array" message lists.
const maxNamed = 5

// collection walks the top-level object of body and returns the raw array
// under key and an object of the other top-level members in their order
// (so that decoding the envelope does not scan the array again), or a
// message saying why there is no such array.
func collection(body []byte, key string) (coll, rest json.RawMessage, msg string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return nil, nil, "reply is empty, not a JSON object"
	case err != nil:
		return nil, nil, "reply is not a JSON object: " + err.Error()
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, "reply is not a JSON object but " + tokenKind(tok)
	}
	var (
		found  bool
		others []string
		env    = []byte{'{'}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, "reply is not valid JSON: " + err.Error()
		}
		name, _ := tok.(string) // the decoder only lets strings through as keys
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, "reply is not valid JSON: " + err.Error()
		}
		switch {
		case name == key && found:
			return nil, nil, fmt.Sprintf("%q appears twice", key)
		case name == key:
			coll, found = v, true
		default:
			others = append(others, name)
			if len(env) > 1 {
				env = append(env, ',')
			}
			k, _ := json.Marshal(name) // a string always encodes
			env = append(append(append(env, k...), ':'), v...)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, nil, "reply is not valid JSON: " + err.Error()
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, "reply has more after its JSON object"
	}
	if !found {
		return nil, nil, fmt.Sprintf("reply has no %q array (%s)", key, describeMembers(others))
	}
	switch coll[0] { // the decoder hands out values without leading space
	case '[':
		return coll, append(env, '}'), ""
	case 'n':
		return nil, nil, fmt.Sprintf("%q is null", key)
	}
	return nil, nil, fmt.Sprintf("%q is not an array but %s", key, valueKind(coll[0]))
}

func describeMembers(names []string) string {
	if len(names) == 0 {
		return "empty object"
	}
	q := make([]string, 0, maxNamed)
	for i, n := range names {
		if i == maxNamed {
			q = append(q, fmt.Sprintf("and %d more", len(names)-maxNamed))
			break
		}
		if r := []rune(n); len(r) > 40 {
			n = string(r[:40]) + "…"
		}
		q = append(q, fmt.Sprintf("%q", n))
	}
	return "top-level members: " + strings.Join(q, ", ")
}

func tokenKind(tok json.Token) string {
	switch x := tok.(type) {
	case json.Delim:
		if x == '[' {
			return "an array"
		}
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case float64, json.Number:
		return "a number"
	}
	return fmt.Sprintf("%v", tok)
}

func valueKind(first byte) string {
	switch first {
	case '{':
		return "an object"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}
