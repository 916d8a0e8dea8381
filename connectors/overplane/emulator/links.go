package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Link fields and the doctypes they link to (docs/apis.md §2 "Link
// fields"). Sources: ERPNext's doctype JSON (frappe/erpnext
// erpnext/crm/doctype/prospect/prospect.json, prospect_lead/prospect_lead.json,
// prospect_opportunity/prospect_opportunity.json) for which fields are
// Links; Overplane's pages (crm/lead, setup/company, core/user,
// crm/opportunity) for the linked objects and their routes; Frappe's
// Document._validate_links and BaseDocument.get_invalid_links
// (frappe/frappe frappe/model/document.py, base_document.py) for the check
// and its message, and frappe/exceptions.py (ValidationError,
// http_status_code 417) with frappe/app.py handle_exception for the status.

// doctype is one linked doctype the emulator keeps as a collection.
type doctype struct {
	slug     string // "lead": the id prefix and the path's last segment
	path     string // "/api/crm/lead"
	label    string // "Lead": Frappe's doctype name
	fields   []fieldSpec
	required []string
	defaults map[string]any
	// nameField is the field Frappe names the record by (autoname
	// field:X) when Overplane shows it; a link may give that value instead
	// of the id. Empty for naming-series doctypes (Lead, Opportunity),
	// which Overplane names by id only.
	nameField string
	// unique fields compare case-insensitively (MariaDB collation).
	unique []string
}

var (
	leadDoctype = &doctype{
		slug: "lead", path: "/api/crm/lead", label: "Lead",
		fields: strFields("lead_name", "company_name", "email_id", "lead_owner", "status", "salutation", "gender",
			"customer", "image", "phone", "mobile_no", "fax", "type", "market_segment", "industry", "request_type",
			"company", "website", "territory", "title", "language", "first_name", "middle_name", "last_name",
			"no_of_employees", "whatsapp_no", "phone_ext", "qualified_by", "qualified_on", "qualification_status",
			"job_title", "city", "state", "country", "utm_content", "utm_source", "utm_medium", "utm_campaign").
			with(fieldSpec{"unsubscribed", kBool}, fieldSpec{"blog_subscriber", kBool}, fieldSpec{"disabled", kBool},
				fieldSpec{"annual_revenue", kNumber}),
		defaults: map[string]any{"status": "Lead", "unsubscribed": false, "blog_subscriber": false, "disabled": false},
		unique:   []string{"email_id"},
	}
	companyDoctype = &doctype{
		slug: "company", path: "/api/setup/company", label: "Company",
		fields: strFields("company_name", "abbr", "default_currency", "country", "domain", "parent_company",
			"company_description", "tax_id", "phone_no", "fax", "email", "website"),
		required:  []string{"company_name", "abbr", "default_currency", "country"},
		nameField: "company_name", unique: []string{"company_name"},
	}
	industryDoctype = &doctype{
		slug: "industry-type", path: "/api/crm/industry-type", label: "Industry Type",
		fields: strFields("industry"), required: []string{"industry"},
		nameField: "industry", unique: []string{"industry"},
	}
	userDoctype = &doctype{
		slug: "user", path: "/api/core/user", label: "User",
		fields: strFields("email", "first_name", "middle_name", "last_name", "full_name", "username", "user_type",
			"language", "time_zone", "phone", "mobile_no").with(fieldSpec{"enabled", kBool}),
		required:  []string{"email", "first_name"},
		defaults:  map[string]any{"enabled": true, "user_type": "System User"},
		nameField: "email", unique: []string{"email"},
	}
	opportunityDoctype = &doctype{
		slug: "opportunity", path: "/api/crm/opportunity", label: "Opportunity",
		fields: strFields("opportunity_from", "party_name", "company", "transaction_date", "status", "sales_stage",
			"expected_closing", "currency", "contact_person", "contact_email", "customer_name", "opportunity_owner").
			with(fieldSpec{"probability", kNumber}, fieldSpec{"opportunity_amount", kNumber}),
		required: []string{"opportunity_from", "party_name", "company", "transaction_date"},
		defaults: map[string]any{"status": "Open", "sales_stage": "Prospecting", "probability": 100.0},
	}
	// doctypes lists the linked doctypes in a fixed order.
	doctypes = []*doctype{leadDoctype, companyDoctype, industryDoctype, userDoctype, opportunityDoctype}
)

type specs []fieldSpec

func strFields(names ...string) specs {
	out := make(specs, len(names))
	for i, n := range names {
		out[i] = fieldSpec{n, kString}
	}
	return out
}

func (s specs) with(more ...fieldSpec) []fieldSpec { return append(s, more...) }

func (d *doctype) spec(name string) (fieldSpec, bool) {
	for _, fs := range d.fields {
		if fs.name == name {
			return fs, true
		}
	}
	return fieldSpec{}, false
}

// link is one Link field: its fieldname, its label (Frappe's message
// names the label) and the doctype it links to.
type link struct {
	field, label string
	to           *doctype
}

// The Link fields the emulator checks, in the doctypes' field order (the
// order Frappe reports them in). Upstream, market_segment, customer_group,
// territory (Prospect), currency and contact_person (Prospect Opportunity)
// are Links too; their doctypes are not emulated, so they stay free text.
var (
	prospectLinks = []link{{"industry", "Industry", industryDoctype}, {"prospect_owner", "Prospect Owner", userDoctype},
		{"company", "Company", companyDoctype}}
	leadRowLinks = []link{{"lead", "Lead", leadDoctype}}
	oppRowLinks  = []link{{"opportunity", "Opportunity", opportunityDoctype}}
)

// doc is one record of a linked doctype.
type doc struct {
	id      string
	created time.Time
	updated time.Time
	f       map[string]any
}

// collection holds the records of one linked doctype.
type collection struct {
	dt    *doctype
	byID  map[string]*doc
	order []*doc                     // created desc, id desc
	keys  map[string]map[string]*doc // unique field → lower-cased value → record
}

func newCollection(dt *doctype) *collection {
	c := &collection{dt: dt, byID: map[string]*doc{}, keys: map[string]map[string]*doc{}}
	for _, u := range dt.unique {
		c.keys[u] = map[string]*doc{}
	}
	return c
}

func (c *collection) index(d *doc, on bool) {
	for _, u := range c.dt.unique {
		s, _ := d.f[u].(string)
		if s == "" {
			continue
		}
		k := strings.ToLower(s)
		if on {
			c.keys[u][k] = d
		} else if c.keys[u][k] == d {
			delete(c.keys[u], k)
		}
	}
}

func (c *collection) add(d *doc) {
	c.byID[d.id] = d
	c.index(d, true)
	i := sort.Search(len(c.order), func(i int) bool {
		o := c.order[i]
		if !o.created.Equal(d.created) {
			return o.created.Before(d.created)
		}
		return o.id < d.id
	})
	c.order = append(c.order, nil)
	copy(c.order[i+1:], c.order[i:])
	c.order[i] = d
}

func (c *collection) remove(d *doc) {
	delete(c.byID, d.id)
	c.index(d, false)
	for i, o := range c.order {
		if o == d {
			c.order = append(c.order[:i], c.order[i+1:]...)
			break
		}
	}
}

// resolve finds the record a link value names: its id, or (for doctypes
// named by a field) that field's value, case-insensitively as MariaDB
// compares Frappe names.
func (c *collection) resolve(v string) *doc {
	if d := c.byID[v]; d != nil {
		return d
	}
	if c.dt.nameField != "" {
		return c.keys[c.dt.nameField][strings.ToLower(v)]
	}
	return nil
}

func (d *doc) appendJSON(b []byte, dt *doctype) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, d.id)
	b = append(b, `,"created_at":"`...)
	b = d.created.UTC().AppendFormat(b, timeLayout)
	b = append(b, `","updated_at":"`...)
	b = d.updated.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	for _, fs := range dt.fields {
		b = append(b, ',')
		b = strconv.AppendQuote(b, fs.name)
		b = append(b, ':')
		b = appendValue(b, d.f[fs.name])
	}
	return append(b, '}')
}

