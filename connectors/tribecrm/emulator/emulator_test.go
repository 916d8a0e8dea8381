package emulator

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var guidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
var tsRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func TestEmulatorSeedDeterministicAndShaped(t *testing.T) {
	t.Parallel()
	a, b := New(Options{Records: 300}), New(Options{Records: 300})
	if a.Len() != 300 {
		t.Fatalf("Len = %d", a.Len())
	}
	orgs, persons := 0, 0
	for _, set := range funnelSets() {
		ia, ib := a.IDs(set), b.IDs(set)
		if strings.Join(ia, ",") != strings.Join(ib, ",") {
			t.Fatalf("%s: seeds differ", set)
		}
		if len(ia) == 0 {
			t.Errorf("%s: no seeded rows", set)
		}
		if fl, _, _ := parseFunnelSet(set); fl == flavourOrganization {
			orgs += len(ia)
		} else {
			persons += len(ia)
		}
		for _, id := range ia {
			if !guidRe.MatchString(id) {
				t.Fatalf("id %q is not a lower-case v4 GUID", id)
			}
			ea, _, _ := a.Entity(id)
			eb, _, _ := b.Entity(id)
			if ea["LastMutationDate"] != eb["LastMutationDate"] || ea["Name"] != eb["Name"] {
				t.Fatalf("seeded row %s differs between emulators", id)
			}
		}
	}
	if orgs < 180 || orgs > 240 {
		t.Errorf("organisations = %d of 300, want about 70%%", orgs)
	}
	// Some seeded rows share one LastMutationDate.
	seen := map[any]int{}
	for _, set := range funnelSets() {
		for _, id := range a.IDs(set) {
			e, _, _ := a.Entity(id)
			seen[e["LastMutationDate"]]++
		}
	}
	if len(seen) >= 300 {
		t.Error("no seeded rows share a LastMutationDate")
	}
	// A larger seed starts with the same rows (same Records prefix).
	c := New(Options{Records: 10})
	for _, set := range funnelSets() {
		for _, id := range c.IDs(set) {
			if _, _, ok := a.Entity(id); !ok {
				t.Fatalf("row %s of a 10-record seed missing from the 300-record seed", id)
			}
		}
	}
}

func TestEmulatorListShapeAndQueryOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 200})
	n := e.em.Count(orgLead)
	st, body := e.raw(t, "GET", "/v1/odata/"+orgLead+"?$count=true&$top=5&$expand=Organization,Relation,Status", nil)
	if st != 200 {
		t.Fatalf("status %d: %v", st, body)
	}
	if body["@odata.context"] != e.srv.URL+"/v1/odata/$metadata#"+orgLead {
		t.Errorf("context = %v", body["@odata.context"])
	}
	if int(body["@odata.count"].(float64)) != n {
		t.Errorf("count = %v, want %d", body["@odata.count"], n)
	}
	vals := body["value"].([]any)
	if len(vals) != 5 {
		t.Fatalf("len(value) = %d", len(vals))
	}
	row := vals[0].(map[string]any)
	for _, k := range []string{"ID", "_Type", "_Name", "SortIndex", "CreationDate", "LastMutationDate", "IsActive", "IsClosed", "Name", "ImportId", "Organization", "Relation", "Status"} {
		if _, ok := row[k]; !ok {
			t.Errorf("row lacks %s: %v", k, row)
		}
	}
	if row["_Type"] != "Relationship.Organization.CommercialRelationship.Lead" {
		t.Errorf("_Type = %v", row["_Type"])
	}
	if !tsRe.MatchString(row["LastMutationDate"].(string)) || !tsRe.MatchString(row["CreationDate"].(string)) {
		t.Errorf("timestamps not RFC 3339 UTC with ms: %v %v", row["CreationDate"], row["LastMutationDate"])
	}
	org := row["Organization"].(map[string]any)
	if org["_Type"] != "Relation.Organization" || org["Name"] == nil || row["_Name"] != org["Name"] {
		t.Errorf("expanded organisation: %v (row _Name %v)", org, row["_Name"])
	}
	if _, ok := org["VisitingAddress"]; ok {
		t.Errorf("VisitingAddress is a navigation: present without its own $expand: %v", org)
	}
	if row["Relation"].(map[string]any)["ID"] != e.em.TenantID() {
		t.Errorf("Relation is not the tenant organisation")
	}
	// Without $expand, navigations are absent.
	_, body = e.raw(t, "GET", "/v1/odata/"+orgLead+"?$top=1", nil)
	if _, ok := body["value"].([]any)[0].(map[string]any)["Organization"]; ok {
		t.Error("navigation present without $expand")
	}
	// $select keeps ID.
	_, body = e.raw(t, "GET", "/v1/odata/"+orgLead+"?$top=2&$select=Name", nil)
	r0 := body["value"].([]any)[0].(map[string]any)
	if len(r0) != 2 || r0["ID"] == nil || r0["Name"] == nil {
		t.Errorf("$select=Name gave %v", r0)
	}
	// Nested $select inside $expand.
	_, body = e.raw(t, "GET", "/v1/odata/"+organizationIdentity+"?$expand=Relation($select=ID)&$select=Name", nil)
	idRow := body["value"].([]any)[0].(map[string]any)
	if rel := idRow["Relation"].(map[string]any); len(rel) != 1 || rel["ID"] != e.em.TenantID() {
		t.Errorf("identity Relation = %v", rel)
	}
	// Default order is SortIndex, CreationDate, ID; $skip pages it.
	_, all := e.raw(t, "GET", "/v1/odata/"+orgLead, nil)
	_, skipped := e.raw(t, "GET", "/v1/odata/"+orgLead+"?$skip=3&$top=2", nil)
	av, sv := all["value"].([]any), skipped["value"].([]any)
	prev := -1.0
	for _, v := range av {
		si := v.(map[string]any)["SortIndex"].(float64)
		if si < prev {
			t.Fatal("default order is not by SortIndex")
		}
		prev = si
	}
	if sv[0].(map[string]any)["ID"] != av[3].(map[string]any)["ID"] || sv[1].(map[string]any)["ID"] != av[4].(map[string]any)["ID"] {
		t.Error("$skip=3&$top=2 does not match rows 3 and 4 of the default order")
	}
	// Multi-key $orderby.
	_, ob := e.raw(t, "GET", "/v1/odata/"+orgLead+"?$orderby=IsActive%20desc,Organization/Name%20asc", nil)
	ov := ob["value"].([]any)
	for i := 1; i < len(ov); i++ {
		a, b := ov[i-1].(map[string]any), ov[i].(map[string]any)
		if a["IsActive"] == false && b["IsActive"] == true {
			t.Fatal("IsActive desc not honoured")
		}
	}
}

func TestEmulatorFilterOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 100})
	id := e.em.IDs(orgLead)[0]
	row, _, _ := e.em.Entity(id)
	email := row["Organization"].(map[string]any)["EmailAddress"].(string)
	cases := []struct {
		query  string
		status int
		want   int // rows, -1: don't care
	}{
		{"$filter=tolower(Organization/EmailAddress)%20eq%20'" + strings.ToUpper(email) + "'", 200, 0},
		{"$filter=tolower(Organization/EmailAddress)%20eq%20'" + strings.ToLower(email) + "'", 200, 1},
		{"$filter=Organization/EmailAddress%20eq%20'" + email + "'", 200, 1},
		{"$filter=ID%20eq%20" + id, 200, 1},
		{"$filter=LastMutationDate%20gt%202000-01-01T00:00:00Z", 200, e.em.Count(orgLead)},
		{"$filter=LastMutationDate%20gt%202000-01-01T00:00:00%2B01:00", 200, e.em.Count(orgLead)},
		{"$filter=LastMutationDate%20gt%202000-01-01T00:00:00+01:00", 200, e.em.Count(orgLead)}, // literal '+' kept
		{"$filter=LastMutationDate%20gt%202999-01-01T00:00:00", 200, 0},
		{"$filter=Name+eq+'x'", 400, -1}, // '+' is not a space
		{"$filter=Name%20in%20('a')", 400, -1},
		{"$filter=Name%20has%20'a'", 400, -1},
		{"$filter=Nope%20eq%201", 400, -1},
		{"$orderby=Nope", 400, -1},
		{"$top=-1", 400, -1},
		{"$top=x", 400, -1},
		{"$count=yes", 400, -1},
		{"$select=Nope", 400, -1},
		{"$expand=Person", 400, -1},
		{"$expand=Name", 400, -1},
		{"$search=x", 400, -1},
		{"$filter=IsActive%20eq%20true&$filter=IsActive%20eq%20false", 400, -1},
	}
	for _, tc := range cases {
		st, body := e.raw(t, "GET", "/v1/odata/"+orgLead+"?"+tc.query, nil)
		if st != tc.status {
			t.Errorf("%s: status %d, want %d (%v)", tc.query, st, tc.status, body)
			continue
		}
		if st != 200 {
			errMessage(t, body)
			continue
		}
		if got := len(body["value"].([]any)); tc.want >= 0 && got != tc.want {
			t.Errorf("%s: %d rows, want %d", tc.query, got, tc.want)
		}
	}
	// A '+' inside a string literal is a plus sign.
	st, body := e.raw(t, "POST", "/v1/odata/"+orgLead, map[string]any{
		"Relation": map[string]any{"ID": e.em.TenantID()}, "Name": "A+B", "Organization": map[string]any{"Name": "Plus Co"},
	})
	if st != 201 {
		t.Fatalf("create: %d %v", st, body)
	}
	_, body = e.raw(t, "GET", "/v1/odata/"+orgLead+"?$filter=Name%20eq%20'A+B'", nil)
	if len(body["value"].([]any)) != 1 {
		t.Errorf("'A+B' literal matched %d rows", len(body["value"].([]any)))
	}
}

func TestEmulatorKeysAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 20})
	id := e.em.IDs(orgLead)[0]
	st, body := e.raw(t, "GET", "/v1/odata/"+orgLead+"("+strings.ToUpper(id)+")?$expand=Organization", nil)
	if st != 200 || body["ID"] != id || body["@odata.context"] != e.srv.URL+"/v1/odata/$metadata#"+orgLead+"/$entity" {
		t.Fatalf("get by key: %d %v", st, body)
	}
	for path, want := range map[string]int{
		"/v1/odata/" + orgLead + "(not-a-guid)":                              400,
		"/v1/odata/" + orgLead + "('" + id + "')":                            400,
		"/v1/odata/" + orgLead + "(00000000-0000-4000-8000-000000000000)":    404,
		"/v1/odata/" + orgCustomer + "(" + id + ")":                          404, // other set
		"/v1/odata/NoSuchSet":                                                404,
		"/v1/odata/" + orgLead + "(" + id + ")/Nope":                         404,
		"/v1/odata/" + orgLead + "?$top=1&$filter=":                          400,
		"/v1/odata/" + orgLead + "(" + id + ")?$filter=IsActive%20eq%20true": 400,
		"/somewhere/else": 404,
	} {
		st, body := e.raw(t, "GET", path, nil)
		if st != want {
			t.Errorf("GET %s: %d, want %d", path, st, want)
			continue
		}
		errMessage(t, body)
	}
	// Navigation GET.
	st, body = e.raw(t, "GET", "/v1/odata/"+orgLead+"("+id+")/Relation", nil)
	if st != 200 || body["ID"] != e.em.TenantID() || body["_Type"] != "Relation.Organization" {
		t.Errorf("Set(id)/Relation: %d %v", st, body)
	}
	st, _ = e.raw(t, "GET", "/v1/odata/"+orgLead+"("+id+")/Organization", nil)
	if st != 200 {
		t.Errorf("Set(id)/Organization: %d", st)
	}
	// 401 with an OData body.
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/odata/"+orgLead, nil)
	req.Header.Set("Authorization", "Bearer wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	// ?access_token= works too.
	resp, err = http.Get(e.srv.URL + "/v1/odata/" + orgLead + "?$top=1&access_token=dev-token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("access_token query parameter: %d", resp.StatusCode)
	}
	// Read-only sets.
	if st, body := e.raw(t, "POST", "/v1/odata/"+organizationIdentity, map[string]any{"Name": "x"}); st != 405 {
		t.Errorf("POST identity: %d %v", st, body)
	}
	// $metadata.
	resp, err = http.Get(e.srv.URL + "/v1/odata/$metadata?access_token=dev-token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "xml") {
		t.Errorf("$metadata: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestEmulatorWrites(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e := newEnv(t, Options{Records: 20, Now: clock})
	tenant := e.em.TenantID()

	// Create with an inline organisation.
	st, body := e.raw(t, "POST", "/v1/odata/"+orgSuspect, map[string]any{
		"Relation":     map[string]any{"ID": tenant},
		"Organization": map[string]any{"Name": "Inline Co", "EmailAddress": "info@inline.example", "VisitingAddress": map[string]any{"City": "Ghent", "HouseNumber": 3.0}},
		"Name":         "Inline suspect", "IsActive": true,
		"ID@ignored": 1, "CreationDate": "1999-01-01T00:00:00Z",
	})
	if st != 201 {
		t.Fatalf("create: %d %v", st, body)
	}
	id := body["ID"].(string)
	if !guidRe.MatchString(id) || body["_Type"] != typeOfSet(orgSuspect) || body["CreationDate"] != "2026-06-01T12:00:00.000Z" || body["LastMutationDate"] != body["CreationDate"] {
		t.Fatalf("created entity: %v", body)
	}
	row, _, _ := e.em.Entity(id)
	org := row["Organization"].(map[string]any)
	orgID := org["ID"].(string)
	if org["Name"] != "Inline Co" || field(org, "VisitingAddress.City") != "Ghent" || field(org, "VisitingAddress.HouseNumber") != 3.0 || row["_Name"] != "Inline Co" {
		t.Fatalf("inline organisation: %v", org)
	}
	// Create from an existing relation.
	st, body = e.raw(t, "POST", "/v1/odata/"+orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"ID": orgID}})
	if st != 201 {
		t.Fatalf("create from existing: %d %v", st, body)
	}
	// Validation.
	for name, tc := range map[string]struct {
		set  string
		body map[string]any
		want string
	}{
		"person without LastName": {personLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Person": map[string]any{"FirstName": "Ann"}}, "LastName"},
		"org without Name":        {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"EmailAddress": "x@y"}}, "Name"},
		"no Relation":             {orgLead, map[string]any{"Organization": map[string]any{"Name": "x"}}, "Relation"},
		"unknown Relation":        {orgLead, map[string]any{"Relation": map[string]any{"ID": "00000000-0000-4000-8000-000000000000"}, "Organization": map[string]any{"Name": "x"}}, "does not exist"},
		"no child":                {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}}, "Organization"},
		"person on org set":       {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Person": map[string]any{"LastName": "x"}}, "Person"},
		"unknown property":        {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"Name": "x"}, "Colour": "red"}, "Colour"},
		"wrong type":              {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"Name": "x"}, "IsActive": "yes"}, "IsActive"},
		"bad address field":       {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"Name": "x", "VisitingAddress": map[string]any{"Planet": "Mars"}}}, "Planet"},
		"country as text":         {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"Name": "x", "VisitingAddress": map[string]any{"Country": "Belgium"}}}, "Country"},
		"inline country":          {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"Name": "x", "VisitingAddress": map[string]any{"Country": map[string]any{"Name": "Belgium"}}}}, "bound by ID"},
		"house number as text":    {orgLead, map[string]any{"Relation": map[string]any{"ID": tenant}, "Organization": map[string]any{"Name": "x", "VisitingAddress": map[string]any{"HouseNumber": "12"}}}, "HouseNumber"},
	} {
		st, body := e.raw(t, "POST", "/v1/odata/"+tc.set, tc.body)
		if st != 400 {
			t.Errorf("%s: status %d, want 400", name, st)
			continue
		}
		if msg := errMessage(t, body); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q lacks %q", name, msg, tc.want)
		}
	}

	// PUT merges the fields sent; server-set fields are ignored.
	now = now.Add(time.Minute)
	st, body = e.raw(t, "PUT", "/v1/odata/"+orgSuspect+"("+id+")", map[string]any{
		"Name": "Renamed", "ID": "00000000-0000-4000-8000-000000000000", "_Type": "Relationship.Person.CommercialRelationship.Lead",
		"CreationDate": "1999-01-01T00:00:00Z", "LastMutationDate": "1999-01-01T00:00:00Z",
	})
	if st != 200 || body["Name"] != "Renamed" || body["ID"] != id || body["_Type"] != typeOfSet(orgSuspect) ||
		body["CreationDate"] != "2026-06-01T12:00:00.000Z" || body["LastMutationDate"] != "2026-06-01T12:01:00.000Z" || body["IsActive"] != true {
		t.Fatalf("PUT: %d %v", st, body)
	}
	// Deep update through the relationship is refused; the organisation is updated on its own.
	if st, _ := e.raw(t, "PUT", "/v1/odata/"+orgSuspect+"("+id+")", map[string]any{"Organization": map[string]any{"Name": "x"}}); st != 400 {
		t.Errorf("deep PUT: %d", st)
	}
	now = now.Add(time.Minute)
	st, body = e.raw(t, "PUT", "/v1/odata/"+relationOrganization+"("+orgID+")", map[string]any{"PhoneNumber": "+32 9 000"})
	if st != 200 || body["LastMutationDate"] != "2026-06-01T12:02:00.000Z" {
		t.Fatalf("PUT organisation: %d %v", st, body)
	}
	// An address is its own entity: a deep update through the organisation
	// is refused, the Address is updated itself and keeps what it is not sent.
	if st, _ := e.raw(t, "PUT", "/v1/odata/"+relationOrganization+"("+orgID+")", map[string]any{"VisitingAddress": map[string]any{"Street": "Korenmarkt"}}); st != 400 {
		t.Errorf("deep address update: %d", st)
	}
	addrID := field(org, "VisitingAddress.ID").(string)
	st, body = e.raw(t, "PUT", "/v1/odata/Address("+addrID+")", map[string]any{"Street": "Korenmarkt"})
	if st != 200 || body["City"] != "Ghent" || body["Street"] != "Korenmarkt" || body["HouseNumber"] != 3.0 {
		t.Errorf("address update: %d %v", st, body)
	}
	row, _, _ = e.em.Entity(id)
	if row["LastMutationDate"] != "2026-06-01T12:01:00.000Z" {
		t.Errorf("organisation edit bumped the relationship: %v", row["LastMutationDate"])
	}
	if st, _ := e.raw(t, "PUT", "/v1/odata/"+relationOrganization+"("+orgID+")", map[string]any{"Name": ""}); st != 400 {
		t.Errorf("emptying Name: %d", st)
	}

	// Stage conversion keeps the ID and moves the record.
	now = now.Add(time.Minute)
	st, body = e.raw(t, "POST", "/v1/odata/"+orgSuspect, map[string]any{"ID": id, "_Type": "Relationship.Organization.CommercialRelationship.Customer"})
	if st != 200 || body["ID"] != id || body["_Type"] != typeOfSet(orgCustomer) || body["LastMutationDate"] != "2026-06-01T12:03:00.000Z" || body["Name"] != "Renamed" {
		t.Fatalf("convert: %d %v", st, body)
	}
	if _, set, _ := e.em.Entity(id); set != orgCustomer {
		t.Fatalf("converted record is in %s", set)
	}
	if st, _ := e.raw(t, "GET", "/v1/odata/"+orgSuspect+"("+id+")", nil); st != 404 {
		t.Errorf("old set still has the record: %d", st)
	}
	st, body = e.raw(t, "POST", "/v1/odata/"+orgCustomer, map[string]any{"ID": id, "_UpgradeType": funnelSet(flavourOrganization, "Prospect")})
	if st != 200 || body["_Type"] != "Relationship.Organization.CommercialRelationship.Prospect" {
		t.Fatalf("_UpgradeType convert: %d %v", st, body)
	}
	prospect := funnelSet(flavourOrganization, "Prospect")
	for name, b := range map[string]map[string]any{
		"cross flavour":      {"ID": id, "_Type": "Relationship.Person.CommercialRelationship.Customer"},
		"cross flavour (up)": {"ID": id, "_UpgradeType": funnelSet(flavourPerson, "Customer")},
		"leave funnel":       {"ID": id, "_Type": "Relationship.Organization.Identity"},
		"underscored _Type":  {"ID": id, "_Type": orgCustomer},
		"disagree":           {"ID": id, "_Type": typeOfSet(orgCustomer), "_UpgradeType": orgLead},
	} {
		if st, body := e.raw(t, "POST", "/v1/odata/"+prospect, b); st != 400 {
			t.Errorf("%s: %d %v", name, st, body)
		}
	}
	if st, _ := e.raw(t, "POST", "/v1/odata/"+prospect, map[string]any{"ID": orgID, "_Type": typeOfSet(orgCustomer)}); st != 404 {
		t.Errorf("relation id in place of relationship id: %d", st)
	}
	// POST with ID and no type change is an update.
	if st, body := e.raw(t, "POST", "/v1/odata/"+prospect, map[string]any{"ID": id, "IsClosed": true}); st != 200 || body["IsClosed"] != true {
		t.Errorf("POST update: %d %v", st, body)
	}

	// Delete removes the relationship only.
	if st, _ := e.raw(t, "DELETE", "/v1/odata/"+prospect+"("+id+")", nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _ := e.raw(t, "DELETE", "/v1/odata/"+prospect+"("+id+")", nil); st != 404 {
		t.Errorf("second delete: %d", st)
	}
	if _, _, ok := e.em.Entity(orgID); !ok {
		t.Error("delete removed the organisation")
	}
	// The organisation is still linked to the Lead created above: not deletable.
	if st, _ := e.raw(t, "DELETE", "/v1/odata/"+relationOrganization+"("+orgID+")", nil); st != 400 {
		t.Errorf("deleting a linked organisation: %d", st)
	}
}

