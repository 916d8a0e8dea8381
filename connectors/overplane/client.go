package overplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/logkey"
)

// System is the connector's system name.
const System = "overplane"

// EntityProspect is the only entity the connector reads and writes.
const EntityProspect = "prospect"

// Options for the client. New does no network I/O.
type Options struct {
	// BaseURL of the API, e.g. https://api.overplane.dev or
	// http://127.0.0.1:8082 (a trailing slash is fine).
	BaseURL string
	// Token is the secret API key sent as a bearer token.
	Token string
	// HTTP is the shared HTTP layer (required). New registers Token with it
	// as a secret.
	HTTP *httpx.Client
	// Logger receives debug lines about paging and warnings.
	Logger zerolog.Logger
	// PageSize is the list page size when PullOptions.PageSize is 0
	// (default 100, the API's assumed cap).
	PageSize int
	// Overlap is how many records before the saved offset each continuation
	// page re-reads (default 5). A page asks for PageSize+Overlap records, but
	// never more than 100 unless PageSize itself is larger.
	Overlap int
	// NoChildren skips the child tables: records carry no "leads" and
	// "opportunities" fields, and Pull needs no extra requests per record.
	NoChildren bool
	// ChildConcurrency is how many prospects' child tables Pull reads at once
	// (default 4).
	ChildConcurrency int
	// ChildMaxAge is how long a prospect's child rows, once read, are
	// returned again without a request while the prospect's updated_at
	// stays the same (default DefaultChildMaxAge; each prospect's rows are
	// read again after between half and all of it). An edit of a child row
	// that does not move updated_at is therefore seen within ChildMaxAge;
	// one that moves it, on the next scan. Negative: read every prospect's
	// child tables on every scan.
	ChildMaxAge time.Duration
	// Now is the client clock used to stamp a scan's start (default time.Now).
	Now func() time.Time
	// LeadLink is how a prospect-lead row the caller gives without "lead"
	// gets that required link: LeadLinkCreate (default) finds the Lead by
	// the row's email and creates it when missing, LeadLinkFind only finds
	// it, LeadLinkOff sends the row as it is (see leadlink.go).
	LeadLink string
}

// Client talks to one Overplane account. It is safe for concurrent use.
type Client struct {
	base       string
	token      string
	http       *httpx.Client
	log        zerolog.Logger
	pageSize   int
	overlap    int
	noChildren bool
	childConc  int
	cache      *childCache
	now        func() time.Time
	leadLink   string
	leads      leadIndex
}

var _ connectors.Connector = (*Client)(nil)

