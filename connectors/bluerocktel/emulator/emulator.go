package emulator

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/emukit"
)

// User is an account of the emulated instance.
type User struct {
	ID       int64
	Name     string
	Email    string
	Password string // for POST /api/login
	// Role is the user's role id. Role 5 (sales) has representative_id
	// forced to itself on create and gets 403 when changing it on update.
	Role int
	// Token, when set, is a static bearer token that authenticates as this user.
	Token string
}

// Options configures New. Zero values take the defaults noted.
type Options struct {
	// Token is a static bearer token accepted as an administrator (role 1,
	// user id 1); default "dev-token".
	Token string
	// Records is how many prospects to seed (ids 1..Records). Same Records
	// and SeedOffset give the same data, ids and timestamps.
	Records int
	// Customers is how many customers to seed (ids 1..Customers), from the
	// fake profiles that follow the prospects'.
	Customers int
	// SeedOffset is the index of the first emukit.Fake profile used;
	// 0 means the default 2,000,000, a negative value means profile 0.
	SeedOffset int
	// SeedTimestamp, when set, gives every seeded record this created_at
	// and updated_at (thousands of ties).
	SeedTimestamp time.Time
	// Faults injects latency, 5xx, 429 and resets in front of every route.
	Faults emukit.Faults
	// Now is the server clock source; default time.Now.
	Now func() time.Time
	// PageCap caps per_page; 0 means 100 (the vendor's cap is unknown).
	PageCap int
	// DefaultPerPage is per_page when the request has none; 0 means
	// Laravel's default of 15.
	DefaultPerPage int
	// Naming is the spelling of the properties the emulator answers with
	// and the only one it accepts on POST and PUT; anything but Snake
	// ("" too) means Camel, the spelling the official SDK decodes and
	// writes (and so, very probably, the live API's). A key in the other
	// spelling is dropped without an error, as Laravel's
	// $request->validated() drops keys without a rule: the write still
	// answers 201 (or 200), without the value. Keys that are the same in
	// both spellings (name, phone, brand_id, ...) are kept either way.
	Naming Naming
	// LenientNaming, when true, accepts both spellings on input (the
	// spelling of Naming wins when a client sends both). It hides a client
	// writing the wrong spelling, so only tests that are about something
	// else should set it.
	LenientNaming bool
	// UpdateStatus is the status of a successful PUT; 0 means 201, as the
	// vendor documents. Set 200 to emulate a conventional server.
	UpdateStatus int
	// ConvertPath is the prospect -> customer route (POST), with "{id}";
	// default DefaultConvertPath. The vendor documents no such route
	// (docs/apis.md §3 "Conversion"), so NoConvert removes it: the path
	// then answers Laravel's 404 "The route ... could not be found.".
	ConvertPath string
	// NoConvert, when true, serves no conversion route at all.
	NoConvert bool
	// HiddenFromSales are prospect ids outside the viewable_by_sale scope:
	// a role-5 (sales) user does not see them in lists and gets 403
	// "This action is unauthorized." when reading, updating or deleting
	// one (seed: "role-5 users only see prospects visible to sales
	// (viewable_by_sale scope)", "Response 403: Forbidden"). Other roles
	// see every prospect.
	HiddenFromSales []int64
	// TermMatchEmail, when true, lets filter[term_match] match e-mail
	// addresses too. By default it matches the name and the account number
	// only: every vendor example searches an account number (php-sdk
	// README "'term_match' => 'PR0001'"), and nothing says a full-text
	// index covers e-mail addresses, so a client must not rely on it.
	TermMatchEmail bool
	// Users are the accounts that can log in with POST /api/login.
	// Default: one administrator admin@bluerocktel.example / "password".
	Users []User
	// StableTies, when true, orders rows that tie on the requested sort by
	// id. By default ties come back in an order that changes with the page
	// requested, as MySQL's ORDER BY ... LIMIT does, so a client that does
	// not add a unique sort key can skip or repeat records.
	StableTies bool
}

// Write is one write request the emulator accepted for processing
// (POST, PUT, DELETE), kept for tests.
type Write struct {
	Method string
	Path   string
	// Body is the decoded JSON or form body, keys as sent.
	Body map[string]any
}

