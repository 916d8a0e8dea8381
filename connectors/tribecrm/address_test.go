package tribecrm

import (
	"context"
	"strconv"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

const orgAddressExpand = "?$expand=VisitingAddress($expand=Country),PostalAddress($expand=Country)"

// TestPulledRecordsCarryTheirAddresses (issue 9 item 2): Tribe keeps an
// address as an Address entity behind VisitingAddress / Address, so a
// client that only expands Organization or Person reads every address as
// empty. Every pulled record must carry its street line, city and
// country name.
func TestPulledRecordsCarryTheirAddresses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 30}, nil)
	res := pullPass(t, e.c, nil, connectors.PullOptions{})
	if len(res.all) == 0 {
		t.Fatal("nothing pulled")
	}
	for _, r := range res.all {
		fl, _, _ := ParseFunnelSet(r.Entity)
		nav := fl + "." + addressNavs(fl)[0]
		line, _ := field(r.Fields, nav+"."+StreetAndNumber).(string)
		if line == "" || field(r.Fields, nav+".City") == nil || field(r.Fields, nav+".Country.Name") == nil {
			t.Fatalf("%s %s: address not read: %v", r.Entity, r.ID, field(r.Fields, nav))
		}
		if field(r.Fields, nav+".HouseNumber") == nil {
			t.Errorf("%s: the seeded street line %q has no house number", r.ID, line)
		}
	}
}

// TestAddressEditBehindCrmsyncIsPulled: an address is edited on its own
// (PUT Address(id), docs/api/entities/addresses), which moves neither the
// organisation's nor the relationship's LastMutationDate; the next
// incremental pull still returns the relationship with the new address.
func TestAddressEditBehindCrmsyncIsPulled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 30}, nil)
	first := pullPass(t, e.c, nil, connectors.PullOptions{})
	_, id, row := withStatus(t, e.em, FlavourOrganization)
	addrID := field(row, "Organization.VisitingAddress.ID").(string)
	if st, body := e.raw(t, "PUT", "/v1/odata/"+SetAddress+"("+addrID+")", map[string]any{"City": "Leeds"}); st != 200 {
		t.Fatalf("edit address: %d %v", st, body)
	}
	next := pullPass(t, e.c, first.next, connectors.PullOptions{})
	r, ok := next.latest[id]
	if !ok || field(r.Fields, "Organization.VisitingAddress.City") != "Leeds" {
		t.Fatalf("address edit not pulled: %v", field(r.Fields, "Organization.VisitingAddress"))
	}
	before := first.latest[id]
	if !r.UpdatedAt.After(before.UpdatedAt) {
		t.Errorf("UpdatedAt did not move with the address: %v -> %v", before.UpdatedAt, r.UpdatedAt)
	}
	// Without watch_relations the extra reads are off, address ones included.
	off := newEnv(t, emulator.Options{Records: 5}, func(o *Options) { o.SkipRelations = true })
	pullPass(t, off.c, nil, connectors.PullOptions{})
	for _, req := range off.requests() {
		if req.Path == "/v1/odata/"+SetAddress {
			t.Errorf("read %s with SkipRelations", req.Path)
		}
	}
}