// New builds a client. It does no network I/O.
func New(o Options) (*Client, error) {
	if o.HTTP == nil {
		return nil, errors.New("overplane: Options.HTTP is required")
	}
	base := strings.TrimRight(strings.TrimSpace(o.BaseURL), "/")
	u, err := url.Parse(base)
	if base == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("overplane: BaseURL %q is not an http(s) URL", o.BaseURL)
	}
	if o.Token == "" {
		return nil, errors.New("overplane: Options.Token is required")
	}
	o.HTTP.AddSecret(o.Token)
	c := &Client{
		base: base, token: o.Token, http: o.HTTP,
		log:        o.Logger.With().Str(logkey.Connector, System).Logger(),
		pageSize:   o.PageSize,
		overlap:    o.Overlap,
		noChildren: o.NoChildren,
		childConc:  o.ChildConcurrency,
		now:        o.Now,
		leadLink:   o.LeadLink,
	}
	switch c.leadLink {
	case "":
		c.leadLink = LeadLinkCreate
	case LeadLinkCreate, LeadLinkFind, LeadLinkOff:
	default:
		return nil, fmt.Errorf("overplane: LeadLink %q is not %s, %s or %s", o.LeadLink, LeadLinkCreate, LeadLinkFind, LeadLinkOff)
	}
	if c.pageSize <= 0 {
		c.pageSize = maxLimit
	}
	if c.overlap <= 0 {
		c.overlap = 5
	}
	if c.childConc <= 0 {
		c.childConc = 4
	}
	switch {
	case o.ChildMaxAge < 0 || c.noChildren:
		c.cache = newChildCache(0)
	case o.ChildMaxAge == 0:
		c.cache = newChildCache(DefaultChildMaxAge)
	default:
		c.cache = newChildCache(o.ChildMaxAge)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// System returns "overplane".
func (c *Client) System() string { return System }

// ErrorMessage extracts the API's message from an error body
// ({"error":{"message":...,"param":...}}); pass it as
// httpx.Options.ErrorMessage.
func ErrorMessage(status int, body []byte) string {
	var env struct {
		Error *struct {
			Type    string `json:"type"`
			Code    string `json:"code"`
			Message string `json:"message"`
			Param   string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return ""
	}
	if env.Error == nil {
		return frappeMessage(body)
	}
	msg := env.Error.Message
	if msg == "" {
		msg = env.Error.Code
	}
	if p := env.Error.Param; p != "" && !strings.Contains(msg, p) {
		msg += " (param: " + p + ")"
	}
	return msg
}

// frappeMessage reads Frappe's own error body (frappe/utils/response.py
// report_error: "exc_type", "exception", and "_server_messages", a JSON
// text of a list of JSON texts of {"message": ...}), in case Overplane
// passes it on as it is.
func frappeMessage(body []byte) string {
	var fb struct {
		ExcType        string `json:"exc_type"`
		Exception      string `json:"exception"`
		ServerMessages string `json:"_server_messages"`
	}
	if json.Unmarshal(body, &fb) != nil {
		return ""
	}
	var raw []string
	var msgs []string
	if json.Unmarshal([]byte(fb.ServerMessages), &raw) == nil {
		for _, r := range raw {
			var m struct {
				Message string `json:"message"`
			}
			if json.Unmarshal([]byte(r), &m) == nil && m.Message != "" {
				msgs = append(msgs, m.Message)
			}
		}
	}
	switch {
	case len(msgs) > 0:
		return strings.Join(msgs, "; ")
	case fb.Exception != "":
		return fb.Exception
	}
	return fb.ExcType
}

// do sends one authenticated request. body may be nil.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body any) (*httpx.Response, error) {
	return c.doChecked(ctx, method, path, q, body, nil)
}

// doChecked is do with a check of the 2xx reply (see httpx.Request.Check).
func (c *Client) doChecked(ctx context.Context, method, path string, q url.Values, body any, check func(*httpx.Response) error) (*httpx.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req := httpx.Request{
		Method: method,
		URL:    u,
		Header: http.Header{"Authorization": {"Bearer " + c.token}},
		// Overplane's error envelope in a 200 is a failure, never a record.
		ErrorObjects: true,
		Check:        check,
	}
	if body != nil {
		req.JSON = body
	}
	return c.http.Do(ctx, req)
}

// fail builds a typed error for problems the client finds itself.
func (c *Client) fail(op string, kind connectors.Kind, format string, args ...any) *connectors.Error {
	return &connectors.Error{System: System, Op: op, Kind: kind, Message: c.http.Redact(fmt.Sprintf(format, args...))}
}

func (c *Client) checkEntity(op, entity string) error {
	if entity != EntityProspect {
		return c.fail(op, connectors.Rejected, "unknown entity %q (Overplane connector handles %q)", entity, EntityProspect)
	}
	return nil
}

// parseTime reads an API timestamp. It tolerates the vendor docs' generator
// glitch of a space after each colon ("2024-01-15T09: 30: 00Z").
func parseTime(v any) (time.Time, error) {
	s, _ := v.(string)
	s = strings.ReplaceAll(strings.TrimSpace(s), ": ", ":")
	if s == "" {
		return time.Time{}, errors.New("missing timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339", s)
	}
	return t.UTC(), nil
}

// toRecord turns a decoded prospect object into a native record.
func toRecord(raw map[string]any) (connectors.Record, error) {
	id, _ := raw["id"].(string)
	if id == "" {
		return connectors.Record{}, errors.New("prospect without id")
	}
	created, err := parseTime(raw["created_at"])
	if err != nil {
		return connectors.Record{}, fmt.Errorf("prospect %s created_at: %w", id, err)
	}
	updated, err := parseTime(raw["updated_at"])
	if err != nil {
		return connectors.Record{}, fmt.Errorf("prospect %s updated_at: %w", id, err)
	}
	return connectors.Record{Entity: EntityProspect, ID: id, CreatedAt: created, UpdatedAt: updated, Fields: raw}, nil
}

func (c *Client) decodeRecord(op string, resp *httpx.Response, kind connectors.Kind) (connectors.Record, error) {
	var raw map[string]any
	if err := resp.Decode(&raw); err != nil {
		return connectors.Record{}, c.fail(op, kind, "%v", err)
	}
	rec, err := toRecord(raw)
	if err != nil {
		return connectors.Record{}, c.fail(op, kind, "%v", err)
	}
	return rec, nil
}

// Get reads one prospect (with its child rows unless NoChildren).
func (c *Client) Get(ctx context.Context, entity, id string) (connectors.Record, error) {
	if err := c.checkEntity("get", entity); err != nil {
		return connectors.Record{}, err
	}
	resp, err := c.do(ctx, http.MethodGet, prospectPath+"/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return connectors.Record{}, err
	}
	rec, err := c.decodeRecord("get", resp, connectors.Retryable)
	if err != nil {
		return connectors.Record{}, err
	}
	if c.noChildren {
		return rec, nil
	}
	if err := c.attachFresh(ctx, &rec); err != nil {
		return connectors.Record{}, err
	}
	return rec, nil
}

// serverSet are properties the API sets itself; the client never sends them.
var serverSet = map[string]bool{"id": true, "created_at": true, "updated_at": true}

// splitFields separates a record's fields into the prospect body and the
// child tables. Server-set properties are dropped.
func (c *Client) splitFields(op string, fields map[string]any) (body map[string]any, kids map[*childKind]*childInput, err error) {
	body = map[string]any{}
	kids = map[*childKind]*childInput{}
	for k, v := range fields {
		if serverSet[k] {
			continue
		}
		if ck := childKindByField(k); ck != nil {
			rows, err := c.childRows(op, k, v)
			if err != nil {
				return nil, nil, err
			}
			kids[ck] = rows
			continue
		}
		body[k] = v
	}
	return body, kids, nil
}

// Create creates a prospect (and its child rows) and returns it as Pull
// would. A child row the API refuses makes Create delete the new prospect
// again and return that refusal; any other failure after the prospect was
// created returns an OutcomeUnknown error, so the engine looks it up before
// trying again.
func (c *Client) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	if err := c.checkEntity("create", rec.Entity); err != nil {
		return connectors.Record{}, err
	}
	body, kids, err := c.splitFields("create", rec.Fields)
	if err != nil {
		return connectors.Record{}, err
	}
	// Link the lead rows first: a row that cannot be linked refuses the
	// record before anything is written.
	if err := c.resolveLeads(ctx, "create", kids[childKindByField("leads")], body["company_name"]); err != nil {
		return connectors.Record{}, err
	}
	resp, err := c.do(ctx, http.MethodPost, prospectPath, nil, body)
	if err != nil {
		return connectors.Record{}, err
	}
	out, err := c.decodeRecord("create", resp, connectors.OutcomeUnknown)
	if err != nil {
		return connectors.Record{}, err
	}
	// A scan that read the rows while they were being written must not
	// keep them: the next scan reads them again.
	defer func() { c.cache.forget(out.ID, c.now()) }()
	for _, ck := range childKinds {
		rows, err := c.syncChildren(ctx, ck, out.ID, kids[ck], true, out.Fields["company_name"])
		if err != nil {
			return connectors.Record{}, c.afterCreate(ctx, out.ID, err)
		}
		if !c.noChildren {
			out.Fields[ck.field] = rows
		}
	}
	return out, nil
}

