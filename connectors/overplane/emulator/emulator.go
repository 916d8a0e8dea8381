package emulator

import (
	"encoding/json"
	"fmt"
	"github.com/crmsync/crmsync/connectors/overplane/api"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/emukit"
)

// DefaultSeedOffset is the emukit.Fake profile index the Overplane emulator
// seeds from when Options.SeedOffset is 0.
const DefaultSeedOffset = 1_000_000

// DefaultCompany is the "company" (your own ERPNext company) of seeded prospects.
const DefaultCompany = "Overplane Demo Ltd"

const (
	defaultLimit = 20
	maxLimit     = api.MaxLimit
	idLen        = 16
	timeLayout   = "2006-01-02T15:04:05.000Z"
	maxWriteLog  = 1000
)

// EmployeeOptions are the Frappe Select options of no_of_employees.
var employeeOptions = []string{"1-10", "11-50", "51-200", "201-500", "501-1000", "1000+"}

// Options configures New. Zero values take the defaults noted.
type Options struct {
	// Token is the accepted bearer key; default "dev-token".
	Token string
	// Records is how many prospects to seed. Same Records and SeedOffset give
	// the same data, ids and timestamps.
	Records int
	// SeedOffset is the emukit.Fake index of the first seeded prospect;
	// default DefaultSeedOffset.
	SeedOffset int
	// Faults configures fault injection (latency, 5xx, 429, resets).
	Faults emukit.Faults
	// Now is the server clock source; default time.Now.
	Now func() time.Time
	// PageCap caps limit on list calls; 0 means the API default of 100.
	PageCap int
	// SeedTieGroup is how many consecutive seeded prospects share one
	// created_at (default 3). A value >= Records puts every seeded prospect
	// on one timestamp.
	SeedTieGroup int
	// FrappeTypes checks the fields the vendor's pages type as free strings
	// the way ERPNext's doctypes type them: no_of_employees must be one of
	// the Select options and expected_closing a date. Off by default: the
	// seed page documents both as strings and gives "no_of_employees_example"
	// and "expected_closing_example" as examples (issue 9 item 8).
	FrappeTypes bool
	// ValidateLinks checks Link fields as ERPNext does (docs/apis.md §2
	// "Link fields"): nil or true is the vendor's behaviour, false the
	// profile that accepts any text in a Link field.
	ValidateLinks *bool
	// Company is the "company" of seeded prospects; default DefaultCompany.
	Company string
}

// Write is one write request the emulator accepted or refused, kept for tests.
type Write struct {
	Method string
	Path   string
	Status int
	// Body is the decoded JSON body (nil when it was not a JSON object).
	Body map[string]any
}

// PagingEdits is how many records the emulator changes after every
// prospect list page it serves (see Emulator.SetPagingEdits).
type PagingEdits struct {
	Creates int // new prospects (they sort first: newest created)
	Updates int // PATCH-like changes to random prospects
	Deletes int // random prospects deleted (shifting later ones up)
}

// Emulator is an in-memory Overplane API. It implements http.Handler and is
// safe for concurrent use.
type Emulator struct {
	opts          Options
	validateLinks bool
	clock         *emukit.Clock
	inj           *emukit.Injector
	handler       http.Handler

	mu        sync.Mutex
	rnd       *rand.Rand
	prospects map[string]*prospect
	order     []*prospect            // created_at desc, id desc
	names     map[string]*prospect   // lower-cased company_name
	rows      map[string]*childRow   // every child row by id
	docs      map[string]*collection // linked doctypes by slug
	seeding   bool
	edits     PagingEdits
	editSeq   int
	created   []string
	updated   []string
	deleted   []string
	writes    []Write
}

type prospect struct {
	id      string
	created time.Time
	updated time.Time
	f       map[string]any
	leads   []*childRow
	opps    []*childRow
}

// after reports whether p sorts after q in the list (older, or same
// created_at and smaller id).
func (p *prospect) after(q *prospect) bool {
	if !p.created.Equal(q.created) {
		return p.created.Before(q.created)
	}
	return p.id < q.id
}

type fieldKind int

const (
	kString fieldKind = iota
	kNumber
	kBool
)

type fieldSpec struct {
	name string
	kind fieldKind
}