// ---------------------------------------------------------------------------
// link checks

// linkError is Frappe's LinkValidationError as Overplane would pass it on:
// status 417 (frappe/exceptions.py: ValidationError.http_status_code) and
// Frappe's message, "Could not find " and the invalid links joined by ", "
// ("Lead: x" on a document, "Row #1: Lead: x" on a child row), in the
// emulator's error envelope plus Frappe's own exc_type and exception keys
// (frappe/utils/response.py report_error).
func linkError(param string, invalid []string) *apiError {
	return &apiError{status: http.StatusExpectationFailed, code: "link_validation_error", param: param,
		message: "Could not find " + strings.Join(invalid, ", "), frappe: "LinkValidationError"}
}

// checkLinks returns a linkError for the link values in f that name no
// record; row > 0 is the child row's idx. Callers hold e.mu.
func (e *Emulator) checkLinks(links []link, f map[string]any, row int) *apiError {
	if !e.validateLinks {
		return nil
	}
	var invalid []string
	param := ""
	for _, l := range links {
		s, _ := f[l.field].(string)
		if s == "" || e.docs[l.to.slug].resolve(s) != nil {
			continue
		}
		msg := l.label + ": " + s
		if row > 0 {
			msg = fmt.Sprintf("Row #%d: %s", row, msg)
		}
		invalid = append(invalid, msg)
		if param == "" {
			param = l.field
		}
	}
	if invalid != nil {
		return linkError(param, invalid)
	}
	return nil
}