// Emulator is an in-memory BlueRockTel instance: a Laravel API with
// Passport bearer tokens, Spatie QueryBuilder lists and the plain
// length-aware paginator. It implements http.Handler and is safe for
// concurrent use.
type Emulator struct {
	o       Options
	clock   *emukit.Clock
	inj     *emukit.Injector
	handler http.Handler
	convert []string       // ConvertPath split into segments; nil: no route
	hidden  map[int64]bool // prospects outside viewable_by_sale (read-only after New)

	frozenMu sync.Mutex
	frozen   time.Time // the Freeze instant, zero while the clock runs

	mu           sync.Mutex
	tables       map[string]*table
	codes        []ProspectionCode
	naming       Naming
	lenient      bool // accept both spellings on input (LenientNaming)
	updateStatus int
	tokens       map[string]*User // bearer token -> user
	users        []*User
	logins       int
	editPaging   int
	editSeq      int
	onList       func(entity string)
	writes       []Write
	issued       []string // tokens issued by login
}

// New builds an emulator seeded from o.
func New(o Options) *Emulator {
	if o.Token == "" {
		o.Token = "dev-token"
	}
	switch {
	case o.SeedOffset == 0:
		o.SeedOffset = 2_000_000
	case o.SeedOffset < 0:
		o.SeedOffset = 0
	}
	if o.PageCap <= 0 {
		o.PageCap = 100
	}
	if o.DefaultPerPage <= 0 {
		o.DefaultPerPage = 15
	}
	if o.DefaultPerPage > o.PageCap {
		o.DefaultPerPage = o.PageCap
	}
	if o.Naming != Snake {
		o.Naming = Camel
	}
	if o.UpdateStatus == 0 {
		o.UpdateStatus = http.StatusCreated
	}
	if o.ConvertPath == "" {
		o.ConvertPath = DefaultConvertPath
	}
	if o.Users == nil {
		o.Users = []User{{ID: 1, Name: "API Admin", Email: "admin@bluerocktel.example", Password: "password", Role: 1}}
	}
	e := &Emulator{
		o:            o,
		clock:        emukit.NewClock(o.Now, time.Microsecond),
		tables:       map[string]*table{},
		codes:        append([]ProspectionCode(nil), defaultProspectionCodes...),
		naming:       o.Naming,
		lenient:      o.LenientNaming,
		updateStatus: o.UpdateStatus,
		tokens:       map[string]*User{},
		convert:      segments(o.ConvertPath),
		hidden:       map[int64]bool{},
	}
	if o.NoConvert {
		e.convert = nil
	}
	for _, id := range o.HiddenFromSales {
		e.hidden[id] = true
	}
	admin := &User{ID: 1, Name: "API Admin", Email: "admin@bluerocktel.example", Role: 1, Token: o.Token}
	for i := range o.Users {
		u := o.Users[i]
		e.users = append(e.users, &u)
		if u.Token != "" {
			e.tokens[u.Token] = &u
		}
	}
	if _, ok := e.tokens[o.Token]; !ok {
		e.tokens[o.Token] = admin
	}
	pros := newTable(newCollection(Prospects, `App\Prospect`, "PR", "Prospect deleted successfully.", prospectColumns, prospectDefaults()))
	e.tables[Prospects] = pros
	e.seed(pros, o.Records, o.SeedOffset, 0)
	cust := newTable(newCollection(Customers, `App\Customer`, "CL", "Customer deleted successfully.", customerColumns, customerDefaults()))
	e.tables[Customers] = cust
	e.seed(cust, o.Customers, o.SeedOffset+o.Records, o.Records)
	e.inj = emukit.NewInjector(o.Faults, o.Now, func(w http.ResponseWriter, status int, msg string) {
		if status == http.StatusTooManyRequests {
			w.Header().Set("X-RateLimit-Limit", "60")
			w.Header().Set("X-RateLimit-Remaining", "0")
		}
		message(w, status, msg)
	})
	e.handler = e.inj.Wrap(http.HandlerFunc(e.route))
	return e
}

func (e *Emulator) seed(t *table, n, offset, timeOffset int) {
	for i := 0; i < n; i++ {
		id := t.nextID
		t.nextID++
		r := seedRow(t.c, id, i, emukit.Fake(offset+i))
		if timeOffset != 0 {
			r.created, r.updated = seedTimes(i + timeOffset)
		}
		if !e.o.SeedTimestamp.IsZero() {
			ts := e.o.SeedTimestamp.UTC().Truncate(time.Microsecond)
			r.created, r.updated = ts, ts
		}
		t.rows[id] = r
	}
	t.touch()
}

