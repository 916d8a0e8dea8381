package httpx

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
)

type testEnvelope struct {
	NextLink string `json:"@odata.nextLink"`
	Count    *int   `json:"@odata.count"`
}

func TestDecodeListAcceptsPages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		ids        []string
		next       string
	}{
		{"empty array", `{"value":[]}`, []string{}, ""},
		{"empty array with members", " \n{\"@odata.count\":0, \"value\" : [ ] }\n", []string{}, ""},
		{"rows and nextLink", `{"@odata.context":"$metadata#X","value":[{"ID":"a"},{"ID":"b"}],"@odata.nextLink":"X?$skip=2"}`, []string{"a", "b"}, "X?$skip=2"},
		{"nested value keys are not top-level", `{"value":[{"ID":"a","value":null,"x":{"value":1}}],"meta":{"value":{}}}`, []string{"a"}, ""},
		{"other duplicate members keep the last", `{"@odata.nextLink":"one","value":[],"@odata.nextLink":"two"}`, []string{}, "two"},
		{"envelope names match as encoding/json does", `{"value":[],"@ODATA.NEXTLINK":"x"}`, []string{}, "x"},
		{"escaped member names", `{"v\u0061lue":[{"ID":"a"}],"@odata.next\u004cink":"\u0078<&>"}`, []string{"a"}, "x<&>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env testEnvelope
			items, err := DecodeList[map[string]any]("sys", "GET /v1/x", []byte(tc.body), "value", &env)
			if err != nil {
				t.Fatal(err)
			}
			if items == nil || len(items) != len(tc.ids) {
				t.Fatalf("items %#v, want %d", items, len(tc.ids))
			}
			for i, id := range tc.ids {
				if items[i]["ID"] != id {
					t.Errorf("item %d = %v, want ID %s", i, items[i], id)
				}
			}
			if env.NextLink != tc.next {
				t.Errorf("nextLink %q, want %q", env.NextLink, tc.next)
			}
		})
	}
	raws, err := DecodeList[json.RawMessage]("sys", "op", []byte(`{"data":[1,"x",{"a":true}]}`), "data", nil)
	if err != nil || len(raws) != 3 || string(raws[2]) != `{"a":true}` {
		t.Fatalf("raw elements: %q, %v", raws, err)
	}
}

func TestDecodeListRejectsRepliesWithoutTheirArray(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, body, msg string }{
		{"error object", `{"error":{"code":"500","message":"x"}}`, `reply has no "value" array (top-level members: "error")`},
		{"empty object", `{}`, `reply has no "value" array (empty object)`},
		{"many members", `{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7}`, `"a", "b", "c", "d", "e", and 2 more`},
		{"wrong case", `{"Value":[]}`, `reply has no "value" array (top-level members: "Value")`},
		{"only nested", `{"d":{"value":[]}}`, `reply has no "value" array`},
		{"null", `{"value":null}`, `"value" is null`},
		{"object", `{"value":{"ID":"a"}}`, `"value" is not an array but an object`},
		{"string", `{"value":"[]"}`, `"value" is not an array but a string`},
		{"number", `{"value":0}`, `"value" is not an array but a number`},
		{"boolean", `{"value":false}`, `"value" is not an array but a boolean`},
		{"twice, last empty", `{"value":[{"ID":"a"}],"value":[]}`, `"value" appears twice`},
		{"twice, last null", `{"value":[],"@odata.count":1,"value":null}`, `"value" appears twice`},
		{"twice, once escaped", `{"value":[{"ID":"a"}],"v\u0061lue":[]}`, `"value" appears twice`},
		{"top-level array", `[]`, `reply is not a JSON object but an array`},
		{"top-level rows", `[{"ID":"a"}]`, `reply is not a JSON object but an array`},
		{"top-level null", `null`, `reply is not a JSON object but null`},
		{"top-level string", `"value"`, `reply is not a JSON object but a string`},
		{"top-level number", `42`, `reply is not a JSON object but a number`},
		{"empty body", ``, `reply is empty, not a JSON object`},
		{"blank body", " \n", `reply is empty, not a JSON object`},
		{"html", `<html><body>Bad gateway</body></html>`, `reply is not a JSON object: invalid character '<'`},
		{"truncated", `{"value":[{"ID":"a"}`, `reply is not valid JSON`},
		{"trailing data", `{"value":[]} {"value":[]}`, `reply has more after its JSON object`},
		{"element of the wrong type", `{"value":[{"ID":"a"},7]}`, `"value": json: cannot unmarshal number`},
		{"envelope of the wrong type", `{"value":[],"@odata.count":"many"}`, `reply envelope: json: cannot unmarshal string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env testEnvelope
			items, err := DecodeList[map[string]any]("tribecrm", "GET /v1/odata/Relation_Organization", []byte(tc.body), "value", &env)
			if items != nil {
				t.Errorf("items %v returned with the error", items)
			}
			var ce *connectors.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *connectors.Error", err)
			}
			if !connectors.IsRetryable(err) || ce.System != "tribecrm" || ce.Op != "GET /v1/odata/Relation_Organization" || ce.Status != 0 || ce.Err != nil {
				t.Errorf("error %+v, want retryable tribecrm GET /v1/odata/Relation_Organization", ce)
			}
			if !strings.Contains(ce.Message, tc.msg) {
				t.Errorf("message %q, want it to contain %q", ce.Message, tc.msg)
			}
			if strings.Contains(ce.Error(), `"x"`) || strings.Contains(ce.Error(), "Bad gateway") {
				t.Errorf("error quotes the reply's values: %v", ce)
			}
		})
	}
}

func TestDecodeListLongMemberNamesAreCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 100)
	_, err := DecodeList[any]("s", "op", []byte(`{"`+long+`":1}`), "data", nil)
	var ce *connectors.Error
	if !errors.As(err, &ce) || strings.Contains(ce.Message, long) || !strings.Contains(ce.Message, strings.Repeat("é", 40)+"…") {
		t.Fatalf("message %v", err)
	}
}

func TestOpNameMatchesDo(t *testing.T) {
	t.Parallel()
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	defer srv.Close()
	u := srv.URL + "/v1/odata/Relation_Person?$filter=ID%20eq%201&$top=1"
	_, err := newClient(Options{RetryMax: -1}).Do(t.Context(), Request{Method: http.MethodGet, URL: u})
	var ce *connectors.Error
	if errors.As(err, &ce) {
		got = ce.Op
	}
	if want := OpName(http.MethodGet, u); got != want || want != "GET /v1/odata/Relation_Person" {
		t.Fatalf("Do names the request %q, OpName %q", got, want)
	}
}