// leadFetch are the Prospect Lead fields ERPNext fetches from the linked
// Lead when they are empty (fetch_from lead.X with fetch_if_empty in
// prospect_lead.json): row field → Lead field.
var leadFetch = [][2]string{{"lead_name", "lead_name"}, {"status", "status"}, {"email", "email_id"}, {"mobile_no", "mobile_no"}}

// fetchFromLead fills a lead row's empty fetched fields from its Lead.
// Callers hold e.mu.
func (e *Emulator) fetchFromLead(r *childRow) {
	s, _ := r.f["lead"].(string)
	l := e.docs[leadDoctype.slug].resolve(s)
	if s == "" || l == nil {
		return
	}
	for _, ft := range leadFetch {
		if v, _ := r.f[ft[0]].(string); v == "" && l.f[ft[1]] != nil {
			r.f[ft[0]] = l.f[ft[1]]
		}
	}
}

// ---------------------------------------------------------------------------
// routes

func (e *Emulator) routeDoc(r *http.Request, path string, body map[string]any) ([]byte, *apiError, bool) {
	for _, dt := range doctypes {
		switch {
		case path == dt.path:
			switch r.Method {
			case http.MethodGet:
				out, aerr := e.listDocs(dt, r.URL.Query())
				return out, aerr, true
			case http.MethodPost:
				out, aerr := e.createDoc(dt, body)
				return out, aerr, true
			}
			return nil, methodNotAllowed(r), true
		case strings.HasPrefix(path, dt.path+"/"):
			id := strings.TrimPrefix(path, dt.path+"/")
			if strings.Contains(id, "/") {
				return nil, unknownURL(r), true
			}
			switch r.Method {
			case http.MethodGet:
				out, aerr := e.getDoc(dt, id)
				return out, aerr, true
			case http.MethodPatch:
				out, aerr := e.updateDoc(dt, id, body)
				return out, aerr, true
			case http.MethodDelete:
				out, aerr := e.deleteDoc(dt, id)
				return out, aerr, true
			}
			return nil, methodNotAllowed(r), true
		}
	}
	return nil, nil, false
}

func (e *Emulator) listDocs(dt *doctype, q url.Values) ([]byte, *apiError) {
	limit, offset, aerr := paging(q, e.opts.PageCap)
	if aerr != nil {
		return nil, aerr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.docs[dt.slug]
	total := len(c.order)
	lo, hi := min(offset, total), min(offset+limit, total)
	items := make([][]byte, 0, hi-lo)
	for _, d := range c.order[lo:hi] {
		items = append(items, d.appendJSON(nil, dt))
	}
	return listEnvelope(items, offset, total), nil
}

func (e *Emulator) getDoc(dt *doctype, id string) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.docs[dt.slug].byID[id]
	if d == nil {
		return nil, notFound(dt.slug, id)
	}
	return d.appendJSON(nil, dt), nil
}

// validateDoc checks body against dt's attributes (create: required
// fields too).
func validateDoc(dt *doctype, body map[string]any, create bool) *apiError {
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fs, ok := dt.spec(k)
		if !ok {
			return badParam("parameter_unknown", k, "Received unknown parameter: %s", k)
		}
		if aerr := checkType(k, fs.kind, body[k]); aerr != nil {
			return aerr
		}
	}
	for _, req := range dt.required {
		v, present := body[req]
		if s, _ := v.(string); (create || present) && strings.TrimSpace(s) == "" {
			return badParam("parameter_missing", req, "Missing required param: %s.", req)
		}
	}
	return nil
}

