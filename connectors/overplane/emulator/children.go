package emulator

import (
	"encoding/json"
	"fmt"
	"github.com/crmsync/crmsync/connectors/overplane/api"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/emukit"
)

// childKind describes one child table of Prospect.
type childKind struct {
	doctype  string      // "prospect-lead": the id prefix and the path's last segment
	path     string      // "/api/crm/prospect-lead"
	fields   []fieldSpec // attributes besides id, idx and prospect_id, documented order
	required []string    // required attributes besides prospect_id
	links    []link      // Link fields (links.go)
	rows     func(p *prospect) *[]*childRow
}

var (
	leadKind = &childKind{
		doctype: api.LeadDoctype, path: leadPath,
		fields: []fieldSpec{{"lead", kString}, {"lead_name", kString}, {"status", kString},
			{"email", kString}, {"mobile_no", kString}, {"lead_owner", kString}},
		required: []string{"lead"},
		links:    leadRowLinks,
		rows:     func(p *prospect) *[]*childRow { return &p.leads },
	}
	oppKind = &childKind{
		doctype: api.OppDoctype, path: oppPath,
		fields: []fieldSpec{{"opportunity", kString}, {"amount", kNumber}, {"stage", kString},
			{"probability", kNumber}, {"expected_closing", kString}, {"currency", kString},
			{"deal_owner", kString}, {"contact_person", kString}},
		links: oppRowLinks,
		rows:  func(p *prospect) *[]*childRow { return &p.opps },
	}
	// childKinds lists the child tables in a fixed order.
	childKinds = []*childKind{leadKind, oppKind}
)

func (k *childKind) spec(name string) (fieldSpec, bool) {
	for _, fs := range k.fields {
		if fs.name == name {
			return fs, true
		}
	}
	return fieldSpec{}, false
}

// childRow is one row of a child table. Its idx is its position in the
// parent's slice plus one, so idx stays dense.
type childRow struct {
	id     string
	kind   *childKind
	parent *prospect
	f      map[string]any
}

func (r *childRow) idx() int {
	for i, x := range *r.kind.rows(r.parent) {
		if x == r {
			return i + 1
		}
	}
	return 0
}

func (r *childRow) appendJSON(b []byte, idx int) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, r.id)
	b = append(b, `,"idx":`...)
	b = strconv.AppendInt(b, int64(idx), 10)
	b = append(b, `,"prospect_id":`...)
	b = strconv.AppendQuote(b, r.parent.id)
	for _, fs := range r.kind.fields {
		b = append(b, ',')
		b = strconv.AppendQuote(b, fs.name)
		b = append(b, ':')
		b = appendValue(b, r.f[fs.name])
	}
	return append(b, '}')
}