func TestEmulatorPageCapNextLink(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{Records: 200, PageCap: 7})
	n := e.em.Count(orgLead)
	next := e.srv.URL + "/v1/odata/" + orgLead + "?$filter=IsActive%20eq%20true%20or%20IsActive%20eq%20false&$count=true"
	seen := map[string]bool{}
	for next != "" {
		st, body := e.raw(t, "GET", strings.TrimPrefix(next, e.srv.URL), nil)
		if st != 200 {
			t.Fatalf("%d %v", st, body)
		}
		if len(body["value"].([]any)) > 7 {
			t.Fatal("page cap not applied")
		}
		for _, v := range body["value"].([]any) {
			seen[v.(map[string]any)["ID"].(string)] = true
		}
		next, _ = body["@odata.nextLink"].(string)
		if strings.Contains(next, "+") {
			t.Fatalf("nextLink writes '+': %s", next)
		}
	}
	if len(seen) != n {
		t.Fatalf("followed nextLinks to %d rows, want %d", len(seen), n)
	}
	// $top below the cap: no nextLink; $top above: nextLink carries the remainder.
	_, body := e.raw(t, "GET", "/v1/odata/"+orgLead+"?$top=5", nil)
	if _, ok := body["@odata.nextLink"]; ok {
		t.Error("nextLink on an uncapped page")
	}
	_, body = e.raw(t, "GET", "/v1/odata/"+orgLead+"?$top=10", nil)
	if nl, _ := body["@odata.nextLink"].(string); !strings.Contains(nl, "$top=3") || !strings.Contains(nl, "$skip=7") {
		t.Errorf("nextLink = %q", nl)
	}
}