// TestCreateWritesAddressEntities (issue 9 item 2): a new organisation's
// address is written as an Address entity with the house number apart from
// the street and the country bound to its Datastore_Country row, and reads
// back as the mapping wrote it.
func TestCreateWritesAddressEntities(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 5}, nil)
	ctx := context.Background()
	addresses := e.em.Count(SetAddress)
	rec, err := e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{
		"Organization": map[string]any{"Name": "Van Dijk Installatietechniek B.V.", "VisitingAddress": map[string]any{
			StreetAndNumber: "Kanaalweg 14A", "Extra": "Unit 3", "Postalcode": "3526 KL", "City": "Utrecht", "Country": map[string]any{"Name": "nederland"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.em.Count(SetAddress); got != addresses+1 {
		t.Errorf("Address rows: %d, want %d", got, addresses+1)
	}
	orgID := field(rec.Fields, "Organization.ID").(string)
	_, org := e.raw(t, "GET", "/v1/odata/"+SetOrganization+"("+orgID+")"+orgAddressExpand, nil)
	for path, want := range map[string]any{
		"VisitingAddress.Street": "Kanaalweg", "VisitingAddress.HouseNumber": 14.0, "VisitingAddress.HouseNumberSuffix": "A",
		"VisitingAddress.Extra": "Unit 3", "VisitingAddress.City": "Utrecht", "VisitingAddress.Country.Code": "NL",
	} {
		if got := field(org, path); got != want {
			t.Errorf("stored %s = %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]any{
		"Organization.VisitingAddress." + StreetAndNumber: "Kanaalweg 14A", "Organization.VisitingAddress.Country.Name": "Netherlands",
	} {
		if got := field(rec.Fields, path); got != want {
			t.Errorf("returned %s = %v, want %v", path, got, want)
		}
	}
}

// TestUnknownCountryIsRefusedWithoutLeftovers: a country no
// Datastore_Country row has is a refusal of that record, and no Address or
// relation is left behind.
func TestUnknownCountryIsRefusedWithoutLeftovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 5}, nil)
	addresses, orgs := e.em.Count(SetAddress), e.em.Count(SetOrganization)
	_, err := e.c.Create(context.Background(), connectors.Record{Entity: orgLead, Fields: map[string]any{
		"Organization": map[string]any{"Name": "Atlantis Ltd", "VisitingAddress": map[string]any{"City": "Poseidonis", "Country": map[string]any{"Name": "Atlantis"}}},
	}})
	if !connectors.IsRejected(err) {
		t.Fatalf("want Rejected, got %v", err)
	}
	if e.em.Count(SetAddress) != addresses || e.em.Count(SetOrganization) != orgs {
		t.Errorf("left behind: %d addresses (was %d), %d organisations (was %d)", e.em.Count(SetAddress), addresses, e.em.Count(SetOrganization), orgs)
	}
}

// TestUpdateChangesTheAddressInPlace (issue 9 item 2): an address change is
// written to the organisation's own Address entity (no second address), and
// under every update method against a replacing server the organisation
// keeps its address link and the address its other fields and country.
func TestUpdateChangesTheAddressInPlace(t *testing.T) {
	t.Parallel()
	for _, method := range updateMethods {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, emulator.Options{Records: 20, PutSemantics: emulator.PutReplace}, func(o *Options) { o.UpdateMethod = method })
			set, id, row := withStatus(t, e.em, FlavourOrganization)
			orgID := field(row, "Organization.ID").(string)
			addrID := field(row, "Organization.VisitingAddress.ID")
			_, before := e.raw(t, "GET", "/v1/odata/"+SetOrganization+"("+orgID+")"+orgAddressExpand, nil)
			addresses := e.em.Count(SetAddress)
			rec, err := e.c.Update(context.Background(), set, id, map[string]any{
				"Organization": map[string]any{"VisitingAddress": map[string]any{StreetAndNumber: "Coolsingel 40 bis", "Country": map[string]any{"Name": "BE"}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			_, after := e.raw(t, "GET", "/v1/odata/"+SetOrganization+"("+orgID+")"+orgAddressExpand, nil)
			if e.em.Count(SetAddress) != addresses || field(after, "VisitingAddress.ID") != addrID {
				t.Fatalf("address replaced instead of updated: %v -> %v (%d -> %d rows)", addrID, field(after, "VisitingAddress.ID"), addresses, e.em.Count(SetAddress))
			}
			for path, want := range map[string]any{
				"VisitingAddress.Street": "Coolsingel", "VisitingAddress.HouseNumber": 40.0, "VisitingAddress.HouseNumberSuffix": "bis",
				"VisitingAddress.Country.Name": "Belgium", "VisitingAddress.City": field(before, "VisitingAddress.City"),
				"VisitingAddress.Postalcode": field(before, "VisitingAddress.Postalcode"), "Name": field(before, "Name"),
			} {
				if got := field(after, path); got != want {
					t.Errorf("%s = %v, want %v", path, got, want)
				}
			}
			if got := field(rec.Fields, "Organization.VisitingAddress."+StreetAndNumber); got != "Coolsingel 40 bis" {
				t.Errorf("returned street line %v", got)
			}
		})
	}
}

// TestFindByAddressPath: a match on an address member goes through the
// navigation (Organization/VisitingAddress/City), which Tribe documents
// (efficy-sa/tribecrm-mcp-server docs/EXAMPLES.md example 10).
func TestFindByAddressPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 20}, nil)
	_, _, row := withStatus(t, e.em, FlavourOrganization)
	city := field(row, "Organization.VisitingAddress.City").(string)
	email := field(row, "Organization.EmailAddress").(string)
	found, err := e.c.Find(context.Background(), orgLead, []connectors.Match{{Field: "Organization.EmailAddress", Value: email}, {Field: "Organization.VisitingAddress.City", Value: city}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != row["ID"] {
		t.Fatalf("Find by e-mail and city: %v", found)
	}
	// The street line is the client's own property: compared here, not
	// sent in the $filter (the server would refuse an unknown property).
	line := field(row, "Organization.VisitingAddress.Street").(string) + " " + strconv.FormatFloat(field(row, "Organization.VisitingAddress.HouseNumber").(float64), 'f', -1, 64)
	found, err = e.c.Find(context.Background(), orgLead, []connectors.Match{{Field: "Organization.EmailAddress", Value: email}, {Field: "Organization.VisitingAddress." + StreetAndNumber, Value: line}})
	if err != nil || len(found) != 1 || found[0].ID != row["ID"] {
		t.Fatalf("Find by e-mail and street line %q: %v %v", line, found, err)
	}
	if e.c.noToLower.Load() {
		t.Error("a match on StreetAndNumber made the client give up tolower()")
	}
}

func TestStreetLineSplitAndJoin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line, street string
		number       any
		suffix       any
		back         string
	}{
		{"Kanaalweg 14", "Kanaalweg", 14.0, nil, "Kanaalweg 14"},
		{"Kanaalweg 14A", "Kanaalweg", 14.0, "A", "Kanaalweg 14A"},
		{"Kanaalweg 14-2", "Kanaalweg", 14.0, "-2", "Kanaalweg 14-2"},
		{"Oudegracht 200 bis", "Oudegracht", 200.0, "bis", "Oudegracht 200 bis"},
		{"2e Hugo de Grootstraat 3", "2e Hugo de Grootstraat", 3.0, nil, "2e Hugo de Grootstraat 3"},
		{"Rue de la Paix", "Rue de la Paix", nil, nil, "Rue de la Paix"},
		{"12 rue de la Paix", "12 rue de la Paix", nil, nil, "12 rue de la Paix"},
	} {
		street, num, suf := splitStreet(tc.line)
		if street != tc.street || num != tc.number || suf != tc.suffix {
			t.Errorf("split %q = %q %v %v, want %q %v %v", tc.line, street, num, suf, tc.street, tc.number, tc.suffix)
		}
		if got := joinStreet(map[string]any{"Street": street, "HouseNumber": num, "HouseNumberSuffix": suf}); got != tc.back {
			t.Errorf("join of %q = %v, want %q", tc.line, got, tc.back)
		}
	}
}