// Children returns the rows of child table doctype ("prospect-lead" or
// "prospect-opportunity") under prospect parentID, in idx order, decoded
// as the API serialises them.
func (e *Emulator) Children(doctype, parentID string) []map[string]any {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.prospects[parentID]
	if p == nil {
		return nil
	}
	var out []map[string]any
	for _, k := range childKinds {
		if k.doctype != doctype {
			continue
		}
		for i, r := range *k.rows(p) {
			var m map[string]any
			_ = json.Unmarshal(r.appendJSON(nil, i+1), &m)
			out = append(out, m)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// seeding

var (
	leadStatuses = []string{"Lead", "Open", "Replied", "Interested", "Opportunity"}
	salesStages  = []string{"Prospecting", "Qualification", "Needs Analysis", "Proposal/Price Quote", "Negotiation/Review"}
)

// seedChildren gives seeded prospect number i 0–2 lead rows (contact persons
// of its profile) and every fourth one an opportunity row. Each row links to
// a seeded Lead or Opportunity holding the same values, as ERPNext fetches
// them (prospect_lead.json, prospect_opportunity.json: fetch_from).
func (e *Emulator) seedChildren(p *prospect, i int, pf emukit.Profile) {
	owner := p.f["prospect_owner"]
	people := []emukit.Profile{pf}
	if i%3 == 2 {
		q := emukit.Fake(e.opts.SeedOffset + i + 1)
		local, _, _ := strings.Cut(q.Email, "@")
		q.Email = local + "@" + pf.Domain
		people = append(people, q)
	}
	for j := 0; j < i%3; j++ {
		who := people[j]
		status := leadStatuses[(i+j)%len(leadStatuses)]
		lead := e.seedLead(map[string]any{"lead_name": who.FirstName + " " + who.LastName, "first_name": who.FirstName,
			"last_name": who.LastName, "email_id": who.Email, "mobile_no": who.Mobile, "status": status,
			"company_name": p.f["company_name"], "lead_owner": owner})
		e.addRow(p, leadKind, map[string]any{
			"lead":       lead,
			"lead_name":  who.FirstName + " " + who.LastName,
			"status":     status,
			"email":      who.Email,
			"mobile_no":  who.Mobile,
			"lead_owner": owner,
		})
	}
	if i%4 == 0 {
		st := i / 4 % len(salesStages)
		var contact any
		if len(p.leads) > 0 {
			contact = p.leads[0].f["lead_name"]
		}
		f := map[string]any{
			"amount":           float64((i%20 + 1) * 5000),
			"stage":            salesStages[st],
			"probability":      float64((st + 1) * 20),
			"expected_closing": seedBase.AddDate(0, 2+i%6, 0).Format(time.DateOnly),
			"currency":         "EUR",
			"deal_owner":       owner,
			"contact_person":   contact,
		}
		opp, aerr := e.insertDoc(opportunityDoctype, map[string]any{"opportunity_from": "Prospect",
			"party_name": p.f["company_name"], "company": p.f["company"], "transaction_date": seedBase.Format(time.DateOnly),
			"sales_stage": f["stage"], "probability": f["probability"], "expected_closing": f["expected_closing"],
			"currency": f["currency"], "opportunity_amount": f["amount"], "opportunity_owner": owner})
		if aerr != nil {
			panic("overplane emulator: seeding an Opportunity: " + aerr.message)
		}
		f["opportunity"] = opp.id
		e.addRow(p, oppKind, f)
	}
}

// addRow appends a row with fields f (missing attributes are null).
// Callers hold e.mu (or are seeding).
func (e *Emulator) addRow(p *prospect, k *childKind, f map[string]any) *childRow {
	r := &childRow{id: e.newID(k.doctype), kind: k, parent: p, f: map[string]any{}}
	for _, fs := range k.fields {
		r.f[fs.name] = f[fs.name]
	}
	rows := k.rows(p)
	*rows = append(*rows, r)
	e.rows[r.id] = r
	return r
}

// ---------------------------------------------------------------------------
// routes

func (e *Emulator) routeChild(r *http.Request, path string, body map[string]any) ([]byte, *apiError, bool) {
	for _, k := range childKinds {
		switch {
		case path == k.path:
			switch r.Method {
			case http.MethodGet:
				out, aerr := e.listChildren(k, r.URL.Query())
				return out, aerr, true
			case http.MethodPost:
				out, aerr := e.createChild(k, body)
				return out, aerr, true
			}
			return nil, methodNotAllowed(r), true
		case path == k.path+"/reorder":
			if r.Method != http.MethodPost {
				return nil, methodNotAllowed(r), true
			}
			out, aerr := e.reorderChildren(k, body)
			return out, aerr, true
		case strings.HasPrefix(path, k.path+"/"):
			id := strings.TrimPrefix(path, k.path+"/")
			if strings.Contains(id, "/") {
				return nil, unknownURL(r), true
			}
			switch r.Method {
			case http.MethodPatch:
				out, aerr := e.updateChild(k, id, body)
				return out, aerr, true
			case http.MethodDelete:
				out, aerr := e.deleteChild(k, id)
				return out, aerr, true
			}
			return nil, methodNotAllowed(r), true
		}
	}
	return nil, nil, false
}

// parent resolves a parent id given in param. Callers hold e.mu.
func (e *Emulator) parent(v any, param string) (*prospect, *apiError) {
	id, ok := v.(string)
	if v == nil || (ok && id == "") {
		return nil, badParam("parameter_missing", param, "Missing required param: %s.", param)
	}
	if !ok {
		return nil, badParam("parameter_invalid", param, "Invalid %s: must be a string.", param)
	}
	p := e.prospects[id]
	if p == nil {
		a := notFound("prospect", id)
		a.param = param
		return nil, a
	}
	return p, nil
}

func (e *Emulator) listChildren(k *childKind, q url.Values) ([]byte, *apiError) {
	limit, offset, aerr := paging(q, e.opts.PageCap, "parent_id")
	if aerr != nil {
		return nil, aerr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var pid any
	if q.Has("parent_id") {
		pid = q.Get("parent_id")
	}
	p, aerr := e.parent(pid, "parent_id")
	if aerr != nil {
		return nil, aerr
	}
	rows := *k.rows(p)
	lo, hi := min(offset, len(rows)), min(offset+limit, len(rows))
	items := make([][]byte, 0, hi-lo)
	for i := lo; i < hi; i++ {
		items = append(items, rows[i].appendJSON(nil, i+1))
	}
	return listEnvelope(items, offset, len(rows)), nil
}

var emailRe = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// validateRow checks a child row body. Both POST and PATCH may carry
// prospect_id and idx: the vendor's child pages list idx and the parent as
// body parameters of both, and show {"idx":1,"parent_id":null} as a PATCH
// body (e.g. ODOC:setup/website-item-group).
func (e *Emulator) validateRow(k *childKind, body map[string]any, create bool) *apiError {
	keys := make([]string, 0, len(body))
	for key := range body {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		v := body[key]
		if key == "prospect_id" || key == "idx" {
			if key == "idx" && v != nil {
				if f, ok := v.(float64); !ok || f != float64(int(f)) {
					return badParam("parameter_invalid_integer", "idx", "Invalid idx: must be an integer.")
				}
			}
			continue
		}
		fs, ok := k.spec(key)
		if !ok {
			return badParam("parameter_unknown", key, "Received unknown parameter: %s", key)
		}
		if aerr := checkType(key, fs.kind, v); aerr != nil {
			return aerr
		}
		s, _ := v.(string)
		switch {
		case key == "email" && s != "" && !emailRe.MatchString(s):
			return badParam("parameter_invalid", key, "Invalid email: %q is not an e-mail address.", s)
		case key == "expected_closing" && s != "" && e.opts.FrappeTypes:
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return badParam("parameter_invalid", key, "Invalid expected_closing: %q is not a date (YYYY-MM-DD).", s)
			}
		case key == "probability" && v != nil:
			if f := v.(float64); f < 0 || f > 100 {
				return badParam("parameter_invalid", key, "Invalid probability: %v is not between 0 and 100.", f)
			}
		}
	}
	for _, req := range k.required {
		v, present := body[req]
		if s, _ := v.(string); (create || present) && strings.TrimSpace(s) == "" {
			return badParam("parameter_missing", req, "Missing required param: %s.", req)
		}
	}
	return nil
}

func (e *Emulator) createChild(k *childKind, body map[string]any) ([]byte, *apiError) {
	if aerr := e.validateRow(k, body, true); aerr != nil {
		return nil, aerr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p, aerr := e.parent(body["prospect_id"], "prospect_id")
	if aerr != nil {
		return nil, aerr
	}
	n := len(*k.rows(p))
	at := n + 1
	if v, ok := body["idx"].(float64); ok {
		at = int(v)
		if at < 1 || at > n+1 {
			return nil, badParam("parameter_invalid", "idx", "Invalid idx: %d is not between 1 and %d.", at, n+1)
		}
	}
	if aerr := e.checkLinks(k.links, body, at); aerr != nil {
		return nil, aerr
	}
	r := e.addRow(p, k, body)
	if at <= n { // move the new row from the end to position at
		rows := *k.rows(p)
		copy(rows[at:], rows[at-1:n])
		rows[at-1] = r
	}
	if k == leadKind {
		e.fetchFromLead(r)
	}
	return r.appendJSON(nil, at), nil
}

// row finds a child row of kind k. Callers hold e.mu.
func (e *Emulator) row(k *childKind, id string) (*childRow, *apiError) {
	r := e.rows[id]
	if r == nil || r.kind != k {
		return nil, notFound(k.doctype, id)
	}
	return r, nil
}

func (e *Emulator) updateChild(k *childKind, id string, body map[string]any) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, aerr := e.row(k, id)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := e.validateRow(k, body, false); aerr != nil {
		return nil, aerr
	}
	to := r.parent
	if v, ok := body["prospect_id"]; ok {
		var aerr *apiError
		if to, aerr = e.parent(v, "prospect_id"); aerr != nil {
			return nil, aerr
		}
	}
	at := r.idx()
	if to != r.parent {
		at = len(*k.rows(to)) + 1
	}
	if v, ok := body["idx"].(float64); ok {
		n := len(*k.rows(to))
		if to == r.parent {
			n--
		}
		if at = int(v); at < 1 || at > n+1 {
			return nil, badParam("parameter_invalid", "idx", "Invalid idx: %d is not between 1 and %d.", at, n+1)
		}
	}
	if aerr := e.checkLinks(k.links, body, at); aerr != nil {
		return nil, aerr
	}
	for key, v := range body {
		if key != "prospect_id" && key != "idx" {
			r.f[key] = v
		}
	}
	e.moveRow(r, to, at)
	if k == leadKind {
		e.fetchFromLead(r)
	}
	return r.appendJSON(nil, at), nil
}

// moveRow puts r at position at (1-based) of parent to's rows; the other
// rows shift and idx stays dense on both parents. Callers hold e.mu.
func (e *Emulator) moveRow(r *childRow, to *prospect, at int) {
	from := r.kind.rows(r.parent)
	for i, x := range *from {
		if x == r {
			*from = append((*from)[:i], (*from)[i+1:]...)
			break
		}
	}
	r.parent = to
	rows := r.kind.rows(to)
	*rows = append(*rows, nil)
	copy((*rows)[at:], (*rows)[at-1:])
	(*rows)[at-1] = r
}

func (e *Emulator) deleteChild(k *childKind, id string) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, aerr := e.row(k, id)
	if aerr != nil {
		return nil, aerr
	}
	rows := k.rows(r.parent)
	for i, x := range *rows {
		if x == r {
			*rows = append((*rows)[:i], (*rows)[i+1:]...)
			break
		}
	}
	delete(e.rows, id)
	return deletedBody(id), nil
}

// reorderChildren puts the rows named in ids first, in that order, and the
// parent's other rows after them in their current order; idx is renumbered
// 1..n. It answers with the parent's rows as a list.
func (e *Emulator) reorderChildren(k *childKind, body map[string]any) ([]byte, *apiError) {
	for key := range body {
		if key != "parent_id" && key != "ids" {
			return nil, badParam("parameter_unknown", key, "Received unknown parameter: %s", key)
		}
	}
	raw, ok := body["ids"].([]any)
	if !ok {
		return nil, badParam("parameter_missing", "ids", "Missing required param: ids (an array of %s ids).", k.doctype)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p, aerr := e.parent(body["parent_id"], "parent_id")
	if aerr != nil {
		return nil, aerr
	}
	rows := k.rows(p)
	seen := map[*childRow]bool{}
	order := make([]*childRow, 0, len(*rows))
	for _, v := range raw {
		id, _ := v.(string)
		r := e.rows[id]
		if r == nil || r.kind != k || r.parent != p {
			return nil, badParam("parameter_invalid", "ids", "Invalid ids: %q is not a %s of prospect %s.", fmt.Sprint(v), k.doctype, p.id)
		}
		if seen[r] {
			return nil, badParam("parameter_invalid", "ids", "Invalid ids: %s is listed twice.", id)
		}
		seen[r] = true
		order = append(order, r)
	}
	for _, r := range *rows {
		if !seen[r] {
			order = append(order, r)
		}
	}
	*rows = order
	items := make([][]byte, len(order))
	for i, r := range order {
		items[i] = r.appendJSON(nil, i+1)
	}
	return listEnvelope(items, 0, len(order)), nil
}
