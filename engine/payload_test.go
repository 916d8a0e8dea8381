package engine

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestDiffThenMergeGivesTheNewPayload(t *testing.T) {
	t.Parallel()
	cases := []struct{ prev, next string }{
		{`{}`, `{"a":"1"}`},
		{`{"a":"1","b":2}`, `{"a":"1","b":3}`},
		{`{"Organization":{"Name":"Acme","EmailAddress":"x@a"}}`, `{"Organization":{"Name":"Acme BV","EmailAddress":"x@a"}}`},
		{`{"leads":{"0":{"email":"a@b","lead":"c"}}}`, `{"leads":{"0":{"email":"d@e","lead":"c"}}}`},
		{`{"a":"1","gone":"x"}`, `{"a":"1"}`},
		{`{"n":1}`, `{"n":1.0}`},
	}
	for _, tc := range cases {
		var prev, next map[string]any
		_ = json.Unmarshal([]byte(tc.prev), &prev)
		_ = json.Unmarshal([]byte(tc.next), &next)
		diff := DiffPayload(prev, next)
		if got := MergePayload(prev, diff); !reflect.DeepEqual(got, next) {
			t.Errorf("merge(%s, diff) = %v, want %s (diff %v)", tc.prev, got, tc.next, diff)
		}
	}
}

func TestDiffSendsOnlyChangedLeaves(t *testing.T) {
	t.Parallel()
	prev := map[string]any{"name": "Acme", "phone": "1", "Organization": map[string]any{"Name": "Acme", "Website": "w"}}
	next := map[string]any{"name": "Acme", "phone": "2", "Organization": map[string]any{"Name": "Acme BV", "Website": "w"}}
	want := map[string]any{"phone": "2", "Organization": map[string]any{"Name": "Acme BV"}}
	if got := DiffPayload(prev, next); !reflect.DeepEqual(got, want) {
		t.Fatalf("diff = %v, want %v", got, want)
	}
	if got := DiffPayload(next, next); len(got) != 0 {
		t.Fatalf("diff of equal payloads = %v, want nothing", got)
	}
}

func TestPresentOnlyDropsWhatTheRecordLacks(t *testing.T) {
	t.Parallel()
	payload := map[string]any{"company_name": "Acme", "company": "Us Ltd", "leads": map[string]any{"0": map[string]any{"lead": "crmsync-contact", "email": "a@b"}}}
	native := map[string]any{"company_name": "Acme", "company": "Us Ltd", "leads": []any{}}
	want := map[string]any{"company_name": "Acme", "company": "Us Ltd"}
	if got := PresentOnly(payload, native); !reflect.DeepEqual(got, want) {
		t.Fatalf("PresentOnly = %v, want %v", got, want)
	}
	native["leads"] = []any{map[string]any{"email": "a@b"}}
	want["leads"] = map[string]any{"0": map[string]any{"email": "a@b"}}
	if got := PresentOnly(payload, native); !reflect.DeepEqual(got, want) {
		t.Fatalf("PresentOnly with a lead row = %v, want %v", got, want)
	}
}

func TestNormalizeMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ field, a, b string }{
		{"name", "Acme B.V.", "ACME BV"},
		{"name", "  Acme   Trading, Ltd ", "acme trading ltd"},
		{"email", " Info@Acme.Example ", "info@acme.example"},
	} {
		if NormalizeMatch(tc.field, tc.a) != NormalizeMatch(tc.field, tc.b) {
			t.Errorf("%s: %q and %q should match", tc.field, tc.a, tc.b)
		}
	}
	if NormalizeMatch("name", "Rapid River BV") == NormalizeMatch("name", "Rapid River Ltd") {
		t.Error("different legal forms must not match")
	}
}

// FuzzDiffMerge: for any two JSON objects without nulls, merging the diff
// into the old payload gives the new one (empty nested objects aside), and
// diffing equal payloads gives nothing.
func FuzzDiffMerge(f *testing.F) {
	f.Add(`{"a":"1","b":{"c":2}}`, `{"a":"2","b":{"c":2,"d":"x"}}`)
	f.Add(`{}`, `{"x":true}`)
	f.Fuzz(func(t *testing.T, a, b string) {
		var prev, next map[string]any
		if json.Unmarshal([]byte(a), &prev) != nil || json.Unmarshal([]byte(b), &next) != nil || hasNil(prev) || hasNil(next) {
			return
		}
		// An empty nested object holds nothing: payloads built by mappings
		// never contain one, and merging treats it as absent.
		if got := MergePayload(prev, DiffPayload(prev, next)); canon(pruneEmpty(got)) != canon(pruneEmpty(next)) {
			t.Fatalf("merge(prev, diff(prev, next)) = %v, want %v", got, next)
		}
		if d := DiffPayload(next, next); len(d) != 0 {
			t.Fatalf("diff of equal payloads = %v", d)
		}
	})
}

func hasNil(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		for _, e := range x {
			if hasNil(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasNil(e) {
				return true
			}
		}
	}
	return false
}

func pruneEmpty(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if vm, ok := v.(map[string]any); ok {
			if p := pruneEmpty(vm); len(p) > 0 {
				out[k] = p
			}
			continue
		}
		out[k] = v
	}
	return out
}