// prospectFields are the Prospect attributes in the documented order.
var prospectFields = []fieldSpec{
	{"company_name", kString}, {"industry", kString}, {"market_segment", kString},
	{"customer_group", kString}, {"territory", kString}, {"no_of_employees", kString},
	{"annual_revenue", kNumber}, {"fax", kString}, {"website", kString},
	{"prospect_owner", kString}, {"company", kString},
}

// New builds an emulator seeded with o.Records prospects.
func New(o Options) *Emulator {
	if o.Token == "" {
		o.Token = "dev-token"
	}
	if o.SeedOffset == 0 {
		o.SeedOffset = DefaultSeedOffset
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PageCap <= 0 {
		o.PageCap = maxLimit
	}
	if o.SeedTieGroup <= 0 {
		o.SeedTieGroup = 3
	}
	if o.Company == "" {
		o.Company = DefaultCompany
	}
	e := &Emulator{
		opts:      o,
		clock:     emukit.NewClock(o.Now, time.Millisecond),
		rnd:       emukit.Rand(uint64(o.SeedOffset)*2654435761 + 0x0be2),
		prospects: map[string]*prospect{},
		names:     map[string]*prospect{},
		rows:      map[string]*childRow{},
		docs:      map[string]*collection{},
	}
	e.validateLinks = o.ValidateLinks == nil || *o.ValidateLinks
	e.inj = emukit.NewInjector(o.Faults, nil, writeError) // rate windows run on real time
	e.seed()
	e.handler = e.inj.Wrap(http.HandlerFunc(e.serve))
	return e
}

// ServeHTTP implements http.Handler.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.handler.ServeHTTP(w, r) }

// Len returns how many prospects exist.
func (e *Emulator) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.order)
}

// IDs returns every prospect id in list order (newest created first).
func (e *Emulator) IDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.order))
	for i, p := range e.order {
		out[i] = p.id
	}
	return out
}

// Prospect returns a prospect as the API would serialise it, decoded.
func (e *Emulator) Prospect(id string) (map[string]any, bool) {
	e.mu.Lock()
	p, ok := e.prospects[id]
	var b []byte
	if ok {
		b = p.appendJSON(nil)
	}
	e.mu.Unlock()
	if !ok {
		return nil, false
	}
	return decodeObject(b), true
}

func decodeObject(b []byte) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// Freeze makes every write share timestamp t (the ties knob); a zero t
// unfreezes.
func (e *Emulator) Freeze(t time.Time) { e.clock.Freeze(t) }

// SetFaults replaces the fault configuration.
func (e *Emulator) SetFaults(f emukit.Faults) { e.inj.Set(f) }

// Injected returns how many faults of each kind were injected.
func (e *Emulator) Injected() map[string]int { return e.inj.Injected() }

// SetPagingEdits makes the emulator change records after every prospect list
// page it serves, as if other users worked while a client pages. The zero
// value turns it off.
func (e *Emulator) SetPagingEdits(p PagingEdits) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.edits = p
}

// EditDuringPaging is SetPagingEdits with n creates, n updates and n deletes
// per page served.
func (e *Emulator) EditDuringPaging(n int) {
	e.SetPagingEdits(PagingEdits{Creates: n, Updates: n, Deletes: n})
}

// PagingEdited returns the ids the paging edits created, updated and deleted
// so far.
func (e *Emulator) PagingEdited() (created, updated, deleted []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.created...), append([]string(nil), e.updated...), append([]string(nil), e.deleted...)
}

// Writes returns the last write requests (POST, PATCH, DELETE) with their
// decoded bodies and answer status, oldest first.
func (e *Emulator) Writes() []Write {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Write(nil), e.writes...)
}

// ---------------------------------------------------------------------------
// seeding

var (
	segments = []string{"Small Business", "Mid-Market", "Enterprise"}
	groups   = []string{"Commercial", "Commercial", "Government", "Non Profit"}
	owners   = []string{"sales@overplane-demo.example", "anna.sales@overplane-demo.example", "bram.sales@overplane-demo.example"}
)

var seedBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (e *Emulator) seed() {
	e.seeding = true
	defer func() { e.seeding = false }()
	e.seedLinked()
	for i := 0; i < e.opts.Records; i++ {
		pf := emukit.Fake(e.opts.SeedOffset + i)
		created := seedBase.Add(time.Duration(i/e.opts.SeedTieGroup) * time.Minute)
		updated := created
		if i%4 == 1 {
			updated = created.Add(time.Duration(30+i%90) * time.Minute)
		}
		var fax any
		if i%10 == 0 {
			fax = pf.Phone
		}
		p := &prospect{
			id: e.newID("prospect"), created: created, updated: updated,
			f: map[string]any{
				"company_name":    pf.Company,
				"industry":        pf.Industry,
				"market_segment":  segments[i%len(segments)],
				"customer_group":  groups[i%len(groups)],
				"territory":       pf.Country,
				"no_of_employees": employeeOptions[(i*7)%len(employeeOptions)],
				"annual_revenue":  float64((i%50 + 1) * 125000),
				"fax":             fax,
				"website":         pf.Website,
				"prospect_owner":  owners[i%len(owners)],
				"company":         e.opts.Company,
			},
		}
		e.insert(p)
		e.seedChildren(p, i, pf)
	}
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newID returns a fresh "<doctype>_<base62>" id. Callers hold e.mu (or are
// seeding).
func (e *Emulator) newID(doctype string) string {
	for {
		b := make([]byte, 0, len(doctype)+1+idLen)
		b = append(b, doctype...)
		b = append(b, '_')
		for i := 0; i < idLen; i++ {
			b = append(b, base62[e.rnd.IntN(len(base62))])
		}
		id := string(b)
		if _, ok := e.prospects[id]; ok {
			continue
		}
		if _, ok := e.rows[id]; ok {
			continue
		}
		if c := e.docs[doctype]; c != nil && c.byID[id] != nil {
			continue
		}
		return id
	}
}

// insert adds p to the store keeping the list order. Callers hold e.mu.
func (e *Emulator) insert(p *prospect) {
	e.prospects[p.id] = p
	if n, ok := p.f["company_name"].(string); ok && n != "" {
		e.names[strings.ToLower(n)] = p
	}
	i := sort.Search(len(e.order), func(i int) bool { return e.order[i].after(p) })
	e.order = append(e.order, nil)
	copy(e.order[i+1:], e.order[i:])
	e.order[i] = p
}

// remove deletes p and its child rows. Callers hold e.mu.
func (e *Emulator) remove(p *prospect) {
	delete(e.prospects, p.id)
	if n, ok := p.f["company_name"].(string); ok && e.names[strings.ToLower(n)] == p {
		delete(e.names, strings.ToLower(n))
	}
	i := sort.Search(len(e.order), func(i int) bool { return !p.after(e.order[i]) })
	if i < len(e.order) && e.order[i] == p {
		e.order = append(e.order[:i], e.order[i+1:]...)
	}
	for _, r := range p.leads {
		delete(e.rows, r.id)
	}
	for _, r := range p.opps {
		delete(e.rows, r.id)
	}
}

// appendJSON serialises p with the documented key order.
func (p *prospect) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, p.id)
	b = append(b, `,"created_at":"`...)
	b = p.created.UTC().AppendFormat(b, timeLayout)
	b = append(b, `","updated_at":"`...)
	b = p.updated.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	for _, fs := range prospectFields {
		b = append(b, ',')
		b = strconv.AppendQuote(b, fs.name)
		b = append(b, ':')
		b = appendValue(b, p.f[fs.name])
	}
	return append(b, '}')
}

func appendValue(b []byte, v any) []byte {
	j, err := json.Marshal(v)
	if err != nil {
		return append(b, "null"...)
	}
	return append(b, j...)
}

// ---------------------------------------------------------------------------
// errors

// apiError is the emulator's Stripe-like error.
type apiError struct {
	status  int
	code    string
	message string
	param   string
	// frappe, when set, is the Frappe exception class the error stands for
	// ("LinkValidationError"): the body then also carries Frappe's own
	// exc_type and exception keys.
	frappe string
}

func (a *apiError) Error() string { return a.message }

func badParam(code, param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, param: param, message: fmt.Sprintf(format, args...)}
}