// ServeHTTP serves the API behind the fault injector.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.serverDate(w)
	e.handler.ServeHTTP(w, r)
}

// serverDate sets the reply's Date header from the emulator's own clock,
// the one that stamps updated_at, as an origin server does (RFC 9110
// §6.6.1: the time the message was generated, in whole seconds): with
// Freeze it shows the frozen instant. net/http only adds its own Date
// when the handler set none.
func (e *Emulator) serverDate(w http.ResponseWriter) {
	e.frozenMu.Lock()
	now := e.frozen
	e.frozenMu.Unlock()
	if now.IsZero() {
		if e.o.Now != nil {
			now = e.o.Now()
		} else {
			now = time.Now()
		}
	}
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
}

// ---- test and demo helpers ----

// Len returns the number of prospects.
func (e *Emulator) Len() int { return e.Count(Prospects) }

// Count returns the number of records in entity ("prospects", "customers").
func (e *Emulator) Count(entity string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.tables[entity]; t != nil {
		return len(t.rows)
	}
	return 0
}

// IDs returns the ids of entity in ascending order.
func (e *Emulator) IDs(entity string) []int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tables[entity]
	if t == nil {
		return nil
	}
	out := make([]int64, 0, len(t.rows))
	for id := range t.rows {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Columns describes the writable columns of entity ("prospects",
// "customers") in the documentation's order, for tests that write every
// column; nil for an unknown entity.
func (e *Emulator) Columns(entity string) []Column {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tables[entity]
	if t == nil {
		return nil
	}
	out := make([]Column, 0, len(t.c.Columns))
	for _, c := range t.c.Columns {
		out = append(out, Column{Name: c.Name, Type: kindNames[c.Kind], Default: t.c.Defaults[c.Name]})
	}
	return out
}

// Record returns a copy of a stored record with documented (snake_case)
// keys plus "id" (int64) and "created_at"/"updated_at" (time.Time).
func (e *Emulator) Record(entity string, id int64) (map[string]any, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tables[entity]
	if t == nil {
		return nil, false
	}
	r, ok := t.rows[id]
	if !ok {
		return nil, false
	}
	out := map[string]any{"id": r.id, "created_at": r.created, "updated_at": r.updated}
	for k, v := range r.vals {
		out[k] = v
	}
	return out, true
}

// Edit changes a record as another user of the instance would (no
// validation), bumping updated_at. Keys are documented column names.
func (e *Emulator) Edit(entity string, id int64, fields map[string]any) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tables[entity]
	if t == nil {
		return false
	}
	r, ok := t.rows[id]
	if !ok {
		return false
	}
	for k, v := range fields {
		if _, known := t.c.byName[k]; known {
			r.vals[k] = v
		}
	}
	r.updated = e.clock.Now()
	t.touch()
	return true
}

// Remove deletes a record as another user would. It reports whether it existed.
func (e *Emulator) Remove(entity string, id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.tables[entity]
	if t == nil {
		return false
	}
	if _, ok := t.rows[id]; !ok {
		return false
	}
	delete(t.rows, id)
	t.touch()
	return true
}

// Freeze makes every write from now on share timestamp ts (the ties knob).
// The reply's Date shows ts too.
func (e *Emulator) Freeze(ts time.Time) {
	e.frozenMu.Lock()
	e.frozen = ts.UTC().Truncate(time.Microsecond)
	e.frozenMu.Unlock()
	e.clock.Freeze(ts)
}

// Unfreeze lets the server clock run again.
func (e *Emulator) Unfreeze() { e.Freeze(time.Time{}) }

// SetNaming switches the spelling of the emulator's answers, and of the
// input it accepts unless it is lenient (Options.LenientNaming).
func (e *Emulator) SetNaming(n Naming) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if n == Snake || n == Camel {
		e.naming = n
	}
}

// SetUpdateStatus sets the status of a successful PUT (200 or 201).
func (e *Emulator) SetUpdateStatus(status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.updateStatus = status
}

// SetFaults replaces the fault configuration.
func (e *Emulator) SetFaults(f emukit.Faults) { e.inj.Set(f) }

// Injected returns how many faults of each kind were injected.
func (e *Emulator) Injected() map[string]int { return e.inj.Injected() }

