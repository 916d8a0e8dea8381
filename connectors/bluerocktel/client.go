package bluerocktel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/logkey"
)

// System is the connector's system name.
const System = "bluerocktel"

// Options for the client. New does no network I/O.
type Options struct {
	// BaseURL is the instance's root, e.g. https://acme-admin.bluerocktel.net
	// (a trailing "/api" is accepted and ignored).
	BaseURL string
	// Token is a static bearer token, used when Email/Password are not set.
	Token string
	// HTTP is the shared HTTP layer (required). Build it with
	// httpx.Options.ErrorMessage = ErrorMessage.
	HTTP   *httpx.Client
	Logger zerolog.Logger

	// Email and Password, when set, log in with POST /api/login (lazily,
	// on first use) and log in again once when the API answers 401.
	Email    string
	Password string
	// Naming is the spelling of the property names the client writes:
	// NamingCamel (default, the official SDK's), NamingSnake (the
	// documentation's) or NamingAuto (the spelling the server last answered
	// with; camelCase until it has answered). Reads accept both and always
	// normalise Fields to snake_case.
	//
	// The default is camelCase because the vendor's own PHP SDK
	// (bluerocktel/php-sdk) writes it: CreateProspectRequest and
	// UpdateProspectRequest send toArray() of the Prospect entity, whose
	// properties are customerAccount, emailAddress, chargeVAT, ... A Laravel
	// server keeps only the keys its rules name ($request->validated()) and
	// still answers 201, so writing a spelling the server does not validate
	// loses every multi-word field without an error (research finding R16).
	Naming Naming
	// ConvertPath is the prospect -> customer conversion route (POST) with
	// "{id}"; default DefaultConvertPath, a guess (no public material
	// documents a route; docs/apis.md §3 "Conversion").
	ConvertPath string
	// Conversion says whether the server converts prospects: ConversionAuto
	// (default) tries ConvertPath and, when the server has no such route
	// (Laravel's 404 "The route ... could not be found." or a 405), treats
	// conversion as unsupported for the rest of the client's life;
	// ConversionOn reports a missing route like any failed write;
	// ConversionOff never sends one. Unsupported is connectors.Unsupported.
	Conversion Conversion
	// Overlap is the longest a record may take to become visible after
	// its updated_at (writes committed late, clock skew; default 1s). An
	// incremental scan reads down to the last scan's read time (the
	// server's Date) less Overlap when that is at or before the high-water
	// mark, and only records after the mark otherwise (pull.go, "The
	// overlap"); without a Date, down to the mark less Overlap.
	Overlap time.Duration
	// PageSize is per_page when PullOptions.PageSize is 0; default 100.
	PageSize int
	// Entities are the collections Pull covers, in order; default
	// prospects then customers.
	Entities []string
}

// Client talks to one BlueRockTel instance. It is safe for concurrent use.
type Client struct {
	o    Options
	base string
	http *httpx.Client
	log  zerolog.Logger

	// noRoute is set once the server showed it has no conversion route.
	noRoute atomic.Bool

	// seenCamel records the spelling of the server's last answer (NamingAuto).
	seenCamel atomic.Int32 // 0 unknown, 1 snake, 2 camel

	mu    sync.Mutex // guards token
	token string
}

var _ connectors.Connector = (*Client)(nil)

