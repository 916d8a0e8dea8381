package connectors_test

import (
	"testing"

	"github.com/crmsync/crmsync/connectors"
)

func TestMatchesAllOneRuleForEveryType(t *testing.T) {
	fields := map[string]any{
		"Organization": map[string]any{"EmailAddress": " Info@Polar.example ", "Employees": float64(1000000)},
		"kvk":          float64(12345678),
		"active":       true,
		"empty":        "",
		"leads":        []any{map[string]any{"email": "a@x.example"}, map[string]any{"email": "b@x.example"}},
	}
	for _, c := range []struct {
		name  string
		match []connectors.Match
		want  bool
	}{
		{"nested string, case and spaces", []connectors.Match{{Field: "Organization.EmailAddress", Value: "info@polar.example"}}, true},
		{"a number matches its decimal text", []connectors.Match{{Field: "kvk", Value: "12345678"}}, true},
		{"a large number is not in exponent form", []connectors.Match{{Field: "Organization.Employees", Value: "1000000"}}, true},
		{"boolean", []connectors.Match{{Field: "active", Value: "TRUE"}}, true},
		{"any item of a list", []connectors.Match{{Field: "leads.email", Value: "b@x.example"}}, true},
		{"one item of a list by index", []connectors.Match{{Field: "leads.0.email", Value: "b@x.example"}}, false},
		{"AND of all matches", []connectors.Match{{Field: "kvk", Value: "12345678"}, {Field: "active", Value: "false"}}, false},
		{"missing field", []connectors.Match{{Field: "nope", Value: "x"}}, false},
		{"an empty value never matches, even an empty field", []connectors.Match{{Field: "empty", Value: " "}}, false},
		{"a map has no text", []connectors.Match{{Field: "Organization", Value: "map[]"}}, false},
	} {
		if got := connectors.MatchesAll(fields, c.match); got != c.want {
			t.Errorf("%s: MatchesAll = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestMatchesAllLooseForNames(t *testing.T) {
	fields := map[string]any{"Name": "ACME  BV"}
	if !connectors.MatchesAll(fields, []connectors.Match{{Field: "Name", Value: "Acme B.V.", Loose: true}}) {
		t.Error("a loose name match ignores punctuation and case")
	}
	if connectors.MatchesAll(fields, []connectors.Match{{Field: "Name", Value: "Acme B.V."}}) {
		t.Error("an exact match kept punctuation")
	}
	if connectors.MatchesAll(fields, []connectors.Match{{Field: "Name", Value: "Acme Ltd", Loose: true}}) {
		t.Error("a different legal form matched")
	}
}
