package emulator

import (
	"strings"
	"testing"
	"time"
)

// filterFixture builds a store with one organisation lead and one person
// lead to evaluate filters against.
func filterFixture(t testing.TB) (*store, *entity, *entity) {
	t.Helper()
	st := newStore()
	addr := &entity{set: setAddress, typ: st.sets[setAddress].typ, id: "0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0004", nav: map[string]string{},
		props: map[string]any{"Street": "Meir", "HouseNumber": 1.0, "Postalcode": "2000", "City": "Antwerp"}}
	st.add(addr)
	org := &entity{set: relationOrganization, typ: st.sets[relationOrganization].typ, id: "0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0001", nav: map[string]string{"VisitingAddress": addr.id},
		props: map[string]any{"Name": "O'Brien & Sons BV", "EmailAddress": "Info@OBrien.example", "PhoneNumber": nil, "Website": "https://obrien.example",
			"VatNumber": nil, "ChamberOfCommerceNumber": nil, "ImportId": nil, "SortIndex": 1.0,
			"CreationDate":     time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC),
			"LastMutationDate": time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)}}
	st.add(org)
	lead := &entity{set: funnelSet(flavourOrganization, "Lead"), id: "0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0002", nav: map[string]string{"Organization": org.id},
		props: map[string]any{"Name": "a+b lead", "ImportId": nil, "IsActive": true, "IsClosed": false, "SortIndex": 2.0,
			"CreationDate":     time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC),
			"LastMutationDate": time.Date(2026, 1, 2, 10, 0, 0, 123e6, time.UTC)}}
	lead.typ = st.sets[lead.set].typ
	st.add(lead)
	person := &entity{set: relationPerson, typ: st.sets[relationPerson].typ, id: "0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0003", nav: map[string]string{},
		props: map[string]any{"FirstName": "Anna", "MiddleName": "de", "LastName": "Vries", "EmailAddress": "anna@x.example"}}
	st.add(person)
	return st, lead, person
}

