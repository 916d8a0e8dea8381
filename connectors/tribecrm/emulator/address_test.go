package emulator

import (
	"strings"
	"testing"
)

// TestAddressesAreEntities: Address and Datastore_Country are entity sets
// of their own (developer.tribecrm.nl docs/api/entities/addresses,
// docs/api/datastores/countries); an organisation reaches its addresses
// through VisitingAddress/PostalAddress and a person through Address, read
// with a nested $expand as the vendor's MCP server writes it.
func TestAddressesAreEntities(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 20})
	tenant := e.em.TenantID()

	// Every seeded organisation has a visiting address with a country.
	st, body := e.raw(t, "GET", "/v1/odata/"+orgLead+"?$expand=Organization($select=Name,PhoneNumber;$expand=VisitingAddress($expand=Country))", nil)
	if st != 200 {
		t.Fatalf("nested expand: %d %v", st, body)
	}
	for _, v := range body["value"].([]any) {
		row := v.(map[string]any)
		if field(row, "Organization.VisitingAddress.Street") == nil || field(row, "Organization.VisitingAddress.Country.Code") == nil ||
			field(row, "Organization.EmailAddress") != nil {
			t.Fatalf("expanded row: %v", row)
		}
	}
	st, body = e.raw(t, "GET", "/v1/odata/"+setCountry+"?$filter=Code%20eq%20'BE'", nil)
	if st != 200 || len(body["value"].([]any)) != 1 {
		t.Fatalf("country by Code: %d %v", st, body)
	}
	belgium := body["value"].([]any)[0].(map[string]any)["ID"].(string)

	// A separate Address create, then a bind by @odata.bind.
	st, addr := e.raw(t, "POST", "/v1/odata/Address", map[string]any{
		"Street": "Meir", "HouseNumber": 12.0, "HouseNumberSuffix": "B", "Postalcode": "2000", "City": "Antwerp",
		"Country@odata.bind": "Datastore_Country(" + belgium + ")",
	})
	if st != 201 || addr["_Type"] != "Address" {
		t.Fatalf("create address: %d %v", st, addr)
	}
	st, org := e.raw(t, "POST", "/v1/odata/"+relationOrganization, map[string]any{"Name": "Meir Handel NV", "VisitingAddress@odata.bind": "Address(" + addr["ID"].(string) + ")"})
	if st != 201 {
		t.Fatalf("create organisation: %d %v", st, org)
	}
	st, got := e.raw(t, "GET", "/v1/odata/"+relationOrganization+"("+org["ID"].(string)+")?$expand=VisitingAddress($expand=Country)", nil)
	if st != 200 || field(got, "VisitingAddress.HouseNumber") != 12.0 || field(got, "VisitingAddress.Country.Name") != "Belgium" {
		t.Fatalf("bound address: %d %v", st, got)
	}

	// A deep insert two levels down: relationship, person, address.
	st, rel := e.raw(t, "POST", "/v1/odata/"+personLead, map[string]any{
		"Relation": map[string]any{"ID": tenant},
		"Person":   map[string]any{"LastName": "Vries", "MiddleName": "de", "Address": map[string]any{"City": "Utrecht", "Country": map[string]any{"ID": belgium}}},
	})
	if st != 201 {
		t.Fatalf("deep insert: %d %v", st, rel)
	}
	row, _, _ := e.em.Entity(rel["ID"].(string))
	if field(row, "Person.Address.City") != "Utrecht" || field(row, "Person.Address.Country.Code") != "BE" {
		t.Errorf("deep-inserted address: %v", row["Person"])
	}

	// Refusals.
	for name, tc := range map[string]struct {
		method, path string
		body         map[string]any
		status       int
		want         string
	}{
		"country is read-only":      {"POST", "/v1/odata/" + setCountry, map[string]any{"Name": "Atlantis"}, 405, "cannot be created"},
		"unknown country":           {"POST", "/v1/odata/Address", map[string]any{"Country": map[string]any{"ID": "00000000-0000-4000-8000-000000000000"}}, 400, "does not exist"},
		"status is no country":      {"POST", "/v1/odata/Address", map[string]any{"Country": map[string]any{"ID": field(firstWithStatus(t, e), "Status.ID")}}, 400, "does not exist"},
		"address bound as a person": {"POST", "/v1/odata/" + personLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Person": map[string]any{"ID": addr["ID"]}}, 400, "does not exist"},
	} {
		st, body := e.raw(t, tc.method, tc.path, tc.body)
		if st != tc.status || !strings.Contains(errMessage(t, body), tc.want) {
			t.Errorf("%s: %d %v, want %d with %q", name, st, body, tc.status, tc.want)
		}
	}

}

// firstWithStatus returns a seeded relationship that has a Status.
func firstWithStatus(t *testing.T, e *env) map[string]any {
	t.Helper()
	for _, set := range funnelSets() {
		for _, id := range e.em.IDs(set) {
			if row, _, _ := e.em.Entity(id); row["Status"] != nil {
				return row
			}
		}
	}
	t.Fatal("no relationship with a Status")
	return nil
}