// uniqueClash returns a 409 when body gives a unique value another record
// holds (Frappe's DuplicateEntryError, http_status_code 409). Callers hold
// e.mu.
func (c *collection) uniqueClash(body map[string]any, self *doc) *apiError {
	for _, u := range c.dt.unique {
		s, _ := body[u].(string)
		if other := c.keys[u][strings.ToLower(s)]; s != "" && other != nil && other != self {
			msg := fmt.Sprintf("%s %q already exists (%s).", c.dt.label, s, other.id)
			if c.dt == leadDoctype { // erpnext/crm/doctype/lead/lead.py check_email_id_is_unique
				msg = fmt.Sprintf("Email Address must be unique, it is already used in %s", other.id)
			}
			return &apiError{status: http.StatusConflict, code: "resource_already_exists", param: u, message: msg}
		}
	}
	return nil
}

// leadName is ERPNext's Lead.set_lead_name: an empty lead_name becomes the
// company name or the e-mail's local part; with neither, the Lead is
// refused (417, a ValidationError).
func leadName(f map[string]any) *apiError {
	if s, _ := f["lead_name"].(string); s != "" {
		return nil
	}
	if s, _ := f["company_name"].(string); s != "" {
		f["lead_name"] = s
		return nil
	}
	if s, _ := f["email_id"].(string); s != "" {
		f["lead_name"], _, _ = strings.Cut(s, "@")
		return nil
	}
	return &apiError{status: http.StatusExpectationFailed, code: "validation_error", param: "lead_name",
		message: "A Lead requires either a person's name or an organization's name", frappe: "ValidationError"}
}

func (e *Emulator) createDoc(dt *doctype, body map[string]any) ([]byte, *apiError) {
	if aerr := validateDoc(dt, body, true); aerr != nil {
		return nil, aerr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	d, aerr := e.insertDoc(dt, body)
	if aerr != nil {
		return nil, aerr
	}
	return d.appendJSON(nil, dt), nil
}

// insertDoc stores a new record of dt with fields f (defaults for the
// attributes f leaves out). Callers hold e.mu (or are seeding).
func (e *Emulator) insertDoc(dt *doctype, f map[string]any) (*doc, *apiError) {
	c := e.docs[dt.slug]
	if aerr := c.uniqueClash(f, nil); aerr != nil {
		return nil, aerr
	}
	now := e.clock.Now()
	if e.seeding {
		now = seedBase
	}
	d := &doc{id: e.newID(dt.slug), created: now, updated: now, f: map[string]any{}}
	for _, fs := range dt.fields {
		v, ok := f[fs.name]
		if !ok || v == nil {
			v = dt.defaults[fs.name]
		}
		d.f[fs.name] = v
	}
	if dt == leadDoctype {
		if aerr := leadName(d.f); aerr != nil {
			return nil, aerr
		}
	}
	c.add(d)
	return d, nil
}

func (e *Emulator) updateDoc(dt *doctype, id string, body map[string]any) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.docs[dt.slug]
	d := c.byID[id]
	if d == nil {
		return nil, notFound(dt.slug, id)
	}
	if aerr := validateDoc(dt, body, false); aerr != nil {
		return nil, aerr
	}
	if aerr := c.uniqueClash(body, d); aerr != nil {
		return nil, aerr
	}
	c.index(d, false)
	for k, v := range body {
		d.f[k] = v
	}
	c.index(d, true)
	d.updated = e.clock.Now()
	return d.appendJSON(nil, dt), nil
}

func (e *Emulator) deleteDoc(dt *doctype, id string) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.docs[dt.slug]
	d := c.byID[id]
	if d == nil {
		return nil, notFound(dt.slug, id)
	}
	c.remove(d)
	return deletedBody(id), nil
}

// ---------------------------------------------------------------------------
// seeding