// EditDuringPaging makes the emulator edit the n least recently updated
// records of a collection after answering each page of that collection's
// list, as a colleague would while a client pages (0 turns it off).
func (e *Emulator) EditDuringPaging(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.editPaging = n
}

// OnList registers fn, called after every list page is answered with the
// collection's name (outside the emulator's lock: fn may call Edit, Remove,
// ...). nil removes it.
func (e *Emulator) OnList(fn func(entity string)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onList = fn
}

// Writes returns the write requests received so far (the most recent
// ones when there were very many).
func (e *Emulator) Writes() []Write {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Write(nil), e.writes...)
}

// ---- routing ----

func segments(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

func matchSegments(pattern, path []string) (string, bool) {
	if len(pattern) != len(path) {
		return "", false
	}
	id := ""
	for i, s := range pattern {
		if s == "{id}" {
			id = path[i]
			continue
		}
		if s != path[i] {
			return "", false
		}
	}
	return id, true
}

// route dispatches like Laravel: match the route (404/405), run the auth
// middleware, then the controller.
func (e *Emulator) route(w http.ResponseWriter, r *http.Request) {
	path := "/" + strings.Trim(r.URL.Path, "/")
	seg := segments(path)
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet // Laravel answers HEAD on every GET route
	}

	if id, ok := matchSegments(e.convert, seg); ok && e.convert != nil {
		if !e.allow(w, r, "POST") || !e.authed(w, r) {
			return
		}
		e.convertProspect(w, r, id)
		return
	}
	switch {
	case path == "/login":
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		_, _ = io.WriteString(w, "<!DOCTYPE html><html><body><form method=\"post\">Login</form></body></html>")
		return
	case path == "/api/login":
		if e.allow(w, r, "POST") {
			e.login(w, r)
		}
		return
	case path == "/api/v1/customers/search":
		if e.allow(w, r, "GET") && e.authed(w, r) {
			e.searchCustomers(w, r)
		}
		return
	case path == "/api/version":
		if e.allow(w, r, "GET") {
			writeJSON(w, http.StatusOK, obj{{"version", "1.0"}, {"status", "ok"}, {"vendor", "BlueRockTel"}, {"url", baseURL(r)}})
		}
		return
	case len(seg) == 3 && seg[0] == "api" && seg[1] == "v1" && seg[2] == "prospection-codes":
		if e.allow(w, r, "GET") && e.authed(w, r) {
			e.listCodes(w, r)
		}
		return
	}
	if len(seg) >= 3 && seg[0] == "api" && seg[1] == "v1" {
		e.mu.Lock()
		t := e.tables[seg[2]]
		e.mu.Unlock()
		if t != nil {
			switch len(seg) {
			case 3:
				if !e.allow(w, r, "GET", "POST") || !e.authed(w, r) {
					return
				}
				if method == http.MethodGet {
					e.list(w, r, t)
				} else {
					e.create(w, r, t)
				}
				return
			case 4:
				if !e.allow(w, r, "GET", "PUT", "DELETE") || !e.authed(w, r) {
					return
				}
				if e.forbidden(r, t, seg[3]) {
					message(w, http.StatusForbidden, "This action is unauthorized.")
					return
				}
				switch method {
				case http.MethodGet:
					e.show(w, r, t, seg[3])
				case http.MethodPut:
					e.update(w, r, t, seg[3])
				default:
					e.destroy(w, r, t, seg[3])
				}
				return
			}
		}
	}
	message(w, http.StatusNotFound, fmt.Sprintf("The route %s could not be found.", strings.TrimPrefix(path, "/")))
}

// allow answers 405 (Laravel's MethodNotAllowedHttpException) unless the
// request's method is one of methods.
func (e *Emulator) allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m || (r.Method == http.MethodHead && m == http.MethodGet) {
			return true
		}
	}
	var list []string
	for _, m := range methods {
		list = append(list, m)
		if m == "GET" {
			list = append(list, "HEAD")
		}
	}
	message(w, http.StatusMethodNotAllowed, fmt.Sprintf("The %s method is not supported for route %s. Supported methods: %s.",
		r.Method, strings.Trim(r.URL.Path, "/"), strings.Join(list, ", ")))
	return false
}

