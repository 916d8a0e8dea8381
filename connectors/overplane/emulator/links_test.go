package emulator

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// errBody returns the error envelope of a reply.
func errBody(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope in %v", m)
	}
	return e
}

// TestLinkFieldsAreValidatedAsFrappeDoes: a Link value that names no record
// is refused with Frappe's LinkValidationError (417, "Could not find
// <label>: <value>", every invalid link joined), on the prospect and on its
// rows ("Row #<idx>: ..."); a link may name the record by id or, for
// doctypes named by a field, by that field.
func TestLinkFieldsAreValidatedAsFrappeDoes(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 3})
	st, body := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{
		"company": "Nowhere Ltd", "company_name": "Link Test BV", "industry": "Basket Weaving", "prospect_owner": "sales@overplane-demo.example"})
	er := errBody(t, body)
	if st != http.StatusExpectationFailed || er["message"] != "Could not find Industry: Basket Weaving, Company: Nowhere Ltd" ||
		er["param"] != "industry" || body["exc_type"] != "LinkValidationError" ||
		body["exception"] != "frappe.exceptions.LinkValidationError: Could not find Industry: Basket Weaving, Company: Nowhere Ltd" {
		t.Fatalf("unknown links: %d %v", st, body)
	}
	if e.emu.Len() != 3 {
		t.Fatal("a refused prospect was stored")
	}
	companyID := e.emu.LinkedIDs("company")[0]
	for i, company := range []string{DefaultCompany, strings.ToUpper(DefaultCompany), companyID} {
		st, p := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": company, "company_name": "By " + strconv.Itoa(i), "industry": "Software"})
		if st != 200 {
			t.Fatalf("company %q: %d %v", company, st, p)
		}
	}
	pid := e.emu.IDs()[0]
	if st, body := e.raw(t, http.MethodPatch, "/api/crm/prospect/"+pid, map[string]any{"prospect_owner": "nobody@example.com"}); st != 417 ||
		errBody(t, body)["message"] != "Could not find Prospect Owner: nobody@example.com" {
		t.Fatalf("PATCH unknown owner: %d %v", st, body)
	}

	// The mapping's old constant is refused on a lead row.
	st, body = e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": pid, "lead": "crmsync-contact", "email": "a@b.example"})
	n := len(e.emu.Children("prospect-lead", pid))
	if st != 417 || errBody(t, body)["message"] != "Could not find Row #"+strconv.Itoa(n+1)+": Lead: crmsync-contact" || errBody(t, body)["param"] != "lead" {
		t.Fatalf("unknown lead: %d %v", st, body)
	}
	// A real Lead: the row takes the Lead's values where it gives none
	// (fetch_if_empty).
	st, lead := e.raw(t, http.MethodPost, "/api/crm/lead", map[string]any{"first_name": "Ada", "lead_name": "Ada Quarry", "email_id": "ada@quarry.example", "mobile_no": "+31 6 1"})
	if st != 200 || !strings.HasPrefix(lead["id"].(string), "lead_") || lead["status"] != "Lead" {
		t.Fatalf("POST lead: %d %v", st, lead)
	}
	st, row := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": pid, "lead": lead["id"]})
	if st != 200 || row["lead_name"] != "Ada Quarry" || row["email"] != "ada@quarry.example" || row["status"] != "Lead" || row["mobile_no"] != "+31 6 1" {
		t.Fatalf("row linked to a Lead: %d %v", st, row)
	}
	// A Lead is named by its id only (naming series): its name is no link.
	if st, _ := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": pid, "lead": "Ada Quarry"}); st != 417 {
		t.Fatalf("lead by lead_name: %d, want 417", st)
	}
	if st, body := e.raw(t, http.MethodPost, "/api/crm/prospect-opportunity", map[string]any{"prospect_id": pid, "opportunity": "CRM-OPP-1"}); st != 417 ||
		!strings.HasSuffix(errBody(t, body)["message"].(string), ": Opportunity: CRM-OPP-1") {
		t.Fatalf("unknown opportunity: %d %v", st, body)
	}
}

func TestLinksUncheckedProfileAcceptsAnyText(t *testing.T) {
	t.Parallel()
	o := Options{Records: 1}
	Profiles()[1].Apply(&o)
	e := newServer(t, o)
	st, p := e.raw(t, http.MethodPost, "/api/crm/prospect", map[string]any{"company": "Nowhere Ltd", "industry": "Basket Weaving", "prospect_owner": "x"})
	if st != 200 {
		t.Fatalf("prospect: %d %v", st, p)
	}
	if st, r := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": p["id"], "lead": "crmsync-contact"}); st != 200 || r["lead_name"] != nil {
		t.Fatalf("row: %d %v", st, r)
	}
}

