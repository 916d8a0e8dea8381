package mapping

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// parseErrorCases lists every class of mistake an admin can make in a
// mapping file, with the exact problems Parse must report.
var parseErrorCases = []struct {
	name string
	yaml string
	want []string
}{
	{
		name: "empty",
		yaml: "",
		want: []string{
			"x.yaml:1: the file is empty; expected a mapping with the keys system and rules",
		},
	},
	{
		name: "comments only",
		yaml: `# nothing here
  # still nothing
`,
		want: []string{
			"x.yaml:1: the file holds only comments; expected a mapping with the keys system and rules",
		},
	},
	{
		name: "null document",
		yaml: `---
`,
		want: []string{
			"x.yaml:1: the file is empty; expected a mapping with the keys system and rules",
		},
	},
	{
		name: "two documents",
		yaml: `system: a
rules:
  - {canonical: kind, default: person}
---
system: b
`,
		want: []string{
			"x.yaml:4: a second YAML document starts here; a mapping file holds exactly one (remove the \"---\" separator)",
		},
	},
	{
		name: "syntax error",
		yaml: `system: a
rules:
  - native: [x
`,
		want: []string{
			"x.yaml:3: invalid YAML: did not find expected ',' or ']'",
		},
	},
	{
		name: "top level is a list",
		yaml: `- native: a
`,
		want: []string{
			"x.yaml:1: the file holds a list; expected a mapping with the keys system and rules",
		},
	},
	{
		name: "missing keys",
		yaml: `foo: bar
`,
		want: []string{
			"x.yaml:1: unknown top-level key \"foo\"; expected one of: system, rules",
			"x.yaml:1: the key system is missing; expected the system name, e.g. system: tribecrm",
			"x.yaml:1: the key rules is missing; expected a list of rules",
		},
	},
	{
		name: "unknown top-level key",
		yaml: `system: a
rule:
  - {canonical: kind, default: person}
`,
		want: []string{ // the "did you mean" says rules is missing: once
			"x.yaml:2: unknown top-level key \"rule\"; did you mean \"rules\"?",
		},
	},
	{
		name: "empty rules",
		yaml: `system: a
rules: []
`,
		want: []string{
			"x.yaml:2: rules is empty; expected at least one rule",
		},
	},
	{
		name: "unknown rule key",
		yaml: `system: a
rules:
  - canonical: kind
    default: person
  - native: name
    canonicl: name
`,
		want: []string{
			"x.yaml:6: unknown key \"canonicl\" in a rule; did you mean \"canonical\"?",
		},
	},
	{
		name: "wrong types",
		yaml: `system: a
rules:
  - canonical: kind
    default: person
  - native: [a, b]
    canonical: name
  - native: IsActive
    canonical: active
    required: maybe
  - native: x
    canonical: email
    transform: lower
  - {native: y, canonical: phone, direction: 3, required: sometimes}
`,
		want: []string{
			"x.yaml:5: native: found a list; expected a native field path as text, e.g. Organization.Name, or @entity",
			"x.yaml:9: required: found the text \"maybe\"; expected true or false",
			"x.yaml:12: transform: found the text \"lower\"; expected a list of transforms, e.g. [trim, lower]",
			"x.yaml:13: required: found the text \"sometimes\"; expected true or false",
		},
	},
	{
		name: "duplicate key",
		yaml: `system: a
rules:
  - canonical: kind
    default: person
    default: organization
`,
		want: []string{
			"x.yaml:5: key \"default\" is written twice (first at line 4); keep one",
		},
	},
	{
		name: "unknown canonical",
		yaml: `system: a
rules:
  - canonical: kind
    default: person
  - native: Email
    canonical: emial
  - native: Mail
    canonical: email_address
  - native: Zip
    canonical: zipcode
`,
		want: []string{
			"x.yaml:6: unknown canonical field \"emial\"; did you mean \"email\"?",
			"x.yaml:8: unknown canonical field \"email_address\"; did you mean \"email\"?",
			"x.yaml:10: unknown canonical field \"zipcode\"; expected one of: kind, stage, name, first_name, middle_name, last_name, email, phone, mobile, website, address.line1, address.line2, address.postal_code, address.city, address.country, industry, owner, active, closed, registration_number, vat_number, billing_email, fax, notes, revenue, employees, account_number, accepts_email, accepts_calls, created_at, updated_at",
		},
	},
	{
		name: "bad value map value",
		yaml: `system: a
rules:
  - native: "@entity"
    values:
      Lead: {kind: organization, stage: hotprospect}
      Person: {kind: human}
      Other: {colour: red}
      Empty: {}
      Null:
`,
		want: []string{
			"x.yaml:5: values key \"Lead\": field stage: hotprospect is not one of suspect, lead, hot_prospect, prospect, customer (did you mean \"hot_prospect\"?)",
			"x.yaml:6: values key \"Person\": field kind: human is not organization or person",
			"x.yaml:7: values key \"Other\": unknown canonical field \"colour\"; expected one of: kind, stage, name, first_name, middle_name, last_name, email, phone, mobile, website, address.line1, address.line2, address.postal_code, address.city, address.country, industry, owner, active, closed, registration_number, vat_number, billing_email, fax, notes, revenue, employees, account_number, accepts_email, accepts_calls, created_at, updated_at",
			"x.yaml:8: values key \"Empty\" sets no canonical field; expected e.g. {stage: lead}",
			"x.yaml:9: a values key is empty (null); write the native value, quoted if needed (an absent native value is handled by default)",
		},
	},
	{
		name: "values with canonical",
		yaml: `system: a
rules:
  - canonical: kind
    default: person
  - native: code
    canonical: stage
    values:
      1: {stage: lead}
`,
		want: []string{
			"x.yaml:8: a rule has canonical or values, not both: values sets canonical fields itself (remove canonical, or remove values)",
		},
	},
	{
		name: "inbound conflict",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - native: Name
    canonical: name
  - native: CompanyName
    canonical: name
  - native: "@entity"
    values:
      x: {kind: person}
`,
		want: []string{
			"x.yaml:7: canonical field name is also set inbound by the rule at line 5; two rules may set the same canonical field only under different when conditions (or make one of them direction: outbound)",
			"x.yaml:9: canonical field kind is also set inbound by the rule at line 3; two rules may set the same canonical field only under different when conditions (or make one of them direction: outbound)",
		},
	},
	{
		name: "outbound conflict",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - native: Name
    canonical: name
  - native: Name
    canonical: email
  - native: Org
    canonical: phone
  - native: Org.Phone
    canonical: mobile
`,
		want: []string{
			"x.yaml:7: native field Name is also written outbound by the rule at line 5; give them different when conditions, or make one of them direction: inbound",
			"x.yaml:11: native field Org.Phone lies inside Org, which the rule at line 9 writes outbound as a whole; give them different when conditions, or make one of them direction: inbound",
		},
	},
	{
		name: "disjoint when is fine but overlapping is not",
		yaml: `system: a
rules:
  - native: "@entity"
    values:
      org: {kind: organization}
      per: {kind: person}
  - native: Org.Name
    canonical: name
    when: {kind: organization}
  - native: Per.Name
    canonical: name
    when: {kind: person}
  - native: Org.Name
    canonical: industry
    when: {kind: person}
  - native: X
    canonical: name
    when: {stage: lead}
`,
		want: []string{
			"x.yaml:16: canonical field name is also set inbound by the rule at line 7; two rules may set the same canonical field only under different when conditions (or make one of them direction: outbound)",
			"x.yaml:16: canonical field name is also set inbound by the rule at line 10; two rules may set the same canonical field only under different when conditions (or make one of them direction: outbound)",
		},
	},
	{
		name: "rule shapes",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - native: lonely
  - canonical: name
  - {}
  - native: code
    values: {}
  - values: {1: {stage: lead}}
  - native: A
    canonical: email
    required: true
    default: x@y.z
  - canonical: owner
    default: me
    direction: outbound
  - native: company
    default: Me
    direction: inbound
  - canonical: industry
    default: x
    required: true
`,
		want: []string{
			"x.yaml:5: native field lonely is mapped to nothing; add canonical (or values), or a default to send as a constant",
			"x.yaml:6: canonical field name has no native field; add native, or a default to set it as a constant",
			"x.yaml:7: the rule maps nothing; expected native with canonical (or values), canonical with default (a constant set inbound), or native with default (a constant sent outbound)",
			"x.yaml:9: values is empty; expected native values with the canonical fields they set, e.g. {\"1\": {stage: suspect}}",
			"x.yaml:10: values needs native: the native field whose value is looked up in the map",
			"x.yaml:13: required and default exclude each other: with a default the value is never missing (remove one)",
			"x.yaml:17: a rule without native has nothing to send outbound; it sets a canonical constant inbound (use direction: inbound or remove direction)",
			"x.yaml:20: a rule without canonical or values has nothing to read inbound; it sends a native constant outbound (use direction: outbound or remove direction)",
			"x.yaml:23: required and default exclude each other: with a default the value is never missing (remove one)",
			"x.yaml:23: required needs native: it says the native field must hold a value",
		},
	},
	{
		name: "types transforms directions",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - native: A
    canonical: active
    type: integr
  - native: B
    canonical: created_at
    type: integer
  - native: C
    canonical: email
    transform: [lower, titlecase]
  - native: D
    canonical: closed
    transform: [trim]
  - native: E
    canonical: phone
    direction: both-ways
  - native: "@entity"
    type: integer
    default: 3
    direction: outbound
  - native: F
    canonical: name
    type: ""
`,
		want: []string{
			"x.yaml:7: type \"integr\" is not known; did you mean \"integer\"?",
			"x.yaml:10: type integer does not fit canonical field created_at, which is a time; expected string",
			"x.yaml:13: unknown transform \"titlecase\"; expected one of: trim, lower, upper, digits",
			"x.yaml:16: transforms change text, but canonical field closed is a bool; remove transform",
			"x.yaml:19: direction \"both-ways\" is not known; did you mean \"both\"?",
			"x.yaml:21: @entity is the entity name, always text; remove type",
			"x.yaml:26: type is empty; expected string, integer, number or boolean",
		},
	},
	{
		name: "native paths",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - native: "@type"
    canonical: name
  - native: Organization..Name
    canonical: email
  - native: "Organization Name"
    canonical: phone
  - native: .Name
    canonical: website
  - native: ""
    canonical: owner
`,
		want: []string{
			"x.yaml:5: unknown pseudo-field \"@type\"; the only pseudo-field is @entity (the record's entity or collection)",
			"x.yaml:7: native field path \"Organization..Name\" has an empty part; expected names separated by single dots, e.g. Organization.Name",
			"x.yaml:9: native field path \"Organization Name\" contains spaces; expected names separated by dots, e.g. Organization.Name",
			"x.yaml:11: native field path \".Name\" has an empty part; expected names separated by single dots, e.g. Organization.Name",
			"x.yaml:13: native is empty; expected a native field path such as Organization.Name, or @entity",
		},
	},
	{
		name: "defaults",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - canonical: stage
    default: warm
  - native: code
    type: integer
    default: 7
    values:
      1: {stage: lead}
      x: {stage: customer}
  - native: A
    canonical: created_at
    default: yesterday
  - native: B
    canonical: name
    default: [a, b]
  - native: C
    canonical: email
    default:
  - native: D
    canonical: active
    default: perhaps
`,
		want: []string{
			"x.yaml:6: default: field stage: warm is not one of suspect, lead, hot_prospect, prospect, customer",
			"x.yaml:12: values key \"x\": \"x\" is not an integer, but the rule has type integer",
			"x.yaml:15: default: field created_at: \"yesterday\" is not a timestamp (expected RFC 3339)",
			"x.yaml:18: default must be a single value, not a list",
			"x.yaml:21: default is empty; expected a value (quote it if it is text)",
			"x.yaml:24: default: \"perhaps\" is not true or false (the rule has type boolean)",
		},
	},
	{
		name: "when problems",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - native: A
    canonical: name
    when: {knd: person}
  - native: B
    canonical: email
    when: {kind: persn}
  - native: C
    canonical: phone
    when: {stage: }
`,
		want: []string{
			"x.yaml:7: when: unknown canonical field \"knd\"; did you mean \"kind\"?",
			"x.yaml:10: when: field kind: persn is not organization or person (did you mean \"person\"?)",
			"x.yaml:13: when: canonical field stage has no value; expected a value",
		},
	},
	{
		name: "no kind",
		yaml: `system: a
rules:
  - native: A
    canonical: name
`,
		want: []string{
			"x.yaml:2: no rule sets the canonical field kind inbound, but every record needs one; add a constant such as {canonical: kind, default: organization}, or a values map that sets kind",
		},
	},
	{
		name: "system problems",
		yaml: `system: TribeCRM
rules:
  - canonical: kind
    default: organization
`,
		want: []string{
			"x.yaml:1: system \"TribeCRM\" is not a valid system name; expected lower-case letters, digits, - or _, as the connector names it (e.g. tribecrm)",
		},
	},
	{
		name: "duplicate values keys",
		yaml: `system: a
rules:
  - native: code
    type: integer
    values:
      1: {kind: organization}
      "1": {kind: person}
      01: {kind: person}
  - native: B
    transform: [lower]
    values:
      Lead: {stage: lead}
      lead: {stage: suspect}
`,
		// The rule with the key written twice is still checked (yaml.v3
		// alone drops the whole values map): with type integer, 01 is the
		// native value of the "1" kept.
		want: []string{
			"x.yaml:7: key \"1\" is written twice (first at line 6); keep one",
			"x.yaml:8: values key \"01\" matches the same native value as the key at line 7; keep one",
			"x.yaml:13: values key \"lead\" matches the same native value as the key at line 12; keep one",
		},
	},
	{
		name: "key written three times",
		yaml: `system: a
rules:
  - canonical: kind
    default: person
    default: organization
    default: person
`,
		want: []string{
			"x.yaml:5: key \"default\" is written twice (first at line 4); keep one",
			"x.yaml:6: key \"default\" is written twice (first at line 4); keep one",
		},
	},
	{
		name: "system not text",
		yaml: `system: [a]
rules:
  - {canonical: kind, default: person}
`,
		want: []string{
			"x.yaml:1: system: found a list; expected the system name as text, e.g. tribecrm",
		},
	},
	{
		name: "tab before a list item",
		yaml: "system: a\nrules:\n\t- canonical: kind\n  - default: person\n",
		want: []string{
			"x.yaml:3: invalid YAML: found character that cannot start any token (indent with spaces, not tabs)",
		},
	},
	{
		name: "merged keys are checked",
		yaml: `system: a
base: &b
  canonicl: kind
rules:
  - {canonical: kind, default: person}
  - <<: *b
    native: x
  - <<: [x]
    native: y
`,
		want: []string{
			"x.yaml:2: unknown top-level key \"base\"; expected one of: system, rules",
			"x.yaml:3: unknown key \"canonicl\" in a rule; did you mean \"canonical\"?",
			"x.yaml:8: <<: found the text \"x\"; expected a section of keys to merge in (<<: *name) or a list of them",
		},
	},
	{
		name: "empty keys",
		yaml: `system: a
~: x
rules:
  - canonical: kind
    "": person
`,
		want: []string{
			"x.yaml:2: a key in the top level is empty; expected one of: system, rules",
			"x.yaml:5: a key in a rule is empty; expected one of: native, canonical, values, when, default, required, direction, type, transform, owner, lookup",
		},
	},
	{
		name: "null rule",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  -
  - just text
`,
		want: []string{
			"x.yaml:5: rule 2 is empty; expected a mapping with native and canonical (or values)",
			"x.yaml:6: a rule is the text \"just text\"; expected a mapping with native and canonical (or values)",
		},
	},
	{
		name: "tab",
		yaml: "system: a\nrules:\n  - native: x\n\t  canonical: y",
		want: []string{
			"x.yaml:4: invalid YAML: found a tab character that violates indentation (indent with spaces, not tabs)",
		},
	},
	{
		name: "misindent",
		yaml: `system: a
rules:
  - native: x
    canonical: name
  - native: y
   canonical: email
`,
		want: []string{
			"x.yaml:6: invalid YAML: did not find expected '-' indicator",
		},
	},
	{
		name: "wrong type for values and when",
		yaml: `system: a
rules:
  - canonical: kind
    default: organization
  - native: code
    values: [1, 2]
  - native: x
    canonical: name
    when: person
  - native: y
    values: {1: lead}
`,
		want: []string{
			"x.yaml:6: values: found a list; expected a mapping from native value to canonical fields, e.g. {\"1\": {stage: suspect}}",
			"x.yaml:9: when: found the text \"person\"; expected canonical fields with their values, e.g. {kind: person}",
			"x.yaml:11: values: found the text \"lead\"; expected canonical fields with their values, e.g. {kind: organization, stage: lead}",
		},
	},
	{
		name: "flow style wrong type",
		yaml: `system: a
rules:
  - {native: a, canonical: name, required: maybe}
  - {canonical: kind, default: person}
`,
		want: []string{
			"x.yaml:3: required: found the text \"maybe\"; expected true or false",
		},
	},
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range parseErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse("x.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse accepted the file (system %q)", m.System)
			}
			if m != nil {
				t.Errorf("Parse returned a mapping along with its error")
			}
			var es *Errors
			if !errors.As(err, &es) {
				t.Fatalf("error is a %T, want *Errors", err)
			}
			var got []string
			for _, e := range *es {
				if e.File != "x.yaml" || e.Line < 1 {
					t.Errorf("problem without file:line: %+v", e)
				}
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems differ\n--- got\n%s\n--- want\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if err.Error() != strings.Join(tc.want, "\n") {
				t.Errorf("Error() = %q, want the problems one per line", err.Error())
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path)
	var es *Errors
	if !errors.As(err, &es) || len(*es) != 1 {
		t.Fatalf("Load of a missing file: %v", err)
	}
	if want := path + ": cannot read the mapping file: no such file or directory"; err.Error() != want {
		t.Errorf("got %q, want %q", err.Error(), want)
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, []byte("system: a\nrules:\n  - canonical: kind\n    default: organization\n  - native: x\n    canonical: emial\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + `:6: unknown canonical field "emial"; did you mean "email"?`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestExamplesLoad(t *testing.T) {
	t.Parallel()
	for _, sys := range []string{"tribecrm", "bluerocktel", "overplane"} {
		path := filepath.Join("..", "examples", "mappings", sys+".yaml")
		m, err := Load(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if m.System != sys || m.File != path {
			t.Errorf("%s: System %q File %q", path, m.System, m.File)
		}
	}
}

func ExampleParse() {
	_, err := Parse("crm.yaml", []byte(`system: crm
rules:
  - canonical: kind
    default: organization
  - native: Email
    canonicl: email
  - native: Phase
    values:
      3: {stage: hotprospect}
`))
	fmt.Println(err)
	// Output:
	// crm.yaml:6: unknown key "canonicl" in a rule; did you mean "canonical"?
	// crm.yaml:9: values key "3": field stage: hotprospect is not one of suspect, lead, hot_prospect, prospect, customer (did you mean "hot_prospect"?)
}