// authed runs the auth:api middleware: 401 JSON for API clients, a
// redirect to the login page for anyone else.
func (e *Emulator) authed(w http.ResponseWriter, r *http.Request) bool {
	if e.user(r) != nil {
		return true
	}
	if wantsJSON(r) {
		message(w, http.StatusUnauthorized, "Unauthenticated.")
		return false
	}
	w.Header().Set("Location", baseURL(r)+"/login")
	w.WriteHeader(http.StatusFound)
	return false
}

func (e *Emulator) user(r *http.Request) *User {
	tok := emukit.BearerToken(r)
	if tok == "" {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokens[tok]
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return scheme + "://" + r.Host
}

// input returns the request's parameters as Laravel's $request->all() does:
// query string merged with a JSON or form body (body wins), after the
// TrimStrings and ConvertEmptyStringsToNull middleware. body holds the
// decoded body alone, keys as sent.
func input(r *http.Request) (all, body map[string]any, err error) {
	all = map[string]any{}
	body = map[string]any{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			all[k] = v[len(v)-1]
		}
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return nil, nil, err
	}
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.Contains(ct, "json") || (ct == "" && len(bytes.TrimSpace(data)) > 0 && bytes.TrimSpace(data)[0] == '{'):
		if len(bytes.TrimSpace(data)) == 0 {
			break
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if derr := dec.Decode(&v); derr != nil {
			return nil, nil, derr
		}
		if m, ok := v.(map[string]any); ok {
			body = m
		}
	case strings.Contains(ct, "x-www-form-urlencoded"):
		vals, perr := url.ParseQuery(string(data))
		if perr != nil {
			return nil, nil, perr
		}
		for k, v := range vals {
			if len(v) > 0 {
				body[k] = v[len(v)-1]
			}
		}
	}
	for k, v := range body {
		all[k] = v
	}
	copyBody := make(map[string]any, len(body))
	for k, v := range body {
		copyBody[k] = v
	}
	normaliseInput(all)
	return all, copyBody, nil
}

// ---- controllers ----

var allowedSorts = []string{"id", "created_at", "updated_at"}
var allowedFilters = []string{"name", "id", "term_match"}

// queryParams keeps the request's query in its original order, for the
// paginator's URLs.
func queryParams(raw string) [][2]string {
	var out [][2]string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		ku, err1 := url.QueryUnescape(k)
		vu, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || ku == "page" {
			continue
		}
		out = append(out, [2]string{ku, vu})
	}
	return out
}

func (e *Emulator) list(w http.ResponseWriter, r *http.Request, t *table) {
	q := r.URL.Query()
	// Spatie: filter[...] parameters, only allowed ones.
	filters := map[string]string{}
	var unknown []string
	for k, v := range q {
		if !strings.HasPrefix(k, "filter[") || !strings.HasSuffix(k, "]") {
			continue
		}
		name := k[len("filter[") : len(k)-1]
		if !contains(allowedFilters, name) {
			unknown = append(unknown, name)
			continue
		}
		if val := strings.TrimSpace(v[len(v)-1]); val != "" {
			filters[name] = val
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		message(w, http.StatusBadRequest, fmt.Sprintf("Requested filter(s) `%s` are not allowed. Allowed filter(s) are `%s`.",
			strings.Join(unknown, ", "), strings.Join(allowedFilters, ", ")))
		return
	}
	var keys []sortKey
	if s := q.Get("sort"); s != "" {
		var bad []string
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			desc := strings.HasPrefix(part, "-")
			name := strings.TrimPrefix(part, "-")
			if !contains(allowedSorts, name) {
				bad = append(bad, name)
				continue
			}
			keys = append(keys, sortKey{col: name, desc: desc})
		}
		if len(bad) > 0 {
			message(w, http.StatusBadRequest, fmt.Sprintf("Requested sort(s) `%s` is not allowed. Allowed sort(s) are `%s`.",
				strings.Join(bad, ", "), strings.Join(allowedSorts, ", ")))
			return
		}
	}
	perPage := e.o.DefaultPerPage
	if v, err := strconv.Atoi(q.Get("per_page")); err == nil && v >= 1 {
		perPage = v
	}
	if perPage > e.o.PageCap {
		perPage = e.o.PageCap
	}
	page := 1
	if v, err := strconv.Atoi(q.Get("page")); err == nil && v >= 1 {
		page = v
	}

	sales := e.salesOnly(r, t) // before e.mu: user() takes it
	e.mu.Lock()
	var tie func(int64) uint64
	if len(keys) > 0 && !e.o.StableTies && !hasID(keys) {
		tie = tieHash(page, perPage)
	}
	if len(keys) == 0 {
		keys = []sortKey{{col: "id"}}
	}
	rows := t.ordered(keys, tie)
	if sales {
		rows = e.scope(rows)
	}
	if len(filters) > 0 {
		rows = filterRows(rows, filters, e.o.TermMatchEmail)
	}
	total := len(rows)
	var items []obj
	if off := (page - 1) * perPage; off < total {
		end := min(off+perPage, total)
		for _, rw := range rows[off:end] {
			items = append(items, encodeRow(t.c, rw, e.naming))
		}
	}
	edits, hook := e.editPaging, e.onList
	e.mu.Unlock()

	p := newPaginator(items, total, perPage, page, baseURL(r)+"/"+strings.Trim(r.URL.Path, "/"), queryParams(r.URL.RawQuery))
	writeJSON(w, http.StatusOK, p.toArray())

	if edits > 0 {
		e.editOldest(t, edits)
	}
	if hook != nil {
		hook(t.c.Name)
	}
}

