package mapping

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

// compileRuleCases pin the problems compileRule reports that the cases in
// errors_test.go leave out, and the order of several problems on one line.
var compileRuleCases = []struct {
	name string
	yaml string
	want []string
}{
	{
		name: "direction empty",
		yaml: "  - {canonical: kind, default: person, direction: \"\"}\n",
		want: []string{"x.yaml:3: direction is empty; expected both, inbound or outbound"},
	},
	{
		name: "canonical empty",
		yaml: "  - {native: X, canonical: \"\"}\n",
		want: []string{"x.yaml:3: canonical is empty; expected a canonical field name (" + strings.Join(funnel.FieldNames(), ", ") + ")"},
	},
	{
		name: "transform on a constant",
		yaml: "  - {canonical: kind, default: person, transform: [trim]}\n",
		want: []string{"x.yaml:3: transform has no effect on a constant; write the default as it should be"},
	},
	{
		name: "transform on an integer value map",
		yaml: "  - {native: X, type: integer, values: {\"1\": {kind: person}}, transform: [trim]}\n",
		want: []string{"x.yaml:3: transforms change text, but this value map matches integer values; remove transform"},
	},
	{
		name: "value map default of the wrong type",
		yaml: "  - {native: X, type: integer, values: {\"1\": {kind: person}}, default: abc}\n",
		want: []string{`x.yaml:3: default "abc": "abc" is not an integer, but the rule has type integer`},
	},
	{
		name: "value map default not a key",
		yaml: "  - {native: X, values: {a: {kind: person}, b: {kind: organization}}, default: c}\n",
		want: []string{`x.yaml:3: default "c" is not one of the values keys; expected one of: a, b`},
	},
	{
		name: "canonical default blank",
		yaml: "  - {canonical: kind, default: person}\n  - {canonical: name, default: \" \"}\n",
		want: []string{"x.yaml:4: default is empty; expected a value"},
	},
	{
		name: "native default of the wrong type",
		yaml: "  - {canonical: kind, default: person}\n  - {native: X, type: integer, default: abc}\n",
		want: []string{`x.yaml:4: default: "abc" is not an integer, but the rule has type integer`},
	},
	{
		name: "native default blank",
		yaml: "  - {canonical: kind, default: person}\n  - {native: X, default: \" \"}\n",
		want: []string{"x.yaml:4: default is empty; expected a value"},
	},
	{
		name: "entity default not text",
		yaml: "  - {canonical: kind, default: person}\n  - {native: \"@entity\", default: 5}\n",
		want: []string{"x.yaml:4: default for @entity must be an entity name (text), not 5"},
	},
	{
		name: "order of problems on one line: keys",
		yaml: "  - {native: \"a b\", canonical: nme, direction: sideways, type: text, transform: [lwer], owner: true, required: true, default: [1]}\n",
		want: []string{
			`x.yaml:3: direction "sideways" is not known; expected one of: both, inbound, outbound`,
			`x.yaml:3: native field path "a b" contains spaces; expected names separated by dots, e.g. Organization.Name`,
			`x.yaml:3: unknown canonical field "nme"; did you mean "name"?`,
			"x.yaml:3: default must be a single value, not a list",
			`x.yaml:3: type "text" is not known; expected one of: string, integer, number, boolean`,
			`x.yaml:3: unknown transform "lwer"; did you mean "lower"?`,
		},
	},
	{
		name: "order of problems on one line: combinations",
		yaml: "  - {canonical: kind, default: person, direction: outbound, required: true, owner: true, transform: [trim], type: integer}\n",
		want: []string{
			"x.yaml:3: owner needs an inbound rule with native: it says this system's value for the canonical field always wins",
			"x.yaml:3: required and default exclude each other: with a default the value is never missing (remove one)",
			"x.yaml:3: required needs native: it says the native field must hold a value",
			"x.yaml:3: a rule without native has nothing to send outbound; it sets a canonical constant inbound (use direction: inbound or remove direction)",
			"x.yaml:3: type integer does not fit canonical field kind, which is a kind (organization|person); expected string",
			"x.yaml:3: transform has no effect on a constant; write the default as it should be",
		},
	},
}

func TestCompileRuleProblems(t *testing.T) {
	t.Parallel()
	for _, tc := range compileRuleCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte("system: a\nrules:\n"+tc.yaml))
			var es *Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is %T %v, want *Errors", err, err)
			}
			if got, want := err.Error(), strings.Join(tc.want, "\n"); got != want {
				t.Errorf("problems differ\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

// TestCompileRuleResults pins what some rules compile to.
func TestCompileRuleResults(t *testing.T) {
	t.Parallel()
	m := mustParse(t, `system: a
rules:
  - {canonical: kind, default: person}
  - {native: Active, canonical: active, type: boolean, direction: both}
  - {native: Stage, type: integer, values: {"1": {stage: lead}, "02": {stage: suspect}}, default: 2}
  - {native: Code, direction: outbound, values: {a: {stage: lead}}, default: zz}
  - {native: Count, default: 3}
  - {native: Name, canonical: name, transform: [trim, lower], when: {kind: person}}
`)
	r := m.rules
	if len(r) != 6 {
		t.Fatalf("%d rules, want 6", len(r))
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	check("kind constant", []any{r[0].hasDefault, r[0].inDefault, r[0].outDefault}, []any{true, "person", nil})
	check("active dir, typ", []any{r[1].dir, r[1].typ}, []any{dirBoth, typeBoolean})
	check("stage values", r[2].values, []valueEntry{
		{raw: "1", key: "1", out: 1.0, set: []cond{{field: "stage", value: "lead"}}, line: 5},
		{raw: "02", key: "2", out: 2.0, set: []cond{{field: "stage", value: "suspect"}}, line: 5},
	})
	check("stage default", []any{r[2].inDefault, r[2].outDefault}, []any{"2", 2.0})
	check("outbound-only value map default", []any{r[3].inDefault, r[3].outDefault}, []any{nil, "zz"})
	check("native constant", []any{r[4].typ, r[4].outDefault, r[4].path}, []any{typeInteger, 3.0, []string{"Count"}})
	check("transforms", r[5].transforms, []transform{tTrim, tLower})
	check("when", r[5].when, []cond{{field: "kind", value: "person"}})
	check("inbound order", m.inbound[len(m.inbound)-1], r[5])
}