// TestLinkedCollectionsServeTheVendorRoutes: Lead, Company, Industry Type,
// User and Opportunity answer the vendor's list and object routes, seeded
// so that every seeded prospect and row links to existing records.
func TestLinkedCollectionsServeTheVendorRoutes(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 12})
	for _, path := range []string{"/api/crm/lead", "/api/setup/company", "/api/crm/industry-type", "/api/core/user", "/api/crm/opportunity"} {
		st, list := e.raw(t, http.MethodGet, path+"?limit=100", nil)
		if st != 200 || list["total"].(float64) == 0 {
			t.Fatalf("GET %s: %d %v", path, st, list)
		}
		first := list["data"].([]any)[0].(map[string]any)
		if st, one := e.raw(t, http.MethodGet, path+"/"+first["id"].(string), nil); st != 200 || one["id"] != first["id"] {
			t.Fatalf("GET %s/{id}: %d %v", path, st, one)
		}
	}
	for _, id := range e.emu.IDs() {
		p, _ := e.emu.Prospect(id)
		for _, l := range prospectLinks {
			if e.emu.docs[l.to.slug].resolve(p[l.field].(string)) == nil {
				t.Fatalf("seeded prospect %s: %s %v names no record", id, l.field, p[l.field])
			}
		}
		for _, r := range e.emu.Children("prospect-lead", id) {
			lead, ok := e.emu.Linked("lead", r["lead"].(string))
			if !ok || lead["email_id"] != r["email"] || lead["lead_name"] != r["lead_name"] {
				t.Fatalf("seeded row %v: Lead %v", r, lead)
			}
		}
		for _, r := range e.emu.Children("prospect-opportunity", id) {
			if opp, ok := e.emu.Linked("opportunity", r["opportunity"].(string)); !ok || opp["opportunity_amount"] != r["amount"] {
				t.Fatalf("seeded row %v: Opportunity %v", r, opp)
			}
		}
	}
	// Lead rules from ERPNext's lead.py: the e-mail is unique, and a Lead
	// needs a name, an organisation or an e-mail (lead_name is derived).
	_, someLead := e.raw(t, http.MethodGet, "/api/crm/lead?limit=1", nil)
	taken := someLead["data"].([]any)[0].(map[string]any)["email_id"].(string)
	if st, body := e.raw(t, http.MethodPost, "/api/crm/lead", map[string]any{"email_id": strings.ToUpper(taken)}); st != 409 ||
		!strings.HasPrefix(errBody(t, body)["message"].(string), "Email Address must be unique") {
		t.Fatalf("duplicate Lead e-mail: %d %v", st, body)
	}
	if st, body := e.raw(t, http.MethodPost, "/api/crm/lead", map[string]any{"phone": "1"}); st != 417 ||
		errBody(t, body)["message"] != "A Lead requires either a person's name or an organization's name" {
		t.Fatalf("nameless Lead: %d %v", st, body)
	}
	if st, l := e.raw(t, http.MethodPost, "/api/crm/lead", map[string]any{"email_id": "new.person@x.example"}); st != 200 || l["lead_name"] != "new.person" {
		t.Fatalf("Lead from an e-mail: %d %v", st, l)
	}
	if st, _ := e.raw(t, http.MethodPost, "/api/core/user", map[string]any{"email": "u@x.example"}); st != 400 {
		t.Fatalf("User without first_name: %d", st)
	}
}