func hasID(keys []sortKey) bool {
	for _, k := range keys {
		if k.col == "id" {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// salesOnly reports whether r is made by a role-5 (sales) user and t is the
// prospects table, the one the viewable_by_sale scope applies to.
func (e *Emulator) salesOnly(r *http.Request, t *table) bool {
	if t.c.Name != Prospects || len(e.hidden) == 0 {
		return false
	}
	u := e.user(r)
	return u != nil && u.Role == 5
}

// scope drops the prospects a sales user may not see (viewable_by_sale).
func (e *Emulator) scope(rows []*row) []*row {
	out := rows[:0:0]
	for _, rw := range rows {
		if !e.hidden[rw.id] {
			out = append(out, rw)
		}
	}
	return out
}

// forbidden reports whether the policy refuses r on record id of t: a
// sales user and a prospect outside viewable_by_sale.
func (e *Emulator) forbidden(r *http.Request, t *table, id string) bool {
	if !e.salesOnly(r, t) {
		return false
	}
	n, err := strconv.ParseInt(id, 10, 64)
	return err == nil && e.hidden[n]
}

// filterRows applies Spatie filters: name is a partial (LOWER LIKE %v%)
// filter, id an exact one, term_match a substring match over name and
// account number (and e-mail address when withEmail is set).
func filterRows(rows []*row, f map[string]string, withEmail bool) []*row {
	var out []*row
	name := strings.ToLower(f["name"])
	term := strings.ToLower(f["term_match"])
	idv, hasID := f["id"]
	var id int64
	idOK := false
	if hasID {
		n, err := strconv.ParseInt(idv, 10, 64)
		id, idOK = n, err == nil
	}
	for _, r := range rows {
		if hasID && (!idOK || r.id != id) {
			continue
		}
		if name != "" && !strings.Contains(strings.ToLower(str(r.vals["name"])), name) {
			continue
		}
		if term != "" {
			hit := false
			cols := []string{"name", "customer_account"}
			if withEmail {
				cols = append(cols, "email_address")
			}
			for _, c := range cols {
				if strings.Contains(strings.ToLower(str(r.vals[c])), term) {
					hit = true
					break
				}
			}
			if !hit {
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

// editOldest edits the n least recently updated rows of t.
func (e *Emulator) editOldest(t *table, n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rows := t.ordered([]sortKey{{col: "updated_at"}, {col: "id"}}, nil)
	if n > len(rows) {
		n = len(rows)
	}
	victims := append([]*row(nil), rows[:n]...)
	for _, r := range victims {
		e.editSeq++
		r.vals["comment"] = fmt.Sprintf("edited while paging #%d", e.editSeq)
		r.updated = e.clock.Now()
	}
	t.touch()
}

func (e *Emulator) notFound(w http.ResponseWriter, t *table, id string) {
	message(w, http.StatusNotFound, fmt.Sprintf("No query results for model [%s] %s", t.c.Model, id))
}

// find resolves route model binding; the caller holds e.mu.
func (t *table) find(id string) *row {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return nil
	}
	return t.rows[n]
}

func (e *Emulator) show(w http.ResponseWriter, _ *http.Request, t *table, id string) {
	e.mu.Lock()
	r := t.find(id)
	if r == nil {
		e.mu.Unlock()
		e.notFound(w, t, id)
		return
	}
	o := encodeRow(t.c, r, e.naming)
	e.mu.Unlock()
	if t.c.Name == Prospects {
		// The show action eager-loads payment_plan, contacts and documents.
		o = append(o, kv{"payment_plan", nil}, kv{"contacts", []any{}}, kv{"documents", []any{}})
	}
	writeJSON(w, http.StatusOK, o)
}

// maxWrites bounds the write journal of a long-running emulator.
const maxWrites = 10000

func (e *Emulator) logWrite(r *http.Request, body map[string]any) {
	if len(e.writes) >= maxWrites {
		e.writes = append(e.writes[:0], e.writes[len(e.writes)-maxWrites/2:]...)
	}
	e.writes = append(e.writes, Write{Method: r.Method, Path: r.URL.Path, Body: body})
}

func (e *Emulator) create(w http.ResponseWriter, r *http.Request, t *table) {
	u := e.user(r)
	in, body, err := input(r)
	if err != nil {
		message(w, http.StatusBadRequest, "Malformed request body.")
		return
	}
	e.mu.Lock()
	e.logWrite(r, body)
	vals, verr := e.validate(t.c, in, true, e.naming, e.lenient)
	if verr != nil {
		e.mu.Unlock()
		writeJSON(w, http.StatusUnprocessableEntity, verr.body())
		return
	}
	rw := t.newRow(e.clock.Now())
	for k, v := range vals {
		rw.vals[k] = v
	}
	if u != nil && u.Role == 5 {
		rw.vals["representative_id"] = u.ID
	}
	if str(rw.vals["customer_account"]) == "" {
		rw.vals["customer_account"] = t.c.account(rw.id)
	}
	t.rows[rw.id] = rw
	t.touch()
	o := encodeRow(t.c, rw, e.naming)
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, o)
}

func (e *Emulator) update(w http.ResponseWriter, r *http.Request, t *table, id string) {
	u := e.user(r)
	in, body, err := input(r)
	if err != nil {
		message(w, http.StatusBadRequest, "Malformed request body.")
		return
	}
	e.mu.Lock()
	rw := t.find(id)
	if rw == nil {
		e.mu.Unlock()
		e.notFound(w, t, id)
		return
	}
	e.logWrite(r, body)
	vals, verr := e.validate(t.c, in, false, e.naming, e.lenient)
	if verr != nil {
		e.mu.Unlock()
		writeJSON(w, http.StatusUnprocessableEntity, verr.body())
		return
	}
	if rep, ok := vals["representative_id"]; ok && u != nil && u.Role == 5 && !sameValue(rep, rw.vals["representative_id"]) {
		e.mu.Unlock()
		message(w, http.StatusForbidden, "This action is unauthorized.")
		return
	}
	dirty := false
	for k, v := range vals {
		if !sameValue(v, rw.vals[k]) {
			rw.vals[k] = v
			dirty = true
		}
	}
	if str(rw.vals["customer_account"]) == "" {
		rw.vals["customer_account"] = t.c.account(rw.id)
		dirty = true
	}
	if dirty {
		// Eloquent only saves (and touches updated_at) when an attribute changed.
		rw.updated = e.clock.Now()
		t.touch()
	}
	o := encodeRow(t.c, rw, e.naming)
	status := e.updateStatus
	e.mu.Unlock()
	writeJSON(w, status, o)
}

func sameValue(a, b any) bool { return a == b }

func (e *Emulator) destroy(w http.ResponseWriter, r *http.Request, t *table, id string) {
	e.mu.Lock()
	rw := t.find(id)
	if rw == nil {
		e.mu.Unlock()
		e.notFound(w, t, id)
		return
	}
	e.logWrite(r, nil)
	delete(t.rows, rw.id)
	t.touch()
	e.mu.Unlock()
	message(w, http.StatusOK, t.c.Deleted)
}

func (e *Emulator) codeExists(id int64) bool {
	for _, c := range e.codes {
		if c.ID == id {
			return true
		}
	}
	return false
}

// listCodes answers GET /api/v1/prospection-codes (an assumed lookup route)
// with the seeded pipeline stages in the paginator shape.
func (e *Emulator) listCodes(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	var items []obj
	for _, c := range e.codes {
		ts := seedBase.Format(timeLayout)
		items = append(items, obj{{"id", c.ID}, {"name", c.Name}, {"created_at", ts}, {"updated_at", ts}})
	}
	e.mu.Unlock()
	p := newPaginator(items, len(items), max(len(items), 1), 1, baseURL(r)+"/"+strings.Trim(r.URL.Path, "/"), queryParams(r.URL.RawQuery))
	writeJSON(w, http.StatusOK, p.toArray())
}

// convertProspect turns a prospect into a customer: the customer gets
// the prospect's columns, a new id and a CL account number; the prospect
// is deleted. 201 with the customer.
func (e *Emulator) convertProspect(w http.ResponseWriter, r *http.Request, id string) {
	e.mu.Lock()
	p := e.tables[Prospects].find(id)
	if p == nil {
		e.mu.Unlock()
		e.notFound(w, e.tables[Prospects], id)
		return
	}
	e.logWrite(r, nil)
	c := e.convertLocked(p)
	o := encodeRow(e.tables[Customers].c, c, e.naming)
	e.mu.Unlock()
	writeJSON(w, http.StatusCreated, o)
}

// convertLocked moves prospect p to the customers table; e.mu is held.
func (e *Emulator) convertLocked(p *row) *row {
	pros, cust := e.tables[Prospects], e.tables[Customers]
	c := cust.newRow(e.clock.Now())
	for k, v := range p.vals {
		if _, ok := cust.c.byName[k]; ok {
			c.vals[k] = v
		}
	}
	c.vals["customer_account"] = cust.c.account(c.id)
	cust.rows[c.id] = c
	delete(pros.rows, p.id)
	pros.touch()
	cust.touch()
	return c
}

// Convert converts prospect id into a customer as another user would and
// returns the customer's id.
func (e *Emulator) Convert(id int64) (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.tables[Prospects].rows[id]
	if !ok {
		return 0, false
	}
	return e.convertLocked(p).id, true
}

// searchCustomers answers GET /api/v1/customers/search?term= with the
// customers whose name, account number or e-mail address contains term,
// as a plain JSON array (at most 50, by id).
func (e *Emulator) searchCustomers(w http.ResponseWriter, r *http.Request) {
	term := strings.TrimSpace(r.URL.Query().Get("term"))
	e.mu.Lock()
	t := e.tables[Customers]
	out := []obj{}
	if term != "" {
		for _, rw := range filterRows(t.ordered([]sortKey{{col: "id"}}, nil), map[string]string{"term_match": term}, e.o.TermMatchEmail) {
			if len(out) == 50 {
				break
			}
			out = append(out, encodeRow(t.c, rw, e.naming))
		}
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// login answers POST /api/login. email and password may come as JSON, form
// or query parameters.
func (e *Emulator) login(w http.ResponseWriter, r *http.Request) {
	in, _, err := input(r)
	if err != nil {
		message(w, http.StatusBadRequest, "Malformed request body.")
		return
	}
	verr := &validationError{}
	email, _ := in["email"].(string)
	password, _ := in["password"].(string)
	if email == "" {
		verr.add("email", "The email field is required.")
	}
	if password == "" {
		verr.add("password", "The password field is required.")
	}
	if !verr.empty() {
		writeJSON(w, http.StatusUnprocessableEntity, verr.body())
		return
	}
	e.mu.Lock()
	var u *User
	for _, cand := range e.users {
		if strings.EqualFold(cand.Email, email) && cand.Password == password {
			u = cand
		}
	}
	if u == nil {
		e.mu.Unlock()
		message(w, http.StatusUnauthorized, "These credentials do not match our records.")
		return
	}
	tok := newToken()
	e.tokens[tok] = u
	e.issued = append(e.issued, tok)
	e.logins++
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, obj{
		{"token", tok},
		{"user", obj{{"id", u.ID}, {"name", u.Name}, {"email", u.Email}, {"role_id", int64(u.Role)}}},
		{"teams", []any{}},
		{"support_teams", []any{}},
	})
}

func newToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Logins returns how many successful logins the emulator answered.
func (e *Emulator) Logins() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.logins
}

// RevokeTokens invalidates every token issued by POST /api/login (static
// tokens keep working), as an expired or revoked Passport token would be.
func (e *Emulator) RevokeTokens() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.issued {
		delete(e.tokens, t)
	}
	e.issued = nil
}