// afterCreate handles a failure once the prospect exists: a refusal rolls
// the prospect back; anything else leaves the outcome unknown.
func (c *Client) afterCreate(ctx context.Context, id string, err error) error {
	if connectors.IsRejected(err) {
		if _, derr := c.do(ctx, http.MethodDelete, prospectPath+"/"+url.PathEscape(id), nil, nil); derr != nil {
			c.log.Warn().Str(logkey.RecordID, id).Err(derr).Msg("could not roll back a prospect whose child rows were refused")
		}
		return err
	}
	return &connectors.Error{System: System, Op: "create", Kind: connectors.OutcomeUnknown,
		Message: "prospect " + id + " was created but its child rows may be incomplete", Err: err}
}

// Update sends only the changed fields (one PATCH of the prospect, plus the
// child-row writes that "leads" or "opportunities" need) and returns the
// record as Pull would.
//
// A child table value is either a list of row objects or an object keyed by
// 0-based row index ("0", "1", ...). In a list, a row with an "id" updates
// that row and a row without one updates the row at the same position; only
// attributes that differ are PATCHed, rows with no counterpart are created.
// If every row of a list has an id, the list is complete: other rows are
// deleted and the order is applied with /reorder; otherwise rows beyond the
// list are left alone. In the index form each entry patches (or, past the
// end, creates) the row at that position, and null deletes it.
func (c *Client) Update(ctx context.Context, entity, id string, changed map[string]any) (connectors.Record, error) {
	if err := c.checkEntity("update", entity); err != nil {
		return connectors.Record{}, err
	}
	body, kids, err := c.splitFields("update", changed)
	if err != nil {
		return connectors.Record{}, err
	}
	// The rows are read again by the next scan: a scan that read them
	// while they were being written must not keep them.
	c.cache.forget(id, c.now())
	defer func() { c.cache.forget(id, c.now()) }()
	var out connectors.Record
	if len(body) > 0 {
		resp, err := c.do(ctx, http.MethodPatch, prospectPath+"/"+url.PathEscape(id), nil, body)
		if err != nil {
			return connectors.Record{}, err
		}
		if out, err = c.decodeRecord("update", resp, connectors.Retryable); err != nil {
			return connectors.Record{}, err
		}
	} else {
		resp, err := c.do(ctx, http.MethodGet, prospectPath+"/"+url.PathEscape(id), nil, nil)
		if err != nil {
			return connectors.Record{}, err
		}
		if out, err = c.decodeRecord("update", resp, connectors.Retryable); err != nil {
			return connectors.Record{}, err
		}
	}
	for _, ck := range childKinds {
		in, given := kids[ck]
		if !given && c.noChildren {
			continue
		}
		rows, err := c.syncChildren(ctx, ck, id, in, false, out.Fields["company_name"])
		if err != nil {
			return connectors.Record{}, err
		}
		if !c.noChildren {
			out.Fields[ck.field] = rows
		}
	}
	return out, nil
}