func notFound(kind, id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "resource_missing", param: "id", message: fmt.Sprintf("No such %s: '%s'", kind, id)}
}

// writeError is the emukit.ErrorWriter: every error in the API's envelope.
func writeError(w http.ResponseWriter, status int, message string) {
	a := &apiError{status: status, message: message}
	switch {
	case status == http.StatusTooManyRequests:
		a.code = "rate_limit"
		a.message = "Too many requests hit the API too quickly. We recommend an exponential backoff of your requests."
	case status >= 500:
		a.code = "api_error"
	}
	writeAPIError(w, a)
}

func writeAPIError(w http.ResponseWriter, a *apiError) {
	typ := "invalid_request_error"
	if a.status >= 500 {
		typ = "api_error"
	}
	body := map[string]any{"type": typ, "message": a.message}
	if a.code != "" {
		body["code"] = a.code
	}
	if a.param != "" {
		body["param"] = a.param
	}
	env := map[string]any{"error": body}
	if a.frappe != "" {
		env["exc_type"] = a.frappe
		env["exception"] = "frappe.exceptions." + a.frappe + ": " + a.message
	}
	b, _ := json.Marshal(env)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// ---------------------------------------------------------------------------
// routing

// The paths, shared with the client in connectors/overplane/api.
const (
	prospectPath = api.ProspectPath
	leadPath     = api.LeadPath
	oppPath      = api.OppPath
)

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request) {
	tok := emukit.BearerToken(r)
	if tok == "" {
		writeAPIError(w, &apiError{status: http.StatusUnauthorized, code: "api_key_missing",
			message: "You did not provide an API key. Provide it in the Authorization header as 'Bearer <key>'."})
		return
	}
	if tok != e.opts.Token {
		writeAPIError(w, &apiError{status: http.StatusUnauthorized, code: "api_key_invalid", message: "Invalid API Key provided."})
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	var body map[string]any
	if r.Method == http.MethodPost || r.Method == http.MethodPatch {
		var aerr *apiError
		body, aerr = readBody(r)
		if aerr != nil {
			e.logWrite(r, nil, aerr.status)
			writeAPIError(w, aerr)
			return
		}
	}
	out, aerr := e.route(r, path, body)
	status := http.StatusOK
	if aerr != nil {
		status = aerr.status
	}
	if r.Method != http.MethodGet {
		e.logWrite(r, body, status)
	}
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	writeJSON(w, out)
}

func (e *Emulator) route(r *http.Request, path string, body map[string]any) ([]byte, *apiError) {
	q := r.URL.Query()
	if out, aerr, ok := e.routeChild(r, path, body); ok {
		return out, aerr
	}
	if out, aerr, ok := e.routeDoc(r, path, body); ok {
		return out, aerr
	}
	switch {
	case path == prospectPath:
		switch r.Method {
		case http.MethodGet:
			return e.listProspects(q)
		case http.MethodPost:
			return e.createProspect(body)
		}
		return nil, methodNotAllowed(r)
	case strings.HasPrefix(path, prospectPath+"/"):
		id := strings.TrimPrefix(path, prospectPath+"/")
		if strings.Contains(id, "/") {
			return nil, unknownURL(r)
		}
		switch r.Method {
		case http.MethodGet:
			return e.getProspect(id)
		case http.MethodPatch:
			return e.updateProspect(id, body)
		case http.MethodDelete:
			return e.deleteProspect(id)
		}
		return nil, methodNotAllowed(r)
	}
	return nil, unknownURL(r)
}

func unknownURL(r *http.Request) *apiError {
	return &apiError{status: http.StatusNotFound, code: "url_invalid", message: fmt.Sprintf("Unrecognized request URL (%s: %s).", r.Method, r.URL.Path)}
}

func methodNotAllowed(r *http.Request) *apiError {
	return &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: fmt.Sprintf("Method %s is not allowed on %s.", r.Method, r.URL.Path)}
}

func readBody(r *http.Request) (map[string]any, *apiError) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, badParam("invalid_json", "", "Could not read the request body.")
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return nil, badParam("invalid_json", "", "Invalid JSON body: expected a JSON object.")
	}
	return m, nil
}

