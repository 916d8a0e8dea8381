package emulator

import (
	"strings"
	"testing"
)

// withStatus returns a seeded relationship of the given flavour that has a
// Status, with its rendered row.
func withStatus(t testing.TB, em *Emulator, flavour string) (string, string, map[string]any) {
	t.Helper()
	for _, stage := range funnelStages {
		set := funnelSet(flavour, stage)
		for _, id := range em.IDs(set) {
			if row, _, _ := em.Entity(id); row["Status"] != nil {
				return set, id, row
			}
		}
	}
	t.Fatalf("no seeded %s relationship with a Status", flavour)
	return "", "", nil
}

// TestEmulatorPutReplace: with PutReplace a PUT replaces the entity (OData
// v4.01 §11.4.3), while PATCH and POST with an ID merge.
func TestEmulatorPutReplace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 40, PutSemantics: PutReplace})
	set, id, row := withStatus(t, e.em, flavourOrganization)
	orgID := field(row, "Organization.ID").(string)
	relID := field(row, "Relation.ID").(string)

	// A relationship PUT without its required links is refused.
	st, body := e.raw(t, "PUT", "/v1/odata/"+set+"("+id+")", map[string]any{"IsClosed": true})
	if st != 400 || !strings.Contains(errMessage(t, body), "'Organization' is required") {
		t.Fatalf("PUT without links: %d %v", st, body)
	}
	// With them, every property not sent is reset and the Status is unbound.
	st, body = e.raw(t, "PUT", "/v1/odata/"+set+"("+id+")", map[string]any{"IsClosed": true, "Organization": map[string]any{"ID": orgID}})
	if st != 400 || !strings.Contains(errMessage(t, body), "'Relation' is required") {
		t.Fatalf("PUT without Relation: %d %v", st, body)
	}
	st, body = e.raw(t, "PUT", "/v1/odata/"+set+"("+id+")", map[string]any{
		"IsClosed": true, "IsActive": false, "Relation": map[string]any{"ID": relID}, "Organization": map[string]any{"ID": orgID},
	})
	if st != 200 {
		t.Fatalf("PUT: %d %v", st, body)
	}
	after, _, _ := e.em.Entity(id)
	if after["Name"] != nil || after["ImportId"] != nil || after["IsClosed"] != true || after["IsActive"] != false || after["Status"] != nil ||
		field(after, "Organization.ID") != orgID || after["SortIndex"] != row["SortIndex"] || after["CreationDate"] != row["CreationDate"] {
		t.Errorf("relationship after a replacing PUT: %v", after)
	}
	// IsActive not sent goes back to its default (true).
	if st, body := e.raw(t, "PUT", "/v1/odata/"+set+"("+id+")", map[string]any{"Relation": map[string]any{"ID": relID}, "Organization": map[string]any{"ID": orgID}}); st != 200 || body["IsActive"] != true || body["IsClosed"] != false {
		t.Errorf("defaults after a replacing PUT: %d %v", st, body)
	}

	// An organisation PUT without its required Name is refused.
	org := "/v1/odata/" + relationOrganization + "(" + orgID + ")"
	st, body = e.raw(t, "PUT", org, map[string]any{"PhoneNumber": "+31 20 111 1111"})
	if st != 400 || !strings.Contains(errMessage(t, body), "'Name'") {
		t.Fatalf("PUT organisation without Name: %d %v", st, body)
	}
	st, body = e.raw(t, "PUT", org+"?$expand=VisitingAddress", map[string]any{"Name": "Replaced BV"})
	if st != 200 {
		t.Fatalf("PUT organisation: %d %v", st, body)
	}
	if body["EmailAddress"] != nil || body["PhoneNumber"] != nil || body["SortIndex"] != field(row, "Organization.SortIndex") {
		t.Errorf("organisation after a replacing PUT: %v", body)
	}
	// A link not sent is unbound too: the visiting address is gone.
	if after, _, _ := e.em.Entity(orgID); after["VisitingAddress"] != nil {
		t.Errorf("VisitingAddress kept after a replacing PUT without it: %v", after["VisitingAddress"])
	}

	// PATCH merges, and so does POST with the ID in the body.
	st, body = e.raw(t, "PATCH", org, map[string]any{"PhoneNumber": "+31 20 222 2222"})
	if st != 200 || body["Name"] != "Replaced BV" || body["PhoneNumber"] != "+31 20 222 2222" {
		t.Errorf("PATCH: %d %v", st, body)
	}
	st, body = e.raw(t, "POST", "/v1/odata/"+relationOrganization, map[string]any{"ID": orgID, "EmailAddress": "post@replaced.example"})
	if st != 200 || body["Name"] != "Replaced BV" || body["PhoneNumber"] != "+31 20 222 2222" || body["EmailAddress"] != "post@replaced.example" {
		t.Errorf("POST with ID: %d %v", st, body)
	}
	st, body = e.raw(t, "POST", "/v1/odata/"+set, map[string]any{"ID": id, "Name": "Posted"})
	if after, _, _ := e.em.Entity(id); st != 200 || after["Name"] != "Posted" || field(after, "Organization.ID") != orgID || after["IsActive"] != true {
		t.Errorf("POST with ID on a relationship: %d %v", st, after)
	}
}

// TestEmulatorPutMergeIsTheDefault: without PutSemantics a PUT keeps what
// it does not send, and an unknown value is refused.
func TestEmulatorPutMergeIsTheDefault(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 40})
	set, id, row := withStatus(t, e.em, flavourOrganization)
	if st, body := e.raw(t, "PUT", "/v1/odata/"+set+"("+id+")", map[string]any{"IsClosed": !row["IsClosed"].(bool)}); st != 200 {
		t.Fatalf("PUT: %d %v", st, body)
	}
	after, _, _ := e.em.Entity(id)
	if after["Name"] != row["Name"] || field(after, "Status.ID") != field(row, "Status.ID") || field(after, "Organization.ID") != field(row, "Organization.ID") {
		t.Errorf("merging PUT lost fields: before %v, after %v", row, after)
	}
	defer func() {
		if recover() == nil {
			t.Error("PutSemantics \"overwrite\" accepted")
		}
	}()
	New(Options{PutSemantics: "overwrite"})
}