// Delete removes a prospect (the API also removes its child rows).
func (c *Client) Delete(ctx context.Context, entity, id string) error {
	if err := c.checkEntity("delete", entity); err != nil {
		return err
	}
	_, err := c.do(ctx, http.MethodDelete, prospectPath+"/"+url.PathEscape(id), nil, nil)
	c.cache.forget(id, c.now())
	return err
}

// ConvertStage always fails: Overplane prospects have no stage entity to
// move to. A mapping that needs a stage keeps it in a field.
func (c *Client) ConvertStage(ctx context.Context, entity, id, toEntity string) (connectors.Record, error) {
	return connectors.Record{}, c.fail("convert stage", connectors.Rejected,
		"Overplane prospects have no stage entity: cannot convert %s %s to %q (keep the stage in a field instead)", entity, id, toEntity)
}

// Find scans every prospect (the API has no filters) and returns those that
// hold every match by the shared rule, connectors.MatchesAll: values compare
// trimmed and case-insensitively (numbers in their shortest decimal form,
// names loosely when the match is Loose); paths are dotted, on a list
// ("leads.email") any element may match, and a number selects one element
// ("leads.0.email"). With no server-side filter, Loose needs nothing more.
func (c *Client) Find(ctx context.Context, entity string, match []connectors.Match) ([]connectors.Record, error) {
	if err := c.checkEntity("find", entity); err != nil {
		return nil, err
	}
	if len(match) == 0 {
		return nil, c.fail("find", connectors.Rejected, "find needs at least one match")
	}
	var top, deep []connectors.Match
	for _, m := range match {
		if childKindByField(strings.SplitN(m.Field, ".", 2)[0]) != nil {
			deep = append(deep, m)
		} else {
			top = append(top, m)
		}
	}
	var out []connectors.Record
	sc := &scanCursor{V: cursorVersion}
	for {
		raws, _, done, err := c.scanStep(ctx, sc, c.pageSize)
		if err != nil {
			return nil, err
		}
		for _, raw := range raws {
			if !connectors.MatchesAll(raw, top) {
				continue
			}
			rec, err := toRecord(raw)
			if err != nil {
				return nil, c.fail("find", connectors.Retryable, "%v", err)
			}
			if len(deep) > 0 || !c.noChildren {
				if err := c.attachCached(ctx, &rec); err != nil {
					if connectors.IsNotFound(err) {
						continue // deleted while we looked
					}
					return nil, err
				}
				if !connectors.MatchesAll(rec.Fields, deep) {
					continue
				}
				if c.noChildren {
					for _, ck := range childKinds {
						delete(rec.Fields, ck.field)
					}
				}
			}
			out = append(out, rec)
		}
		if done {
			return out, nil
		}
	}
}

// FindScans reports that Find reads every prospect: the API has no filters.
func (c *Client) FindScans() bool { return true }

var _ connectors.ScanFinder = (*Client)(nil)