func (e *Emulator) logWrite(r *http.Request, body map[string]any, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.writes) >= maxWriteLog {
		e.writes = append(e.writes[:0], e.writes[len(e.writes)-maxWriteLog/2:]...)
	}
	e.writes = append(e.writes, Write{Method: r.Method, Path: r.URL.Path, Status: status, Body: body})
}

// paging parses limit and offset, and refuses any other query parameter
// (extra lists the ones the route also accepts).
func paging(q url.Values, pageCap int, extra ...string) (limit, offset int, aerr *apiError) {
	for k := range q {
		if k == "limit" || k == "offset" {
			continue
		}
		known := false
		for _, x := range extra {
			known = known || k == x
		}
		if !known {
			return 0, 0, badParam("parameter_unknown", k, "Received unknown parameter: %s", k)
		}
	}
	limit, offset = defaultLimit, 0
	if v := q.Get("limit"); v != "" || q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, badParam("parameter_invalid_integer", "limit", "Invalid limit: %q must be a non-negative integer.", v)
		}
		limit = n
	}
	if limit > pageCap {
		limit = pageCap
	}
	if v := q.Get("offset"); v != "" || q.Has("offset") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, 0, badParam("parameter_invalid_integer", "offset", "Invalid offset: %q must be a non-negative integer.", v)
		}
		offset = n
	}
	return limit, offset, nil
}