// New builds a client. It does no network I/O.
func New(o Options) (*Client, error) {
	if o.HTTP == nil {
		return nil, errors.New("bluerocktel: Options.HTTP is required")
	}
	base := strings.TrimRight(o.BaseURL, "/")
	base = strings.TrimSuffix(base, "/api")
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("bluerocktel: invalid BaseURL %q", o.BaseURL)
	}
	switch o.Naming {
	case "":
		o.Naming = NamingCamel // the SDK's write spelling; see Options.Naming
	case NamingSnake, NamingCamel, NamingAuto:
	default:
		return nil, fmt.Errorf("bluerocktel: unknown naming %q", o.Naming)
	}
	if o.ConvertPath == "" {
		o.ConvertPath = DefaultConvertPath
	}
	switch o.Conversion {
	case "":
		o.Conversion = ConversionAuto
	case ConversionAuto, ConversionOn, ConversionOff:
	default:
		return nil, fmt.Errorf("bluerocktel: unknown conversion %q (auto, on or off)", o.Conversion)
	}
	if !strings.Contains(o.ConvertPath, "{id}") {
		return nil, fmt.Errorf("bluerocktel: ConvertPath %q has no {id}", o.ConvertPath)
	}
	if o.Overlap <= 0 {
		o.Overlap = connectors.DefaultOverlap
	}
	if o.PageSize <= 0 {
		o.PageSize = connectors.DefaultPageSize
	}
	if len(o.Entities) == 0 {
		o.Entities = []string{EntityProspects, EntityCustomers}
	}
	for _, e := range o.Entities {
		if !knownEntity(e) {
			return nil, fmt.Errorf("bluerocktel: unknown entity %q", e)
		}
	}
	if o.Token == "" && (o.Email == "" || o.Password == "") {
		return nil, errors.New("bluerocktel: set Token or Email and Password")
	}
	o.HTTP.AddSecret(o.Token)
	o.HTTP.AddSecret(o.Password)
	c := &Client{o: o, base: base, http: o.HTTP, log: o.Logger.With().Str(logkey.Connector, System).Logger()}
	if o.Email == "" || o.Password == "" {
		c.token = o.Token
	}
	return c, nil
}

// System returns "bluerocktel".
func (c *Client) System() string { return System }

func knownEntity(e string) bool { return e == EntityProspects || e == EntityCustomers }

