package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

func mustParse(t testing.TB, src string) *Mapping {
	t.Helper()
	m, err := Parse("m.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func mustLoadExample(t testing.TB, sys string) *Mapping {
	t.Helper()
	m, err := Load(filepath.Join("..", "examples", "mappings", sys+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exampleLine finds the line of an example mapping that holds needle.
func exampleLine(t testing.TB, sys, needle string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "examples", "mappings", sys+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) == needle {
			return i + 1
		}
	}
	t.Fatalf("%s.yaml has no line %q", sys, needle)
	return 0
}

// fromJSON decodes fields the way connectors do (encoding/json into any).
func fromJSON(t testing.TB, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func problems(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got none")
	}
	var es *Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is a %T, want *Errors", err)
	}
	return err.Error()
}

func TestInboundErrorsListEveryProblem(t *testing.T) {
	t.Parallel()
	m := mustParse(t, `system: a
rules:
  - native: "@entity"
    values:
      companies: {kind: organization}
  - native: code
    type: integer
    values:
      1: {stage: suspect}
      2: {stage: lead}
  - native: name
    canonical: name
    required: true
  - native: active
    canonical: active
  - native: created
    canonical: created_at
  - native: org.vat
    canonical: vat_number
  - native: tags
    canonical: industry
  - native: size
    canonical: owner
    type: integer
`)
	_, err := m.Inbound(Native{Entity: "companies", Fields: fromJSON(t, `{
		"code": 7, "name": "  ", "active": "sometimes", "created": "last tuesday",
		"org": "ACME", "tags": ["a"], "size": 2.5}`)})
	want := strings.Join([]string{
		`m.yaml:6: native field code has the value 7, which no entry of the values map matches; expected one of: 1, 2 (add the value to the map if such records should be synced)`,
		`m.yaml:11: native field name is required, but the record (entity "companies") has no value for it`,
		`m.yaml:14: native field active: "sometimes" is not true or false (the rule has type boolean)`,
		`m.yaml:16: native field created: field created_at: "last tuesday" is not a timestamp (expected RFC 3339)`,
		`m.yaml:18: native field org holds "ACME"; expected an object holding vat`,
		`m.yaml:20: native field tags holds a list; expected a single value`,
		`m.yaml:22: native field size: 2.5 is not an integer (the rule has type integer)`,
	}, "\n")
	if got := problems(t, err); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	_, err = m.Inbound(Native{Entity: "people", Fields: fromJSON(t, `{"name": "X", "code": "1"}`)})
	want = `m.yaml:3: native field @entity has the value "people", which no entry of the values map matches; expected one of: companies (add the value to the map if such records should be synced)`
	if got := problems(t, err); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestInboundValueMapMatchesAsText(t *testing.T) {
	t.Parallel()
	m := mustLoadExample(t, "bluerocktel")
	for _, code := range []any{3.0, "3", " 3 ", json.Number("3")} {
		rec, err := m.Inbound(Native{Entity: "prospects", Fields: map[string]any{"name": "Acme", "prospection_code_id": code}})
		if err != nil {
			t.Fatalf("code %#v: %v", code, err)
		}
		if rec.Stage() != funnel.HotProspect {
			t.Errorf("code %#v: stage %q, want hot_prospect", code, rec.Stage())
		}
	}
	_, err := m.Inbound(Native{Entity: "prospects", Fields: map[string]any{"name": "Acme", "prospection_code_id": 3.5}})
	want := fmt.Sprintf(`%s:%d: native field prospection_code_id: "3.5" is not an integer, but the rule has type integer`, m.File, exampleLine(t, "bluerocktel", "- native: prospection_code_id"))
	if got := problems(t, err); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	// No code at all: no stage, not an error.
	rec, err := m.Inbound(Native{Entity: "prospects", Fields: map[string]any{"name": "Acme"}})
	if err != nil || rec.Stage() != "" || rec.Kind() != funnel.Organization {
		t.Errorf("record without a code: %v %v", rec, err)
	}
}

func TestInboundRecordShape(t *testing.T) {
	t.Parallel()
	m := mustLoadExample(t, "tribecrm")
	rec, err := m.Inbound(Native{Entity: "Relationship_Person_CommercialRelationship_Customer", Fields: fromJSON(t,
		`{"IsActive": true, "Person": {"FirstName": " Ada ", "LastName": "Lovelace"}, "Organization": {"Name": "ignored for persons"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID != "" || len(rec.Links) != 0 {
		t.Errorf("inbound record has identity: %+v", rec)
	}
	want := map[string]any{"kind": "person", "stage": "customer", "active": true, "first_name": "Ada", "last_name": "Lovelace", "name": "Ada Lovelace"}
	if !reflect.DeepEqual(rec.Fields, want) {
		t.Errorf("fields %v, want %v", rec.Fields, want)
	}
	// A person relationship without its Person is missing LastName.
	_, err = m.Inbound(Native{Entity: "Relationship_Person_CommercialRelationship_Customer", Fields: map[string]any{"Person": nil}})
	want2 := fmt.Sprintf(`%s:%d: native field Person.LastName is required, but the record (entity "Relationship_Person_CommercialRelationship_Customer") has no value for it`, m.File, exampleLine(t, "tribecrm", "- native: Person.LastName"))
	if got := problems(t, err); got != want2 {
		t.Errorf("got %s, want %s", got, want2)
	}
}

func TestInboundNeedsKind(t *testing.T) {
	t.Parallel()
	m := mustParse(t, `system: a
rules:
  - native: type
    values:
      org: {kind: organization}
  - native: name
    canonical: name
`)
	_, err := m.Inbound(Native{Entity: "x", Fields: map[string]any{"name": "Acme"}})
	if got, want := problems(t, err), `m.yaml:2: no rule gave the record a kind (entity "x"); expected a rule that sets kind for every record`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestOutboundErrors(t *testing.T) {
	t.Parallel()
	m := mustLoadExample(t, "tribecrm")
	rec := funnel.New("id-1")
	rec.Fields = map[string]any{"kind": "organization", "email": "x@y.z"}
	_, err := m.Outbound(rec)
	want := strings.Join([]string{
		fmt.Sprintf(`%s:%d: no entry of the values map for native field @entity matches the record's kind=organization stage=(none); expected one of: kind=organization stage=suspect; kind=organization stage=lead; kind=organization stage=hot_prospect; kind=organization stage=prospect; kind=organization stage=customer; kind=person stage=suspect; kind=person stage=lead; kind=person stage=hot_prospect; kind=person stage=prospect; kind=person stage=customer`, m.File, exampleLine(t, "tribecrm", `- native: "@entity"`)),
		fmt.Sprintf(`%s:%d: canonical field name is required for native field Organization.Name, but the record has no value for it`, m.File, exampleLine(t, "tribecrm", "- native: Organization.Name")),
	}, "\n")
	if got := problems(t, err); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}

	b := mustLoadExample(t, "bluerocktel")
	_, err = b.Outbound(&funnel.Record{Fields: map[string]any{"kind": "organization", "name": "Acme", "active": "yes"}})
	if got, want := problems(t, err), fmt.Sprintf(`%s:%d: native field active: field active: "yes" is not a boolean`, b.File, exampleLine(t, "bluerocktel", "- native: active")); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := b.Outbound(nil); err == nil {
		t.Error("Outbound(nil) succeeded")
	}
}

func TestOutboundValueMapChoosesFirstFullMatch(t *testing.T) {
	t.Parallel()
	m := mustParse(t, `system: a
rules:
  - canonical: kind
    default: organization
  - native: code
    type: integer
    values:
      10: {stage: lead}
      20: {stage: lead, active: true}
      30: {stage: customer}
      40: {stage: customer}
  - native: "@entity"
    default: things
    direction: outbound
`)
	cases := []struct {
		fields map[string]any
		want   any
	}{
		{map[string]any{"stage": "lead"}, 10.0},
		{map[string]any{"stage": "lead", "active": true}, 10.0}, // first in file order wins
		{map[string]any{"stage": "customer"}, 30.0},
		{map[string]any{}, nil}, // nothing to compute it from: left out
	}
	for _, tc := range cases {
		out, err := m.Outbound(&funnel.Record{Fields: tc.fields})
		if err != nil {
			t.Fatalf("%v: %v", tc.fields, err)
		}
		if got := out.Fields["code"]; got != tc.want {
			t.Errorf("%v: code %#v, want %#v", tc.fields, got, tc.want)
		}
		if out.Entity != "things" {
			t.Errorf("entity %q, want the constant", out.Entity)
		}
	}
	_, err := m.Outbound(&funnel.Record{Fields: map[string]any{"stage": "prospect"}})
	if got, want := problems(t, err), `m.yaml:5: no entry of the values map for native field code matches the record's stage=prospect active=(none); expected one of: stage=lead; stage=lead active=true; stage=customer; stage=customer`; got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestDefaultsAndDirections(t *testing.T) {
	t.Parallel()
	m := mustParse(t, `system: a
rules:
  - canonical: kind
    default: organization
  - native: country
    canonical: address.country
    default: France
  - native: code
    default: 1
    type: integer
    values:
      1: {stage: suspect}
      2: {stage: lead}
  - native: seen
    canonical: updated_at
    direction: inbound
  - native: note
    canonical: industry
    direction: outbound
`)
	rec, err := m.Inbound(Native{Fields: map[string]any{"country": "", "seen": "2026-03-01T10:00:00+02:00", "note": "not read"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"kind": "organization", "address.country": "France", "stage": "suspect", "updated_at": "2026-03-01T08:00:00Z"}
	if !reflect.DeepEqual(rec.Fields, want) {
		t.Errorf("inbound %v, want %v", rec.Fields, want)
	}
	out, err := m.Outbound(&funnel.Record{Fields: map[string]any{"kind": "organization", "industry": "Bakery", "updated_at": "2026-03-01T08:00:00Z"}})
	if err != nil {
		t.Fatal(err)
	}
	wantOut := map[string]any{"country": "France", "code": 1.0, "note": "Bakery"}
	if !reflect.DeepEqual(out.Fields, wantOut) {
		t.Errorf("outbound %v, want %v", out.Fields, wantOut)
	}
}

func TestNativePathAndCarries(t *testing.T) {
	t.Parallel()
	tribe := mustLoadExample(t, "tribecrm")
	for _, tc := range []struct {
		canonical string
		kind      funnel.Kind
		want      string
		ok        bool
	}{
		{"email", funnel.Organization, "Organization.EmailAddress", true},
		{"email", funnel.Person, "Person.EmailAddress", true},
		{"name", funnel.Organization, "Organization.Name", true},
		{"name", funnel.Person, "", false},
		{"registration_number", funnel.Person, "", false},
		{"active", funnel.Person, "IsActive", true},
		{"stage", funnel.Person, "", false},
	} {
		got, ok := tribe.NativePath(tc.canonical, tc.kind)
		if got != tc.want || ok != tc.ok {
			t.Errorf("tribecrm NativePath(%s, %s) = %q, %v; want %q, %v", tc.canonical, tc.kind, got, ok, tc.want, tc.ok)
		}
	}
	brt := mustLoadExample(t, "bluerocktel")
	if got, ok := brt.NativePath("vat_number", funnel.Organization); got != "tax_registration_number" || !ok {
		t.Errorf("bluerocktel vat_number: %q %v", got, ok)
	}
	over := mustLoadExample(t, "overplane")
	for field, want := range map[string]bool{"kind": true, "name": true, "owner": true, "stage": true, "email": true, "mobile": true, "phone": false, "created_at": true} {
		if got := over.Carries(field); got != want {
			t.Errorf("overplane Carries(%s) = %v, want %v", field, got, want)
		}
	}
	if !tribe.Carries("stage") || !tribe.Carries("mobile") || tribe.Carries("owner") {
		t.Error("tribecrm Carries is wrong")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	m := mustLoadExample(t, "tribecrm")
	n := readNative(t, filepath.Join("testdata", "tribecrm-organization", "native.json"))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				rec, err := m.Inbound(n)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := m.Outbound(rec); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func ExampleMapping_Inbound() {
	m, err := Parse("demo.yaml", []byte(`system: demo
rules:
  - canonical: kind
    default: organization
  - native: code
    type: integer
    values:
      1: {stage: lead}
      2: {stage: customer}
  - native: Company.Name
    canonical: name
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rec, err := m.Inbound(Native{Entity: "accounts", Fields: map[string]any{"code": 2.0, "Company": map[string]any{"Name": "Acme"}}})
	fmt.Println(rec.Kind(), rec.Stage(), rec.Str("name"), err)
	_, err = m.Inbound(Native{Entity: "accounts", Fields: map[string]any{"code": 9.0}})
	fmt.Println(err)
	// Output:
	// organization customer Acme <nil>
	// demo.yaml:5: native field code has the value 9, which no entry of the values map matches; expected one of: 1, 2 (add the value to the map if such records should be synced)
}