// listEnvelope writes {"data":[...],"has_more":...,"total":N}.
func listEnvelope(items [][]byte, offset, total int) []byte {
	b := make([]byte, 0, 64+len(items)*400)
	b = append(b, `{"data":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	b = append(b, `],"has_more":`...)
	b = strconv.AppendBool(b, offset+len(items) < total)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	return append(b, '}')
}

// ---------------------------------------------------------------------------
// prospects

func (e *Emulator) listProspects(q url.Values) ([]byte, *apiError) {
	limit, offset, aerr := paging(q, e.opts.PageCap)
	if aerr != nil {
		return nil, aerr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	total := len(e.order)
	lo, hi := min(offset, total), min(offset+limit, total)
	items := make([][]byte, 0, hi-lo)
	for _, p := range e.order[lo:hi] {
		items = append(items, p.appendJSON(nil))
	}
	out := listEnvelope(items, offset, total)
	e.applyPagingEdits()
	return out, nil
}

func (e *Emulator) getProspect(id string) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.prospects[id]
	if !ok {
		return nil, notFound("prospect", id)
	}
	return p.appendJSON(nil), nil
}

// validateProspect checks body against the Prospect attributes. On create,
// company is required.
func (e *Emulator) validateProspect(body map[string]any, create bool) *apiError {
	known := map[string]fieldKind{}
	for _, fs := range prospectFields {
		known[fs.name] = fs.kind
	}
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kind, ok := known[k]
		if !ok {
			return badParam("parameter_unknown", k, "Received unknown parameter: %s", k)
		}
		if aerr := checkType(k, kind, body[k]); aerr != nil {
			return aerr
		}
	}
	if c, present := body["company"]; create || present {
		if s, _ := c.(string); strings.TrimSpace(s) == "" {
			return badParam("parameter_missing", "company", "Missing required param: company.")
		}
	}
	if v, ok := body["no_of_employees"].(string); ok && v != "" && e.opts.FrappeTypes {
		valid := false
		for _, o := range employeeOptions {
			valid = valid || v == o
		}
		if !valid {
			return badParam("parameter_invalid", "no_of_employees", "Invalid no_of_employees: %q is not one of %s.", v, strings.Join(employeeOptions, ", "))
		}
	}
	return nil
}

func checkType(name string, kind fieldKind, v any) *apiError {
	if v == nil {
		return nil
	}
	switch kind {
	case kNumber:
		if _, ok := v.(float64); !ok {
			return badParam("parameter_invalid", name, "Invalid %s: must be a number.", name)
		}
	case kString:
		if _, ok := v.(string); !ok {
			return badParam("parameter_invalid", name, "Invalid %s: must be a string.", name)
		}
	case kBool:
		if _, ok := v.(bool); !ok {
			return badParam("parameter_invalid", name, "Invalid %s: must be a boolean.", name)
		}
	}
	return nil
}

// nameClash returns a 409 when company_name in body belongs to another
// prospect than self. Callers hold e.mu.
func (e *Emulator) nameClash(body map[string]any, self *prospect) *apiError {
	n, ok := body["company_name"].(string)
	if !ok || n == "" {
		return nil
	}
	if other := e.names[strings.ToLower(n)]; other != nil && other != self {
		return &apiError{status: http.StatusConflict, code: "resource_already_exists", param: "company_name",
			message: fmt.Sprintf("A prospect with company_name %q already exists (%s).", n, other.id)}
	}
	return nil
}

func (e *Emulator) createProspect(body map[string]any) ([]byte, *apiError) {
	if aerr := e.validateProspect(body, true); aerr != nil {
		return nil, aerr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if aerr := e.nameClash(body, nil); aerr != nil {
		return nil, aerr
	}
	if aerr := e.checkLinks(prospectLinks, body, 0); aerr != nil {
		return nil, aerr
	}
	now := e.clock.Now()
	p := &prospect{id: e.newID("prospect"), created: now, updated: now, f: map[string]any{}}
	for _, fs := range prospectFields {
		p.f[fs.name] = body[fs.name]
	}
	if p.f["annual_revenue"] == nil {
		p.f["annual_revenue"] = 0.0
	}
	e.insert(p)
	return p.appendJSON(nil), nil
}

func (e *Emulator) updateProspect(id string, body map[string]any) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.prospects[id]
	if !ok {
		return nil, notFound("prospect", id)
	}
	if aerr := e.validateProspect(body, false); aerr != nil {
		return nil, aerr
	}
	if aerr := e.nameClash(body, p); aerr != nil {
		return nil, aerr
	}
	if aerr := e.checkLinks(prospectLinks, body, 0); aerr != nil {
		return nil, aerr
	}
	e.patch(p, body)
	return p.appendJSON(nil), nil
}

// patch merges body into p and bumps updated_at. Callers hold e.mu.
func (e *Emulator) patch(p *prospect, body map[string]any) {
	if n, ok := body["company_name"]; ok {
		if old, _ := p.f["company_name"].(string); old != "" && e.names[strings.ToLower(old)] == p {
			delete(e.names, strings.ToLower(old))
		}
		if s, _ := n.(string); s != "" {
			e.names[strings.ToLower(s)] = p
		}
	}
	for k, v := range body {
		if k == "annual_revenue" && v == nil {
			v = 0.0
		}
		p.f[k] = v
	}
	p.updated = e.clock.Now()
}

func (e *Emulator) deleteProspect(id string) ([]byte, *apiError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.prospects[id]
	if !ok {
		return nil, notFound("prospect", id)
	}
	e.remove(p)
	return deletedBody(id), nil
}

func deletedBody(id string) []byte {
	b := append([]byte(`{"id":`), strconv.Quote(id)...)
	return append(b, `,"deleted":true}`...)
}

// applyPagingEdits performs the configured paging edits. Callers hold e.mu.
func (e *Emulator) applyPagingEdits() {
	ed := e.edits
	for i := 0; i < ed.Updates && len(e.order) > 0; i++ {
		p := e.order[e.rnd.IntN(len(e.order))]
		e.editSeq++
		e.patch(p, map[string]any{"fax": fmt.Sprintf("+31 20 999 %04d", e.editSeq%10000)})
		e.updated = append(e.updated, p.id)
	}
	for i := 0; i < ed.Creates; i++ {
		e.editSeq++
		now := e.clock.Now()
		p := &prospect{id: e.newID("prospect"), created: now, updated: now, f: map[string]any{}}
		for _, fs := range prospectFields {
			p.f[fs.name] = nil
		}
		p.f["company_name"] = fmt.Sprintf("Paging Edit %d Co", e.editSeq)
		p.f["company"] = e.opts.Company
		p.f["annual_revenue"] = 0.0
		e.insert(p)
		e.created = append(e.created, p.id)
	}
	for i := 0; i < ed.Deletes && len(e.order) > 0; i++ {
		p := e.order[e.rnd.IntN(len(e.order))]
		e.remove(p)
		e.deleted = append(e.deleted, p.id)
	}
}