// industryTypes are ERPNext's default Industry Types
// (frappe/erpnext erpnext/setup/setup_wizard/data/industry_type.py), then
// the industries of emukit's fake profiles that list lacks (a tenant adds
// its own), then the seed page's example value.
var industryTypes = []string{"Accounting", "Advertising", "Aerospace", "Agriculture", "Airline", "Apparel & Accessories",
	"Automotive", "Banking", "Biotechnology", "Broadcasting", "Brokerage", "Chemical", "Computer", "Consulting",
	"Consumer Products", "Cosmetics", "Defense", "Department Stores", "Education", "Electronics", "Energy",
	"Entertainment & Leisure", "Executive Search", "Financial Services", "Food, Beverage & Tobacco", "Grocery",
	"Health Care", "Internet Publishing", "Investment Banking", "Legal", "Manufacturing", "Motion Picture & Video",
	"Music", "Newspaper Publishers", "Online Auctions", "Pension Funds", "Pharmaceuticals", "Private Equity",
	"Publishing", "Real Estate", "Retail & Wholesale", "Securities & Commodity Exchanges", "Service",
	"Soap & Detergent", "Software", "Sports", "Technology", "Telecommunications", "Television", "Transportation",
	"Venture Capital",
	"Retail", "Healthcare", "Logistics", "Finance", "Hospitality", "Construction",
	"industry_example"}

// seedLinked seeds the linked doctypes every seeded prospect needs: your
// own companies (Options.Company, and the seed page's example "Example
// Corp"), the prospect owners as Users and the Industry Types. Leads and
// Opportunities are seeded with the rows that link to them.
func (e *Emulator) seedLinked() {
	for _, dt := range doctypes {
		e.docs[dt.slug] = newCollection(dt)
	}
	for _, name := range []string{e.opts.Company, "Example Corp"} {
		_, _ = e.insertDoc(companyDoctype, map[string]any{"company_name": name, "abbr": abbr(name),
			"default_currency": "EUR", "country": "Netherlands"})
	}
	for _, o := range owners {
		local, _, _ := strings.Cut(o, "@")
		first, _, _ := strings.Cut(local, ".")
		_, _ = e.insertDoc(userDoctype, map[string]any{"email": o, "first_name": strings.ToUpper(first[:1]) + first[1:]})
	}
	for _, it := range industryTypes {
		_, _ = e.insertDoc(industryDoctype, map[string]any{"industry": it})
	}
}

// abbr is ERPNext's company abbreviation: the initials.
func abbr(name string) string {
	var b strings.Builder
	for _, w := range strings.Fields(name) {
		b.WriteByte(w[0])
	}
	return strings.ToUpper(b.String())
}

// seedLead returns the id of the Lead with email, creating it with f when
// there is none. Callers are seeding.
func (e *Emulator) seedLead(f map[string]any) string {
	email, _ := f["email_id"].(string)
	if d := e.docs[leadDoctype.slug].keys["email_id"][strings.ToLower(email)]; d != nil {
		return d.id
	}
	d, aerr := e.insertDoc(leadDoctype, f)
	if aerr != nil {
		panic("overplane emulator: seeding a Lead: " + aerr.message)
	}
	return d.id
}

// LinkedIDs returns the ids of every record of linked doctype slug
// ("lead", "company", "industry-type", "user", "opportunity"), newest first.
func (e *Emulator) LinkedIDs(slug string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.docs[slug]
	if c == nil {
		return nil
	}
	out := make([]string, len(c.order))
	for i, d := range c.order {
		out[i] = d.id
	}
	return out
}

// Linked returns a record of linked doctype slug by id, as the API
// serialises it, decoded.
func (e *Emulator) Linked(slug, id string) (map[string]any, bool) {
	e.mu.Lock()
	c := e.docs[slug]
	var b []byte
	if c != nil && c.byID[id] != nil {
		b = c.byID[id].appendJSON(nil, c.dt)
	}
	e.mu.Unlock()
	if b == nil {
		return nil, false
	}
	return decodeObject(b), true
}

// Profile is a server profile: how the emulated server behaves where the
// vendor's material leaves the choice open (docs/apis.md §2).
type Profile struct {
	// Name names the profile in test and subtest names.
	Name string
	// ValidateLinks: see Options.ValidateLinks.
	ValidateLinks bool
}

// Profiles returns the server profiles the contract suite runs under: the
// vendor's behaviour as the evidence has it (links validated) first.
func Profiles() []Profile {
	return []Profile{{Name: "validate-links", ValidateLinks: true}, {Name: "links-unchecked"}}
}

// Apply sets the profile's options in o.
func (p Profile) Apply(o *Options) {
	v := p.ValidateLinks
	o.ValidateLinks = &v
}
