package tribecrm

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// TestCreateLinksAnExistingOrganisation (issue 9 item 5): an organisation
// that exists in Tribe outside the funnel sets (created on its own, as a
// supplier would be) is linked by the new relationship, not created a
// second time; its fields are brought up to date.
func TestCreateLinksAnExistingOrganisation(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"ChamberOfCommerceNumber", "EmailAddress", "Name"} {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, emulator.Options{Records: 10}, nil)
			st, existing := e.raw(t, "POST", "/v1/odata/"+SetOrganization, map[string]any{
				"Name": "Noordzee Staal B.V.", "EmailAddress": "inkoop@noordzeestaal.example", "ChamberOfCommerceNumber": "24300111",
			})
			if st != http.StatusCreated {
				t.Fatalf("seed organisation: %d %v", st, existing)
			}
			orgs := e.em.Count(SetOrganization)
			child := map[string]any{"Name": "Noordzee Staal BV", "PhoneNumber": "+31 10 444 0000"}
			switch key {
			case "ChamberOfCommerceNumber":
				child[key] = "24300111"
			case "EmailAddress":
				child[key] = "INKOOP@noordzeestaal.example"
			case "Name":
				child[key] = "noordzee staal b.v."
			}
			rec, err := e.c.Create(context.Background(), connectors.Record{Entity: orgLead, Fields: map[string]any{"Organization": child}})
			if err != nil {
				t.Fatal(err)
			}
			if got := field(rec.Fields, "Organization.ID"); got != existing["ID"] || e.em.Count(SetOrganization) != orgs {
				t.Fatalf("linked %v (want %v); organisations %d -> %d", got, existing["ID"], orgs, e.em.Count(SetOrganization))
			}
			if got := field(rec.Fields, "Organization.PhoneNumber"); got != "+31 10 444 0000" {
				t.Errorf("linked organisation not brought up to date: PhoneNumber %v", got)
			}
		})
	}
}

// TestCreateLinksAnExistingPersonByEmail: the same for a person, by e-mail.
func TestCreateLinksAnExistingPersonByEmail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 10}, nil)
	_, existing := e.raw(t, "POST", "/v1/odata/"+SetPerson, map[string]any{"FirstName": "Karin", "MiddleName": "de", "LastName": "Vries", "EmailAddress": "karin@devries.example"})
	persons := e.em.Count(SetPerson)
	rec, err := e.c.Create(context.Background(), connectors.Record{Entity: personLead, Fields: map[string]any{
		"Person": map[string]any{"FirstName": "Karin", "MiddleName": "de", "LastName": "Vries", "EmailAddress": "karin@devries.example"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if field(rec.Fields, "Person.ID") != existing["ID"] || e.em.Count(SetPerson) != persons {
		t.Fatalf("person created again: %v vs %v", field(rec.Fields, "Person.ID"), existing["ID"])
	}
}

// TestCreateWithAmbiguousMatchCreatesANewOrganisation: when two
// organisations share the e-mail address and nothing else matches, linking
// either would merge records, so a new one is created.
func TestCreateWithAmbiguousMatchCreatesANewOrganisation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 5}, nil)
	for _, n := range []string{"Twin One BV", "Twin Two BV"} {
		e.raw(t, "POST", "/v1/odata/"+SetOrganization, map[string]any{"Name": n, "EmailAddress": "shared@twins.example"})
	}
	orgs := e.em.Count(SetOrganization)
	if _, err := e.c.Create(context.Background(), connectors.Record{Entity: orgLead, Fields: map[string]any{
		"Organization": map[string]any{"Name": "Twin Three BV", "EmailAddress": "shared@twins.example"},
	}}); err != nil {
		t.Fatal(err)
	}
	if e.em.Count(SetOrganization) != orgs+1 {
		t.Errorf("organisations %d -> %d, want a new one", orgs, e.em.Count(SetOrganization))
	}
}

// TestCreateNamesTheRelationship (issue 9 item 5): a relationship crmsync
// creates has a Name, as the vendor's n8n node gives a lead one (the
// organisation's name, or the person's full name with the prefix); it was
// null.
func TestCreateNamesTheRelationship(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 5}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: personLead, Fields: map[string]any{
		"Person": map[string]any{"FirstName": "Karin", "MiddleName": "de", "LastName": "Vries", "EmailAddress": "k.devries@example.nl"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Fields["Name"] != "Karin de Vries" || field(rec.Fields, "Person.MiddleName") != "de" {
		t.Errorf("relationship Name %v, MiddleName %v", rec.Fields["Name"], field(rec.Fields, "Person.MiddleName"))
	}
	// A Name the record carries wins.
	rec, err = e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{"Name": "Q3 lead", "Organization": map[string]any{"Name": "Kade Bouw BV"}}})
	if err != nil || rec.Fields["Name"] != "Q3 lead" {
		t.Errorf("explicit Name: %v %v", rec.Fields["Name"], err)
	}
}

// TestCreateBindsTheConfiguredStatus (issue 9 item 5): CreateStatus binds
// the Datastore row with that Code; a record's own {"Code"} wins; an
// unknown code is refused before anything is written.
func TestCreateBindsTheConfiguredStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 5}, func(o *Options) { o.CreateStatus = "NEW" })
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{"Organization": map[string]any{"Name": "Status Co"}}})
	if err != nil {
		t.Fatal(err)
	}
	row, _, _ := e.em.Entity(rec.ID)
	if field(row, "Status.Code") != "NEW" {
		t.Errorf("Status = %v, want the NEW row", row["Status"])
	}
	rec, err = e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{"Status": map[string]any{"Code": "QUALIFIED"}, "Organization": map[string]any{"Name": "Qualified Co"}}})
	if err != nil {
		t.Fatal(err)
	}
	if row, _, _ := e.em.Entity(rec.ID); field(row, "Status.Code") != "QUALIFIED" {
		t.Errorf("record's own Status: %v", row["Status"])
	}
	e.resetRequests()
	_, err = e.c.Create(ctx, connectors.Record{Entity: orgLead, Fields: map[string]any{"Status": map[string]any{"Code": "NO_SUCH"}, "Organization": map[string]any{"Name": "Nowhere Co"}}})
	if !connectors.IsRejected(err) || !strings.Contains(err.Error(), "NO_SUCH") {
		t.Fatalf("unknown status: %v", err)
	}
	for _, r := range e.requests() {
		if r.Method != http.MethodGet {
			t.Errorf("wrote %s %s before refusing", r.Method, r.Path)
		}
	}
}