// ErrorMessage extracts Laravel's message from an error body: "message",
// followed by every validation error when the body has "errors".
func ErrorMessage(status int, body []byte) string {
	var b struct {
		Message string              `json:"message"`
		Errors  map[string][]string `json:"errors"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return ""
	}
	msg := strings.TrimSpace(b.Message)
	if len(b.Errors) > 0 {
		keys := make([]string, 0, len(b.Errors))
		for k := range b.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+": "+strings.Join(b.Errors[k], " "))
		}
		if msg != "" {
			msg += " "
		}
		msg += "[" + strings.Join(parts, "; ") + "]"
	}
	return msg
}

// ---- transport ----

// call sends one API request with the bearer token. With login credentials
// it logs in first when it has no token, and once more after a 401.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body any, op string) (*httpx.Response, error) {
	return c.callChecked(ctx, method, path, q, body, op, nil)
}

// callChecked is call with a check of the 2xx reply: a reply that fails
// it is sent again like a 5xx when that is safe (see httpx.Request.Check).
func (c *Client) callChecked(ctx context.Context, method, path string, q url.Values, body any, op string, check func(*httpx.Response) error) (*httpx.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	for attempt := 0; ; attempt++ {
		tok, err := c.bearer(ctx)
		if err != nil {
			return nil, err
		}
		req := httpx.Request{
			Method: method,
			URL:    u,
			Header: http.Header{"Accept": {"application/json"}, "Authorization": {"Bearer " + tok}},
			JSON:   body,
			Op:     op,
			Check:  check,
		}
		resp, err := c.http.Do(ctx, req)
		var ce *connectors.Error
		if err != nil && attempt == 0 && c.canLogin() && errors.As(err, &ce) && ce.Status == http.StatusUnauthorized {
			c.log.Info().Str(logkey.Op, op).Msg("token rejected; logging in again")
			c.dropToken(tok)
			continue
		}
		if err != nil && method != http.MethodGet && errors.As(err, &ce) && ce.Status == http.StatusForbidden {
			// A policy refusing this write on this record (a role-5 user
			// changing representative_id), not a credential failure: the
			// record goes to dead letters and the flow goes on.
			ce.Kind = connectors.Rejected
		}
		return resp, err
	}
}

func (c *Client) canLogin() bool { return c.o.Email != "" && c.o.Password != "" }

// bearer returns the cached token, logging in when there is none.
func (c *Client) bearer(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" {
		return c.token, nil
	}
	if !c.canLogin() {
		return c.o.Token, nil
	}
	tok, err := c.login(ctx)
	if err != nil {
		return "", err
	}
	c.token = tok
	return tok, nil
}

// dropToken forgets tok unless another caller already replaced it.
func (c *Client) dropToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == tok {
		c.token = ""
	}
}

// login exchanges Email/Password for a bearer token (POST /api/login).
// Neither the password nor the token is ever logged; both are registered
// with the HTTP layer so that no error message can carry them.
func (c *Client) login(ctx context.Context) (string, error) {
	const op = "POST /api/login"
	resp, err := c.http.Do(ctx, httpx.Request{
		Method: http.MethodPost,
		URL:    c.base + "/api/login",
		Header: http.Header{"Accept": {"application/json"}},
		JSON:   map[string]string{"email": c.o.Email, "password": c.o.Password},
		Op:     op,
	})
	if err != nil {
		var ce *connectors.Error
		if errors.As(err, &ce) && ce.Kind == connectors.OutcomeUnknown {
			ce.Kind = connectors.Retryable // logging in has no effect worth tracking
		}
		if errors.As(err, &ce) && ce.Status == http.StatusUnprocessableEntity {
			ce.Kind = connectors.Auth
		}
		return "", err
	}
	var body struct {
		Token string `json:"token"`
		User  struct {
			ID json.Number `json:"id"`
		} `json:"user"`
	}
	if err := resp.Decode(&body); err != nil || body.Token == "" {
		return "", &connectors.Error{System: System, Op: op, Kind: connectors.Auth, Status: resp.Status, Message: "login answer has no token"}
	}
	c.http.AddSecret(body.Token)
	c.log.Info().Str("user_id", body.User.ID.String()).Msg("logged in")
	return body.Token, nil
}

// ---- decoding ----

// relations are eager-loaded by the show action only; they are dropped so
// that every method returns records in the list's shape.
var relations = map[string]bool{"payment_plan": true, "contacts": true, "documents": true}

// normalise returns m with every key in the documentation's snake_case
// spelling (a snake_case key wins over its camelCase twin).
func (c *Client) normalise(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	camel := false
	for k, v := range m {
		s := ToSnake(k)
		if s != k {
			camel = true
			if _, twin := m[s]; twin {
				continue
			}
		}
		if relations[s] {
			continue
		}
		out[s] = v
	}
	if camel {
		c.seenCamel.Store(2)
	} else if _, ok := m["customer_account"]; ok {
		c.seenCamel.Store(1)
	}
	return out
}

// parseTime reads Laravel's serialised timestamps (ISO-8601 with
// microseconds, or "Y-m-d H:i:s" for columns without a cast; UTC).
func parseTime(v any) (time.Time, error) {
	s, _ := v.(string)
	if s == "" {
		return time.Time{}, fmt.Errorf("missing timestamp")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q", s)
	}
	return t, nil
}

func idString(v any) (string, error) {
	switch x := v.(type) {
	case float64:
		return strconv.FormatInt(int64(x), 10), nil
	case json.Number:
		return x.String(), nil
	case string:
		if x != "" {
			return x, nil
		}
	}
	return "", fmt.Errorf("missing id")
}

// toRecord turns one decoded API object into a native record.
func (c *Client) toRecord(entity string, m map[string]any) (connectors.Record, error) {
	f := c.normalise(m)
	id, err := idString(f["id"])
	if err != nil {
		return connectors.Record{}, err
	}
	created, err := parseTime(f["created_at"])
	if err != nil {
		return connectors.Record{}, fmt.Errorf("%s %s: created_at: %w", entity, id, err)
	}
	updated, err := parseTime(f["updated_at"])
	if err != nil {
		return connectors.Record{}, fmt.Errorf("%s %s: updated_at: %w", entity, id, err)
	}
	return connectors.Record{Entity: entity, ID: id, CreatedAt: created, UpdatedAt: updated, Fields: f}, nil
}

func (c *Client) decodeOne(entity, op string, resp *httpx.Response) (connectors.Record, error) {
	var m map[string]any
	if err := resp.Decode(&m); err != nil {
		return connectors.Record{}, c.decodeErr(op, err)
	}
	rec, err := c.toRecord(entity, m)
	if err != nil {
		return connectors.Record{}, c.decodeErr(op, err)
	}
	return rec, nil
}

// decodeErr reports an answer the client cannot read; it is retryable (a
// proxy's HTML page, a truncated body) and carries no response text.
func (c *Client) decodeErr(op string, err error) error {
	return &connectors.Error{System: System, Op: op, Kind: connectors.Retryable, Err: err}
}

func (c *Client) badEntity(op, entity string) error {
	return &connectors.Error{System: System, Op: op, Kind: connectors.Rejected, Message: fmt.Sprintf("unknown entity %q", entity)}
}

// writeBody renames snake_case (or camelCase) keys to the configured write
// spelling and leaves out the server-set id and timestamps. NamingAuto
// writes camelCase, the SDK's spelling, until an answer in snake_case has
// been seen; a write made on that guess is sent again when its answer
// shows snake_case (Create, Update).
func (c *Client) writeBody(fields map[string]any) map[string]any {
	n := c.o.Naming
	if n == NamingAuto {
		n = NamingCamel
		if c.seenCamel.Load() == 1 {
			n = NamingSnake
		}
	}
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		s := ToSnake(k)
		if s == "id" || s == "created_at" || s == "updated_at" || relations[s] {
			continue
		}
		out[spell(s, n)] = v
	}
	return out
}

// ---- CRUD ----

func entityPath(entity string) string { return "/api/v1/" + entity }

// Get reads one record. A missing record is a NotFound error.
func (c *Client) Get(ctx context.Context, entity, id string) (connectors.Record, error) {
	op := "GET " + entity
	if !knownEntity(entity) {
		return connectors.Record{}, c.badEntity(op, entity)
	}
	return c.getOne(ctx, http.MethodGet, entityPath(entity)+"/"+url.PathEscape(id), nil, entity, op)
}

// getOne sends an idempotent request whose reply is one record; a 2xx
// that is not a record is sent again like a 5xx.
func (c *Client) getOne(ctx context.Context, method, path string, body any, entity, op string) (connectors.Record, error) {
	var out connectors.Record
	_, err := c.callChecked(ctx, method, path, nil, body, op, func(resp *httpx.Response) error {
		var err error
		out, err = c.decodeOne(entity, op, resp)
		return err
	})
	return out, err
}

// Create POSTs rec.Fields (id and timestamps left out) and returns the
// created record from the 201 answer.
func (c *Client) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	op := "POST " + rec.Entity
	if !knownEntity(rec.Entity) {
		return connectors.Record{}, c.badEntity(op, rec.Entity)
	}
	guessed := c.spellingUnknown()
	resp, err := c.call(ctx, http.MethodPost, entityPath(rec.Entity), nil, c.writeBody(rec.Fields), op)
	if err != nil {
		return connectors.Record{}, err
	}
	if resp.Status != http.StatusCreated {
		c.log.Debug().Int("status", resp.Status).Str("entity", rec.Entity).Msg("create answered without 201")
	}
	out, err := c.decodeOne(rec.Entity, op, resp)
	if err != nil {
		// The record exists but its answer is unreadable: the engine must
		// look it up before creating again.
		var ce *connectors.Error
		if errors.As(err, &ce) {
			ce.Kind = connectors.OutcomeUnknown
		}
		return connectors.Record{}, err
	}
	if guessed && c.seenCamel.Load() == 1 {
		// NamingAuto wrote camelCase before it knew the server, which
		// answered in snake_case: a server that validates only that
		// spelling kept none of the multi-word fields. Send them again.
		c.log.Info().Str("entity", rec.Entity).Msg("naming auto: the server spells snake_case; writing the created record's fields again in it")
		return c.Update(ctx, rec.Entity, out.ID, rec.Fields)
	}
	return out, nil
}

// spellingUnknown: NamingAuto has not seen an answer yet, so a write now
// goes in camelCase on a guess.
func (c *Client) spellingUnknown() bool {
	return c.o.Naming == NamingAuto && c.seenCamel.Load() == 0
}

// Update PUTs only the changed keys (the API merges them) and returns the
// record from the answer (201 as documented, or 200).
func (c *Client) Update(ctx context.Context, entity, id string, changed map[string]any) (connectors.Record, error) {
	op := "PUT " + entity
	if !knownEntity(entity) {
		return connectors.Record{}, c.badEntity(op, entity)
	}
	guessed := c.spellingUnknown()
	body := c.writeBody(changed)
	if len(body) == 0 {
		return c.Get(ctx, entity, id)
	}
	got, err := c.getOne(ctx, http.MethodPut, entityPath(entity)+"/"+url.PathEscape(id), body, entity, op)
	if err == nil && guessed && c.seenCamel.Load() == 1 {
		// As in Create: the guess was wrong, so the change was dropped.
		return c.getOne(ctx, http.MethodPut, entityPath(entity)+"/"+url.PathEscape(id), c.writeBody(changed), entity, op)
	}
	return got, err
}

// Delete removes a record (200 with a message).
func (c *Client) Delete(ctx context.Context, entity, id string) error {
	op := "DELETE " + entity
	if !knownEntity(entity) {
		return c.badEntity(op, entity)
	}
	_, err := c.call(ctx, http.MethodDelete, entityPath(entity)+"/"+url.PathEscape(id), nil, nil, op)
	return err
}

// ConvertStage converts a prospect into a customer with a POST to
// Options.ConvertPath and returns the new customer (entity "customers",
// its own id). The prospect no longer exists afterwards. Like every POST it
// is not retried blindly: an unknown outcome is OutcomeUnknown.
func (c *Client) ConvertStage(ctx context.Context, entity, id, toEntity string) (connectors.Record, error) {
	op := "convert " + entity + " to " + toEntity
	if entity != EntityProspects || toEntity != EntityCustomers {
		return connectors.Record{}, &connectors.Error{System: System, Op: op, Kind: connectors.Rejected,
			Message: fmt.Sprintf("BlueRockTel converts prospects to customers only, not %s to %s", entity, toEntity)}
	}
	if c.o.Conversion == ConversionOff || c.noRoute.Load() {
		return connectors.Record{}, c.unsupported(op)
	}
	path := strings.ReplaceAll(c.o.ConvertPath, "{id}", url.PathEscape(id))
	resp, err := c.call(ctx, http.MethodPost, path, nil, map[string]any{}, op)
	if err != nil && c.o.Conversion == ConversionAuto && missingRoute(err) {
		c.noRoute.Store(true)
		c.log.Warn().Str("path", c.o.ConvertPath).Msg("the server has no conversion route: prospects stay prospects (set conversion: off to stop trying, or convert_path)")
		return connectors.Record{}, c.unsupported(op)
	}
	if err != nil {
		return connectors.Record{}, err
	}
	var m map[string]any
	if err := resp.Decode(&m); err != nil {
		return connectors.Record{}, &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Err: err}
	}
	// The route is a guess; accept the customer bare or wrapped.
	if _, ok := m["id"]; !ok {
		for _, k := range []string{"data", "customer"} {
			if inner, ok := m[k].(map[string]any); ok {
				m = inner
				break
			}
		}
	}
	rec, err := c.toRecord(EntityCustomers, m)
	if err != nil {
		return connectors.Record{}, &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Err: err}
	}
	return rec, nil
}

// unsupported is the error of a conversion the server cannot do.
func (c *Client) unsupported(op string) error {
	return &connectors.Error{System: System, Op: op, Kind: connectors.Unsupported,
		Message: "conversion not supported by this server (no documented prospect -> customer route; see convert_path and conversion)"}
}

// missingRoute reports whether err is Laravel's answer for a path that has
// no route at all (404 "The route ... could not be found.", or 405 for a
// path that exists with other methods), as opposed to a missing record
// (404 "No query results for model ...").
func missingRoute(err error) bool {
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		return false
	}
	if ce.Status == http.StatusMethodNotAllowed {
		return true
	}
	return ce.Status == http.StatusNotFound && strings.HasPrefix(ce.Message, "The route ") && strings.Contains(ce.Message, "could not be found")
}

// Find narrows with the API's filters (filter[id], filter[name], or
// filter[term_match] for an account number, never for an e-mail address)
// and keeps the
// records that hold every match by the shared rule, connectors.MatchesAll.
// Without a usable filter it scans the whole collection.
func (c *Client) Find(ctx context.Context, entity string, match []connectors.Match) ([]connectors.Record, error) {
	op := "find " + entity
	if !knownEntity(entity) {
		return nil, c.badEntity(op, entity)
	}
	if len(match) == 0 {
		return nil, &connectors.Error{System: System, Op: op, Kind: connectors.Rejected, Message: "find needs at least one match"}
	}
	// Fields are snake_case (normalise), so a match may name its field in
	// either spelling: compare on the snake_case path.
	want := make([]connectors.Match, len(match))
	for i, m := range match {
		parts := strings.Split(m.Field, ".")
		for j, p := range parts {
			parts[j] = ToSnake(p)
		}
		m.Field = strings.Join(parts, ".")
		want[i] = m
	}
	q := url.Values{}
	pick := func(field, filter string) bool {
		for _, m := range want {
			// A loose match ("Acme B.V." for "ACME BV") is not sent: the
			// server compares the text as it is (filter[name] is a
			// substring match, term_match too), so it would drop the very
			// record a loose match is meant to find. MatchesAll below
			// applies it.
			if m.Field == field && !m.Loose && strings.TrimSpace(m.Value) != "" {
				q.Set("filter["+filter+"]", strings.TrimSpace(m.Value))
				return true
			}
		}
		return false
	}
	// filter[term_match] is "full-text term match" (seed) and every vendor
	// example searches an account number (php-sdk README
	// 'term_match' => 'PR0001'); nothing says it matches a whole e-mail
	// address, so an e-mail match is never sent to it: without an id, name
	// or account number to narrow with, Find pages through the collection
	// and matches locally (ceil(N/per_page) GETs; the engine switches to one
	// read per run once a page needs many creates). docs/apis.md §3 "Find".
	_ = pick("id", "id") || pick("name", "name") || pick("customer_account", "term_match")
	q.Set("sort", "id")
	q.Set("per_page", strconv.Itoa(c.o.PageSize))
	var out []connectors.Record
	for page := 1; ; page++ {
		q.Set("page", strconv.Itoa(page))
		pg, err := c.listPage(ctx, entity, q, op)
		if err != nil {
			return nil, err
		}
		for _, r := range pg.records {
			if connectors.MatchesAll(r.Fields, want) {
				out = append(out, r)
			}
		}
		if len(pg.records) == 0 || pg.CurrentPage >= pg.LastPage {
			return out, nil
		}
	}
}

// listPage is one decoded paginator answer.
type listPage struct {
	CurrentPage int `json:"current_page"`
	LastPage    int `json:"last_page"`
	PerPage     int `json:"per_page"`
	Total       int `json:"total"`
	Data        []map[string]any
	records     []connectors.Record
	// date is the reply's Date header (the server's clock, whole
	// seconds), zero when absent or unreadable.
	date time.Time
}

// listPage reads one page of a prospects or customers list (Pull and Find).
func (c *Client) listPage(ctx context.Context, entity string, q url.Values, op string) (*listPage, error) {
	var pg *listPage
	_, err := c.callChecked(ctx, http.MethodGet, entityPath(entity), q, nil, op, func(resp *httpx.Response) error {
		var err error
		pg, err = c.decodePage(entity, httpx.OpName(http.MethodGet, c.base+entityPath(entity)), resp.Body)
		if err == nil {
			if d, derr := http.ParseTime(resp.Header.Get("Date")); derr == nil {
				pg.date = d.UTC()
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return pg, nil
}

// decodePage decodes a paginator answer; op names the request in errors.
// A 200 without its "data" array (an error body, "data": null, ...) is a
// retryable error, never an empty page. The pagination members are read as
// before: a missing or unreadable number is 0.
func (c *Client) decodePage(entity, op string, body []byte) (*listPage, error) {
	var raw struct {
		CurrentPage json.Number `json:"current_page"`
		LastPage    json.Number `json:"last_page"`
		PerPage     json.Number `json:"per_page"`
		Total       json.Number `json:"total"`
	}
	data, err := httpx.DecodeList[map[string]any](System, op, body, "data", &raw)
	if err != nil {
		return nil, err
	}
	num := func(n json.Number) int {
		v, _ := strconv.Atoi(n.String())
		return v
	}
	pg := &listPage{CurrentPage: num(raw.CurrentPage), LastPage: num(raw.LastPage), PerPage: num(raw.PerPage), Total: num(raw.Total), Data: data}
	for _, m := range data {
		r, err := c.toRecord(entity, m)
		if err != nil {
			return nil, c.decodeErr(op, err)
		}
		pg.records = append(pg.records, r)
	}
	return pg, nil
}

// IDsScopedByEntity reports that prospect and customer ids are separate
// number sequences (prospect 5 and customer 5 are different records).
func (c *Client) IDsScopedByEntity() bool { return true }

var _ connectors.EntityScopedIDs = (*Client)(nil)