func TestFilterTable(t *testing.T) {
	t.Parallel()
	st, lead, _ := filterFixture(t)
	typ := lead.typ
	cases := []struct {
		filter string
		want   bool
	}{
		{"IsActive eq true", true},
		{"IsActive eq false", false},
		{"IsClosed ne true", true},
		{"Name eq 'a+b lead'", true},
		{"Name eq 'A+B LEAD'", false}, // eq is case-sensitive
		{"tolower(Name) eq 'a+b lead'", true},
		{"toupper(Name) eq 'A+B LEAD'", true},
		{"contains(Name,'B LE')", true}, // string functions are case-insensitive
		{"startswith(Name, 'A+')", true},
		{"endswith(Name,'LEAD')", true},
		{"length(Name) eq 8", true},
		{"trim('  x ') eq 'x'", true},
		{"ImportId eq null", true},
		{"ImportId ne null", false},
		{"null eq ImportId", true},
		{"SortIndex gt 1", true},
		{"SortIndex ge 2.0", true},
		{"SortIndex lt 2", false},
		{"SortIndex le -1", false},
		{"SortIndex eq 2e0", true},
		{"LastMutationDate gt 2026-01-02T10:00:00Z", true},
		{"LastMutationDate eq 2026-01-02T10:00:00.123Z", true},
		{"LastMutationDate eq 2026-01-02T11:00:00.123+01:00", true},
		{"LastMutationDate lt 2026-01-02T10:00:00.124", true},
		{"CreationDate ge 2026-01-02", true},
		{"CreationDate lt 2026-01-02", false},
		{"ID eq 0B6A3C1E-8C9F-4C1A-9A57-6B0F3F3F0002", true},
		{"ID gt 0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0001", true},
		{"Organization/ID eq 0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0001", true},
		{"Organization/Name eq 'O''Brien & Sons BV'", true},
		{"tolower(Organization/EmailAddress) eq 'info@obrien.example'", true},
		{"Organization/PhoneNumber eq null", true},
		{"Organization/VisitingAddress/City eq 'Antwerp'", true},
		{"Organization ne null", true},
		{"Status eq null", true},
		{"Status/Code eq 'NEW'", false},
		{"not (IsActive eq true)", false},
		{"not contains(Name,'zzz')", true},
		{"IsActive eq true and (Name eq 'x' or SortIndex eq 2)", true},
		{"IsActive eq false or Name eq 'x' or SortIndex eq 2", true},
		{"(IsActive eq false or Name eq 'x') and SortIndex eq 2", false},
		{"LastMutationDate gt 2026-01-02T10:00:00.123Z or (LastMutationDate eq 2026-01-02T10:00:00.123Z and ID gt 0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0001)", true},
		{"LastMutationDate gt 2026-01-02T10:00:00.123Z or (LastMutationDate eq 2026-01-02T10:00:00.123Z and ID gt 0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0002)", false},
		{"\tIsActive\teq\ttrue ", true},
	}
	for _, tc := range cases {
		f, err := compileFilter(tc.filter, typ)
		if err != nil {
			t.Errorf("%q: unexpected error %v", tc.filter, err)
			continue
		}
		if got := f.match(st, lead); got != tc.want {
			t.Errorf("%q = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestFilterRejects(t *testing.T) {
	t.Parallel()
	st := newStore()
	typ := st.sets[funnelSet(flavourOrganization, "Lead")].typ
	cases := map[string]string{
		"":                             "empty",
		"Nope eq 1":                    "Nope",
		"Organization/Nope eq 'x'":     "Nope",
		"Person/LastName eq 'x'":       "Person", // not on an organisation set
		"Name in ('a','b')":            "'in'",
		"Name has 'a'":                 "'has'",
		"Name+eq+'x'":                  "'+'", // '+' is not a space
		"Name eq 'x":                   "Unterminated",
		"Name eq":                      "end of expression",
		"(Name eq 'x'":                 "')'",
		"Name eq 'x')":                 "Unexpected",
		"Name eq 1":                    "Incompatible",
		"CreationDate gt '2026-01-01'": "Incompatible",
		"ID eq '0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0001'": "Incompatible",
		"IsActive and Name":                            "Edm.Boolean",
		"Name":                                         "Edm.Boolean",
		"frobnicate(Name)":                             "not supported",
		"contains(Name)":                               "argument",
		"Organization eq 'x'":                          "Incompatible",
		"Organization gt null":                         "structured",
		"SortIndex add 1 eq 2":                         "arithmetic",
		"Name eq 'a' eq 'b'":                           "Unexpected",
		"2026-13-45T99:00:00Z eq CreationDate":         "Invalid literal",
		"Name eq #":                                    "Unexpected character",
		strings.Repeat("(", 100) + "IsActive eq true" + strings.Repeat(")", 100): "nested too deeply",
		strings.Repeat("not ", 100) + "IsActive":                                 "nested too deeply",
	}
	for in, want := range cases {
		_, err := compileFilter(in, typ)
		if err == nil {
			t.Errorf("%q: expected an error", in)
			continue
		}
		if _, ok := err.(*queryError); !ok {
			t.Errorf("%q: error %T is not a queryError", in, err)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %q does not mention %q", in, err, want)
		}
	}
}

func TestOrderByParse(t *testing.T) {
	t.Parallel()
	st, lead, _ := filterFixture(t)
	items, err := parseOrderBy("LastMutationDate asc, ID desc,Organization/Name", lead.typ)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].desc || !items[1].desc || items[2].desc {
		t.Fatalf("unexpected items %+v", items)
	}
	if v := st.pathValue(lead, items[2].path.segs); v != "O'Brien & Sons BV" {
		t.Fatalf("path value %v", v)
	}
	for _, bad := range []string{"Nope", "Name sideways", "Organization", "Name asc desc", "", "Na-me"} {
		if _, err := parseOrderBy(bad, lead.typ); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
}

// FuzzParseFilter checks that no input makes the parser, binder or
// evaluator panic. Run with: go test -fuzz=FuzzParseFilter ./connectors/tribecrm/emulator/
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"IsActive eq true", "Name eq 'O''Brien'", "contains(Name,'x') and not (SortIndex lt 2)",
		"LastMutationDate gt 2026-01-02T10:00:00.123Z or (LastMutationDate eq 2026-01-02T10:00:00.123Z and ID gt 0b6a3c1e-8c9f-4c1a-9a57-6b0f3f3f0001)",
		"Organization/VisitingAddress/City eq 'Antwerp'", "tolower(Organization/EmailAddress) eq 'a@b'",
		"Name in ('a')", "(((", "'", "-1e309 eq SortIndex", "2026-01-01T00:00:00+01:00 le CreationDate",
	} {
		f.Add(s)
	}
	st, lead, person := filterFixture(f)
	f.Fuzz(func(t *testing.T, s string) {
		fe, err := compileFilter(s, lead.typ)
		if err == nil {
			fe.match(st, lead)
			fe.match(st, person) // wrong type on purpose: must not panic either
		}
		if _, err := parseOrderBy(s, lead.typ); err == nil {
			st.sorted([]*entity{lead, lead}, nil)
		}
	})
}