// TestSeedExampleValuesAreAccepted (issue 9 item 8): the seed page's own
// example bodies are accepted; with links validated only their Link
// placeholders are refused.
func TestSeedExampleValuesAreAccepted(t *testing.T) {
	t.Parallel()
	prospect := map[string]any{"company_name": "Example Corp", "industry": "industry_example", "market_segment": "market_segment_example",
		"customer_group": "customer_group_example", "territory": "territory_example", "no_of_employees": "no_of_employees_example",
		"annual_revenue": 0.0, "fax": "fax_example", "website": "website_example", "prospect_owner": "prospect_owner_example", "company": "Example Corp"}
	lead := map[string]any{"idx": 1.0, "lead": "lead_example", "lead_name": "lead_name_example", "status": "draft",
		"email": "user@example.com", "mobile_no": "mobile_no_example", "lead_owner": "lead_owner_example"}
	opp := map[string]any{"idx": 1.0, "opportunity": "opportunity_example", "amount": 0.0, "stage": "stage_example", "probability": 0.0,
		"expected_closing": "expected_closing_example", "currency": "USD", "deal_owner": "deal_owner_example", "contact_person": "contact_person_example"}
	with := func(m map[string]any, k string, v any) map[string]any {
		out := map[string]any{k: v}
		for kk, vv := range m {
			if kk != k {
				out[kk] = vv
			}
		}
		return out
	}

	e := newServer(t, Options{ValidateLinks: noLinks()})
	st, p := e.raw(t, http.MethodPost, "/api/crm/prospect", prospect)
	if st != 200 || p["no_of_employees"] != "no_of_employees_example" {
		t.Fatalf("seed example prospect: %d %v", st, p)
	}
	if st, r := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", with(lead, "prospect_id", p["id"])); st != 200 || r["status"] != "draft" {
		t.Fatalf("seed example lead row: %d %v", st, r)
	}
	if st, r := e.raw(t, http.MethodPost, "/api/crm/prospect-opportunity", with(opp, "prospect_id", p["id"])); st != 200 || r["expected_closing"] != "expected_closing_example" {
		t.Fatalf("seed example opportunity row: %d %v", st, r)
	}

	v := newServer(t, Options{})
	st, body := v.raw(t, http.MethodPost, "/api/crm/prospect", prospect)
	if st != 417 || errBody(t, body)["message"] != "Could not find Prospect Owner: prospect_owner_example" {
		t.Fatalf("seed example prospect, links validated: %d %v (the seeded Company and Industry Type are the page's own examples)", st, body)
	}
	st, p = v.raw(t, http.MethodPost, "/api/crm/prospect", with(prospect, "prospect_owner", "sales@overplane-demo.example"))
	if st != 200 {
		t.Fatalf("seed example prospect with a seeded owner: %d %v", st, p)
	}
	if st, _ := v.raw(t, http.MethodPost, "/api/crm/prospect-opportunity", with(opp, "prospect_id", p["id"])); st != 417 {
		t.Fatalf("opportunity placeholder, links validated: %d", st)
	}
	oppID := v.emu.LinkedIDs("opportunity")
	if len(oppID) != 0 {
		t.Fatalf("no opportunities seeded with 0 records, got %v", oppID)
	}
	// FrappeTypes restores ERPNext's Select and Date checks.
	strict := newServer(t, Options{ValidateLinks: noLinks(), FrappeTypes: true})
	if st, _ := strict.raw(t, http.MethodPost, "/api/crm/prospect", prospect); st != 400 {
		t.Fatalf("FrappeTypes: no_of_employees_example gave %d, want 400", st)
	}
}

// TestPatchIdxMovesRows (issue 9 item 8): the vendor lists idx and the
// parent as PATCH body parameters; a PATCH of idx moves the row (idx stays
// dense) and a PATCH of prospect_id moves it to another prospect.
func TestPatchIdxMovesRows(t *testing.T) {
	t.Parallel()
	e := newServer(t, Options{Records: 2, ValidateLinks: noLinks()})
	pid, other := e.emu.IDs()[0], e.emu.IDs()[1]
	for _, r := range e.emu.Children("prospect-lead", pid) {
		e.raw(t, http.MethodDelete, "/api/crm/prospect-lead/"+r["id"].(string), nil)
	}
	var ids []string
	for _, n := range []string{"A", "B", "C"} {
		_, r := e.raw(t, http.MethodPost, "/api/crm/prospect-lead", map[string]any{"prospect_id": pid, "lead": "L-" + n})
		ids = append(ids, r["id"].(string))
	}
	order := func(parent string) string {
		var out []string
		for i, r := range e.emu.Children("prospect-lead", parent) {
			if r["idx"] != float64(i+1) {
				t.Fatalf("idx not dense: %v", r)
			}
			out = append(out, r["lead"].(string))
		}
		return strings.Join(out, ",")
	}
	st, r := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+ids[2], map[string]any{"idx": 1.0, "lead_name": "Cee"})
	if st != 200 || r["idx"] != 1.0 || r["lead_name"] != "Cee" || order(pid) != "L-C,L-A,L-B" {
		t.Fatalf("PATCH idx 1: %d %v, order %s", st, r, order(pid))
	}
	if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+ids[2], map[string]any{"idx": 3.0}); st != 200 || order(pid) != "L-A,L-B,L-C" {
		t.Fatalf("PATCH idx 3: %d, order %s", st, order(pid))
	}
	if st, _ := e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+ids[0], map[string]any{"prospect_id": pid}); st != 200 || order(pid) != "L-A,L-B,L-C" {
		t.Fatalf("PATCH own prospect_id: %d, order %s", st, order(pid))
	}
	before := len(e.emu.Children("prospect-lead", other))
	st, r = e.raw(t, http.MethodPatch, "/api/crm/prospect-lead/"+ids[0], map[string]any{"prospect_id": other})
	if st != 200 || r["prospect_id"] != other || r["idx"] != float64(before+1) || order(pid) != "L-B,L-C" {
		t.Fatalf("PATCH prospect_id: %d %v, order %s", st, r, order(pid))
	}
	_ = order(other)
}
