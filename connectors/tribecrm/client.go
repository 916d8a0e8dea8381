package tribecrm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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

// Options for the client. New does no network I/O.
type Options struct {
	// BaseURL is the API host, e.g. https://api.tribecrm.nl or
	// http://127.0.0.1:8081 (the OData root is BaseURL + "/v1/odata").
	BaseURL string
	// Token is a static bearer token, used when no OAuth2 client
	// credentials are set.
	Token string
	// HTTP is the shared HTTP layer (required). New registers every
	// credential with HTTP.AddSecret.
	HTTP   *httpx.Client
	Logger zerolog.Logger

	// ClientID and ClientSecret enable the OAuth2 client-credentials flow
	// against TokenURL. The default TokenURL is "/oauth2/token" on the auth
	// host that goes with BaseURL (api.tribecrm.nl -> auth.tribecrm.nl,
	// api-staging.tribecrm.nl -> auth-staging.tribecrm.nl), or on BaseURL
	// itself for any other host (the emulator serves both).
	ClientID, ClientSecret string
	TokenURL               string
	// Scope sent with the token request (default "read write").
	Scope string

	// PageSize is the default $top of a pull page (default 100).
	PageSize int
	// Overlap is the longest a row may take to become visible after its
	// LastMutationDate (commit lag, clock skew; default 1s; negative:
	// none). A new pull re-reads each set from the last pull's read time
	// (the server's Date) less Overlap, when that is at or before the saved
	// position, so that writes that landed on the cursor's timestamp after
	// it was read are not lost; once a pull has read a set more than
	// Overlap after its newest row, the next one starts exactly after it
	// (pull.go, "The overlap").
	Overlap time.Duration
	// UpgradeField selects how ConvertStage asks for a new stage:
	// "_UpgradeType" (default: the entity-set name, as the vendor's own n8n
	// node sends) or "_Type" (the dotted type the API pages name).
	UpgradeField string
	// UpdateMethod is how Update writes changed fields, and how Create
	// changes fields of an existing organisation or person it binds:
	//   - "post" (the default): POST Set with "ID" in the body and only the
	//     changed fields. This is how the vendor's own clients update
	//     (efficy-sa/n8n-nodes-tribecrm resources/organization.ts, person.ts,
	//     customer.ts "Update"; efficy-sa/tribecrm-mcp-server src/client.ts
	//     updateEntity), and the POST-with-ID form is the one Tribe's pages
	//     document for stage conversion. The n8n node sends only the fields
	//     the user filled in, so the live service must merge a POST with an
	//     ID, or the vendor's own node would wipe records.
	//   - "patch": PATCH Set(id) with only the changed fields: OData's merge
	//     (OData v4.01 Part 1 §11.4.3: "Services SHOULD support PATCH as the
	//     preferred means of updating an entity"). Tribe does not document
	//     PATCH.
	//   - "put": PUT Set(id), the form Tribe's API pages show ("Provide only
	//     the fields to update"). OData says a PUT replaces the entity:
	//     properties not sent are reset to their defaults. So the client
	//     first GETs the entity (with its Relation, Organization/Person and
	//     Status links) and PUTs all of it with the changes merged in, never
	//     a partial body. If the GET carries an ETag, the PUT sends it in
	//     If-Match, so an edit made in between is refused (412) rather than
	//     overwritten; without one, such an edit can be lost. That race and
	//     the extra GET are why put is not the default.
	// Whatever the method, a field the client does not send keeps its value.
	UpdateMethod string
	// Stages restricts the funnel stages pulled (default all five). Tribe
	// is retiring Lead relationships for some tenants (apis.md §0.6).
	Stages []string
	// SkipRelations turns off the part of Pull that follows edits of
	// organisations, persons and addresses (which do not bump the
	// relationship's LastMutationDate). Leave it false unless the tenant
	// forbids reading Relation_Organization / Relation_Person / Address.
	SkipRelations bool
	// RelationMatch lists, per flavour ("Organization", "Person"), the
	// properties of an organisation or person by which Create looks for one
	// that already exists in Tribe (as a Relation_Organization or
	// Relation_Person outside the funnel sets), in order: the first that
	// finds exactly one links it instead of creating a second one. Default
	// DefaultRelationMatch; an empty list for a flavour turns the lookup
	// off.
	RelationMatch map[string][]string
	// CreateStatus is the Code of the Datastore row Create binds as a new
	// relationship's Status when the record has none (default: none, the
	// server's default applies).
	CreateStatus string
}

// DefaultRelationMatch is how Create finds an existing organisation or
// person: an organisation by its Chamber of Commerce number, then its
// e-mail address, then its name; a person by e-mail address. Each is
// compared as Find compares (trimmed, case-insensitive).
func DefaultRelationMatch() map[string][]string {
	return map[string][]string{
		FlavourOrganization: {"ChamberOfCommerceNumber", "EmailAddress", "Name"},
		FlavourPerson:       {"EmailAddress"},
	}
}

// DefaultUpgradeField is how ConvertStage asks for a new stage by default.
// The vendor's own n8n node upgrades with _UpgradeType and the entity-set
// name (efficy-sa/n8n-nodes-tribecrm, nodes/TribeCrm/resources/lead.ts);
// the API pages only say "by changing its _Type". A POST with ID is also how
// Tribe updates, so a _Type the server does not take would read as a plain
// update; _UpgradeType says what is meant.
const DefaultUpgradeField = "_UpgradeType"

// The values of Options.UpdateMethod.
const (
	UpdatePost  = "post"
	UpdatePatch = "patch"
	UpdatePut   = "put"
)

// Client is a TribeCRM connector. It implements connectors.Connector and is
// safe for concurrent use.
type Client struct {
	base     string // BaseURL, without a trailing slash
	root     string // BaseURL + "/v1/odata"
	http     *httpx.Client
	log      zerolog.Logger
	tokens   *tokenSource
	static   string
	pageSize int
	overlap  time.Duration
	upgrade  string
	update   string   // post, patch or put (Options.UpdateMethod)
	sets     []string // funnel sets pulled, in order
	watchRel bool
	relMatch map[string][]string // Options.RelationMatch
	status   string              // Options.CreateStatus

	mu        sync.Mutex
	tenantID  string
	countries []countryRow      // Datastore_Country, read once (address.go)
	statusIDs map[string]string // Datastore Code -> ID (relate.go)
	// noToLower is set once the server refused tolower() in $filter (Tribe
	// documents contains/startswith/endswith, not tolower): Find then
	// narrows with contains() and compares on the client.
	noToLower atomic.Bool
}

var _ connectors.Connector = (*Client)(nil)

// New builds a client. It does no network I/O.
func New(o Options) (*Client, error) {
	if o.HTTP == nil {
		return nil, errors.New("tribecrm: Options.HTTP is required")
	}
	base := strings.TrimRight(strings.TrimSpace(o.BaseURL), "/")
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("tribecrm: invalid BaseURL %q", o.BaseURL)
	}
	if o.Token == "" && (o.ClientID == "" || o.ClientSecret == "") {
		return nil, errors.New("tribecrm: set Token or ClientID and ClientSecret")
	}
	c := &Client{
		base:     base,
		root:     base + "/v1/odata",
		http:     o.HTTP,
		log:      o.Logger.With().Str(logkey.Connector, System).Logger(),
		static:   o.Token,
		pageSize: o.PageSize,
		overlap:  o.Overlap,
		upgrade:  o.UpgradeField,
		update:   o.UpdateMethod,
		watchRel: !o.SkipRelations,
		relMatch: o.RelationMatch,
		status:   strings.TrimSpace(o.CreateStatus),
	}
	if c.relMatch == nil {
		c.relMatch = DefaultRelationMatch()
	}
	if c.pageSize <= 0 {
		c.pageSize = connectors.DefaultPageSize
	}
	if c.overlap == 0 {
		c.overlap = connectors.DefaultOverlap
	}
	if c.overlap < 0 {
		c.overlap = 0
	}
	switch c.upgrade {
	case "":
		c.upgrade = DefaultUpgradeField
	case "_Type", "_UpgradeType":
	default:
		return nil, fmt.Errorf("tribecrm: UpgradeField must be _Type or _UpgradeType, not %q", o.UpgradeField)
	}
	switch c.update {
	case "":
		c.update = UpdatePost
	case UpdatePost, UpdatePatch, UpdatePut:
	default:
		return nil, fmt.Errorf("tribecrm: UpdateMethod must be post, patch or put, not %q", o.UpdateMethod)
	}
	stages := o.Stages
	if len(stages) == 0 {
		stages = funnelStages
	}
	for _, fl := range []string{FlavourOrganization, FlavourPerson} {
		for _, s := range stages {
			set := FunnelSet(fl, s)
			if _, _, ok := ParseFunnelSet(set); !ok {
				return nil, fmt.Errorf("tribecrm: unknown stage %q", s)
			}
			c.sets = append(c.sets, set)
		}
	}
	o.HTTP.AddSecret(o.Token)
	o.HTTP.AddSecret(o.ClientSecret)
	if o.ClientID != "" && o.ClientSecret != "" {
		tu := o.TokenURL
		if tu == "" {
			tu = defaultTokenURL(u)
		}
		scope := o.Scope
		if scope == "" {
			scope = "read write"
		}
		c.tokens = &tokenSource{http: o.HTTP, url: tu, id: o.ClientID, secret: o.ClientSecret, scope: scope, now: time.Now}
	}
	return c, nil
}

// defaultTokenURL maps an API host to its auth host.
func defaultTokenURL(api *url.URL) string {
	host := api.Host
	if rest, ok := strings.CutPrefix(host, "api"); ok && (strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "-")) {
		host = "auth" + rest
	}
	return api.Scheme + "://" + host + strings.TrimRight(api.Path, "/") + "/oauth2/token"
}

// System returns "tribecrm".
func (c *Client) System() string { return System }

// ErrorMessage extracts the API's message from an error body: the OData
// error {"error":{"code","message"}} or an OAuth2 error
// {"error":"invalid_client","error_description":...}.
func ErrorMessage(status int, body []byte) string {
	var raw struct {
		Error json.RawMessage `json:"error"`
		Desc  string          `json:"error_description"`
	}
	if json.Unmarshal(body, &raw) != nil || len(raw.Error) == 0 {
		return ""
	}
	var od struct {
		Code    any    `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Message string `json:"message"`
		} `json:"details"`
	}
	if json.Unmarshal(raw.Error, &od) == nil {
		msg := od.Message
		for _, d := range od.Details {
			if d.Message != "" {
				msg += "; " + d.Message
			}
		}
		return msg
	}
	var code string
	if json.Unmarshal(raw.Error, &code) == nil {
		if raw.Desc != "" {
			return code + ": " + raw.Desc
		}
		return code
	}
	return ""
}

// esc escapes a query value, writing spaces as %20 (Tribe does not read '+'
// as a space) and '+' as %2B.
func esc(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// query builds a query string from key/value pairs, keeping '$' in keys.
func query(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		parts = append(parts, kv[i]+"="+esc(kv[i+1]))
	}
	if len(parts) == 0 {
		return ""
	}
	return "?" + strings.Join(parts, "&")
}

// do sends one request with the current credentials. With OAuth2, a 401
// drops the cached token and the request is sent once more with a new one.
func (c *Client) do(ctx context.Context, method, rawURL, op string, body any) (*httpx.Response, error) {
	return c.doChecked(ctx, method, rawURL, op, body, nil)
}

// doChecked is do with a check of the 2xx reply (see httpx.Request.Check).
// Every reply is also checked for an OData error object: a 200 carrying
// {"error": ...} is a failure, never an entity or a page.
func (c *Client) doChecked(ctx context.Context, method, rawURL, op string, body any, check func(*httpx.Response) error) (*httpx.Response, error) {
	return c.doHeader(ctx, method, rawURL, op, body, check, nil)
}

// doHeader is doChecked with extra request headers.
func (c *Client) doHeader(ctx context.Context, method, rawURL, op string, body any, check func(*httpx.Response) error, extra http.Header) (*httpx.Response, error) {
	send := func(stale string) (*httpx.Response, string, error) {
		tok := c.static
		if c.tokens != nil {
			t, err := c.tokens.token(ctx, stale)
			if err != nil {
				return nil, "", err
			}
			tok = t
		}
		hdr := http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"application/json"}}
		for k, v := range extra {
			hdr[k] = v
		}
		resp, err := c.http.Do(ctx, httpx.Request{
			Method: method, URL: rawURL, Op: op, JSON: body, Check: check, ErrorObjects: true, Header: hdr,
		})
		return resp, tok, err
	}
	resp, used, err := send("")
	var ce *connectors.Error
	if c.tokens != nil && used != "" && errors.As(err, &ce) && ce.Status == http.StatusUnauthorized {
		c.log.Debug().Str(logkey.Op, op).Msg("access token refused; fetching a new one")
		resp, _, err = send(used)
	}
	return resp, err
}

func (c *Client) entityURL(set, id string) string {
	return c.root + "/" + set + "(" + url.PathEscape(id) + ")"
}

// item is one decoded OData entity.
type item = map[string]any

// listReply is one OData collection reply. Value is decoded by
// httpx.DecodeList (the reply must hold a "value" array); the others are
// optional.
type listReply struct {
	Value    []item `json:"-"`
	Count    *int   `json:"@odata.count"`
	NextLink string `json:"@odata.nextLink"`
	Context  string `json:"@odata.context"`
	// Date is the reply's Date header (the server's clock, whole
	// seconds), zero when absent or unreadable.
	Date time.Time `json:"-"`
}

// getList reads one collection reply. Every list request goes through it:
// a 200 without its "value" array (an error body, "value": null, ...) is a
// retryable error naming the request, never an empty page.
func (c *Client) getList(ctx context.Context, rawURL, op string) (listReply, error) {
	var lr listReply
	_, err := c.doChecked(ctx, http.MethodGet, rawURL, op, nil, func(resp *httpx.Response) error {
		lr = listReply{}
		v, err := httpx.DecodeList[item](System, httpx.OpName(http.MethodGet, rawURL), resp.Body, "value", &lr)
		lr.Value = v
		if d, derr := http.ParseTime(resp.Header.Get("Date")); derr == nil {
			lr.Date = d.UTC()
		}
		return err
	})
	if err != nil {
		return listReply{}, err
	}
	return lr, nil
}

// getAll reads a list and follows @odata.nextLink to its end.
func (c *Client) getAll(ctx context.Context, rawURL, op string) ([]item, error) {
	var out []item
	for page := 0; rawURL != ""; page++ {
		if page > 10000 {
			return nil, &connectors.Error{System: System, Op: op, Kind: connectors.Retryable, Message: "too many nextLink pages"}
		}
		lr, err := c.getList(ctx, rawURL, op)
		if err != nil {
			return nil, err
		}
		out = append(out, lr.Value...)
		next, err := c.nextURL(lr.NextLink, lr.Context)
		if err != nil {
			return nil, &connectors.Error{System: System, Op: op, Kind: connectors.Rejected, Err: err}
		}
		rawURL = next
	}
	return out, nil
}

// nextURL resolves a reply's @odata.nextLink and checks that it points at
// our API (same scheme and host) before we send our token there. OData JSON
// Format v4.01 §4.6 (Relative URLs): a URL in a payload may be relative; it
// is resolved against the reply's context URL (@odata.context), which is
// itself relative to the service root. So "Set?$skiptoken=2" next to
// "$metadata#Set" means <root>/Set?$skiptoken=2, not a sibling of the root.
func (c *Client) nextURL(link, context string) (string, error) {
	if link == "" {
		return "", nil
	}
	root, err := url.Parse(strings.TrimSuffix(c.root, "/") + "/")
	if err != nil {
		return "", fmt.Errorf("service root: %w", err)
	}
	base := root
	if context != "" {
		if cu, err := root.Parse(context); err == nil {
			base = cu
		}
	}
	u, err := base.Parse(link)
	if err != nil {
		return "", fmt.Errorf("bad @odata.nextLink: %w", err)
	}
	if u.Host != root.Host || u.Scheme != root.Scheme {
		return "", fmt.Errorf("@odata.nextLink points elsewhere (%s://%s), not at the API (%s://%s)", u.Scheme, u.Host, root.Scheme, root.Host)
	}
	u.Fragment = ""
	return u.String(), nil
}

func (c *Client) getItem(ctx context.Context, set, id, q, op string) (item, error) {
	resp, err := c.do(ctx, http.MethodGet, c.entityURL(set, id)+q, op, nil)
	if err != nil {
		return nil, err
	}
	var it item
	if err := resp.Decode(&it); err != nil {
		return nil, &connectors.Error{System: System, Op: op, Kind: connectors.Retryable, Status: resp.Status, Err: err}
	}
	return it, nil
}

// toRecord turns one decoded entity into a native record.
func toRecord(set string, it item) (connectors.Record, error) {
	id, _ := it["ID"].(string)
	if id == "" {
		return connectors.Record{}, fmt.Errorf("entity in %s without ID", set)
	}
	fields := make(map[string]any, len(it))
	for k, v := range it {
		if strings.HasPrefix(k, "@odata.") {
			continue
		}
		fields[k] = v
	}
	rec := connectors.Record{Entity: set, ID: id, Fields: fields}
	rec.CreatedAt, _ = parseTime(it["CreationDate"])
	rec.UpdatedAt, _ = parseTime(it["LastMutationDate"])
	// An edit of the organisation or person does not bump the
	// relationship's LastMutationDate; the record as a whole changed at the
	// later of the two.
	for _, nav := range []string{FlavourOrganization, FlavourPerson} {
		if child, ok := fields[nav].(map[string]any); ok {
			addStreetLines(child, nav)
			rec.UpdatedAt = later(rec.UpdatedAt, child)
			// An address is an entity of its own, edited on its own.
			for _, a := range addressNavs(nav) {
				if m, ok := child[a].(map[string]any); ok {
					rec.UpdatedAt = later(rec.UpdatedAt, m)
				}
			}
		}
	}
	if fl := flavourOfRelationSet(set); fl != "" {
		addStreetLines(fields, fl)
	}
	return rec, nil
}

// later returns the later of t and entity m's LastMutationDate.
func later(t time.Time, m map[string]any) time.Time {
	if u, ok := parseTime(m["LastMutationDate"]); ok && u.After(t) {
		return u
	}
	return t
}

func parseTime(v any) (time.Time, bool) {
	s, _ := v.(string)
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

func rejected(op, msg string) error {
	return &connectors.Error{System: System, Op: op, Kind: connectors.Rejected, Message: msg}
}

// Get reads one record by entity set and id, with its Organization or
// Person expanded as Pull returns it.
func (c *Client) Get(ctx context.Context, entity, id string) (connectors.Record, error) {
	op := "GET " + entity
	if !isGUID(id) {
		return connectors.Record{}, &connectors.Error{System: System, Op: op, Kind: connectors.NotFound, Status: http.StatusNotFound, Message: "not a TribeCRM ID: " + id}
	}
	it, err := c.getItem(ctx, entity, strings.ToLower(id), query("$expand", expandFor(entity)), op)
	if err != nil {
		return connectors.Record{}, err
	}
	return toRecord(entity, it)
}

// readOnlyFields are server-set and never sent on writes. _UpgradeType is
// never sent either: in a POST with an ID it converts the record
// (ConvertStage builds that body itself).
var readOnlyFields = map[string]bool{"ID": true, "_Type": true, "_Name": true, "CreationDate": true, "LastMutationDate": true, "_UpgradeType": true}

func cleanFields(m map[string]any, keepID bool) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if strings.HasPrefix(k, "@odata.") || (readOnlyFields[k] && !(keepID && k == "ID")) {
			continue
		}
		out[k] = v
	}
	return out
}

// tenant returns the ID of the tenant's own organisation (the parent
// Relation of every commercial relationship), read once from
// Relationship_Organization_Identity.
func (c *Client) tenant(ctx context.Context) (string, error) {
	c.mu.Lock()
	id := c.tenantID
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	op := "GET " + SetIdentity
	rows, err := c.getAll(ctx, c.root+"/"+SetIdentity+query("$select", "ID,Name", "$expand", "Relation($select=ID)"), op)
	if err != nil {
		return "", err
	}
	ids := map[string]bool{}
	for _, r := range rows {
		if rel, ok := r["Relation"].(map[string]any); ok {
			if s, _ := rel["ID"].(string); s != "" {
				ids[s] = true
				id = s
			}
		}
	}
	if len(ids) != 1 {
		return "", rejected(op, fmt.Sprintf("expected exactly one own organisation in %s, found %d", SetIdentity, len(ids)))
	}
	c.mu.Lock()
	c.tenantID = id
	c.mu.Unlock()
	return id, nil
}

// Create creates rec in rec.Entity (a funnel set). Organization/Person is
// either {"ID": existing} or the fields of a relation. Before creating a new
// relation, Create looks for one that exists already (Options.RelationMatch)
// and links it. Its addresses are Address entities, created first and bound
// (address.go). The relationship gets a Name (the relation's name) and a
// Status (Options.CreateStatus) when the record has none (relate.go).
// Relation.ID defaults to the tenant's own organisation. Returns the record
// as Pull returns it.
func (c *Client) Create(ctx context.Context, rec connectors.Record) (connectors.Record, error) {
	op := "POST " + rec.Entity
	nav := navOf(rec.Entity)
	body := cleanFields(rec.Fields, false)
	var childExtra map[string]any
	var childID string
	var made []string
	if nav != "" {
		tid, err := c.tenantOf(ctx, body)
		if err != nil {
			return connectors.Record{}, err
		}
		if child, ok := body[nav].(map[string]any); ok {
			child = cleanFields(child, true)
			if _, named := body["Name"]; !named {
				if n := relationName(nav, child); n != "" {
					body["Name"] = n
				}
			}
			id, _ := child["ID"].(string)
			if id == "" {
				if id, err = c.existingRelation(ctx, nav, child, tid); err != nil {
					return connectors.Record{}, err
				}
			}
			if id != "" {
				// Binding an existing relation: bind by ID, then bring its
				// other fields up to date.
				childID = id
				delete(child, "ID")
				childExtra = child
				body[nav] = map[string]any{"ID": id}
			} else {
				made, err = c.bindNewAddresses(ctx, child, nav)
				if err != nil {
					c.dropAddresses(ctx, made)
					return connectors.Record{}, err
				}
				body[nav] = child
			}
		}
		if err := c.setStatus(ctx, body); err != nil {
			c.dropAddresses(ctx, made)
			return connectors.Record{}, err
		}
	}
	resp, err := c.do(ctx, http.MethodPost, c.root+"/"+rec.Entity, op, body)
	if err != nil {
		var ce *connectors.Error
		if errors.As(err, &ce) && ce.Kind == connectors.Rejected {
			c.dropAddresses(ctx, made) // refused: nothing links them
		}
		return connectors.Record{}, err
	}
	var created item
	if err := resp.Decode(&created); err != nil {
		return connectors.Record{}, &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Status: resp.Status, Err: err}
	}
	id, _ := created["ID"].(string)
	if id == "" {
		return connectors.Record{}, &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Status: resp.Status, Message: "created entity has no ID"}
	}
	if len(childExtra) > 0 {
		if err := c.writeRelation(ctx, relationSet(nav), childID, childExtra); err != nil {
			return connectors.Record{}, err
		}
	}
	return c.Get(ctx, rec.Entity, id)
}

// tenantOf returns the parent Relation of a new relationship: the one body
// binds, or else the tenant's own organisation, which it then binds.
func (c *Client) tenantOf(ctx context.Context, body map[string]any) (string, error) {
	if rel, _ := body["Relation"].(map[string]any); rel != nil {
		if id, _ := rel["ID"].(string); id != "" {
			return id, nil
		}
	}
	tid, err := c.tenant(ctx)
	if err != nil {
		return "", err
	}
	body["Relation"] = map[string]any{"ID": tid}
	return tid, nil
}

func relationSet(nav string) string {
	if nav == FlavourPerson {
		return SetPerson
	}
	return SetOrganization
}

// Update changes only the given fields; every other field keeps its value.
// Top-level relationship fields are written to the relationship's set; a
// nested Organization or Person map is written to Relation_Organization /
// Relation_Person, because Tribe keeps them as separate entities (a nested
// {"ID": other} rebinds the relationship instead). Each write uses
// Options.UpdateMethod (see write).
func (c *Client) Update(ctx context.Context, entity, id string, changed map[string]any) (connectors.Record, error) {
	top := cleanFields(changed, false)
	nav := navOf(entity)
	var child map[string]any
	if nav != "" {
		if m, ok := top[nav].(map[string]any); ok {
			delete(top, nav)
			child = cleanFields(m, true)
			if newID, _ := child["ID"].(string); newID != "" {
				top[nav] = map[string]any{"ID": newID}
				delete(child, "ID")
			}
		}
	}
	if len(top) > 0 {
		if err := c.write(ctx, entity, id, top); err != nil {
			return connectors.Record{}, err
		}
	}
	if len(child) > 0 {
		cur, err := c.getItem(ctx, entity, id, query("$select", "ID", "$expand", nav+"($select=ID)"), "GET "+entity)
		if err != nil {
			return connectors.Record{}, err
		}
		m, _ := cur[nav].(map[string]any)
		childID, _ := m["ID"].(string)
		if childID == "" {
			return connectors.Record{}, rejected("update "+relationSet(nav), "relationship has no "+nav)
		}
		if err := c.writeRelation(ctx, relationSet(nav), childID, child); err != nil {
			return connectors.Record{}, err
		}
	}
	return c.Get(ctx, entity, id)
}

// write sends the changed fields of one entity (no server-set ones) with
// the configured update method, so that no field it does not send is lost:
//   - post: POST Set {"ID": id, ...fields}, the vendor's own update form
//     (the n8n node's and MCP server's). The HTTP layer never sends a POST
//     twice, so a 5xx or a lost answer is OutcomeUnknown; the engine keeps
//     the update owed and sends it again on the next run, which is safe for
//     an update.
//   - patch: PATCH Set(id) with the fields: OData's merge.
//   - put: the whole entity, read first (see putWhole).
func (c *Client) write(ctx context.Context, set, id string, fields map[string]any) error {
	switch c.update {
	case UpdatePatch:
		_, err := c.do(ctx, http.MethodPatch, c.entityURL(set, id), "PATCH "+set, fields)
		return err
	case UpdatePut:
		return c.putWhole(ctx, set, id, fields)
	}
	body := make(map[string]any, len(fields)+1)
	for k, v := range fields {
		body[k] = v
	}
	body["ID"] = id
	_, err := c.do(ctx, http.MethodPost, c.root+"/"+set, "POST "+set, body)
	return err
}

// linksOf returns the navigation properties of set that the client knows
// and re-sends on a PUT: a relationship's Relation, Organization/Person and
// Status (the seed pages list these three).
func linksOf(set string) []string {
	if nav := navOf(set); nav != "" {
		return []string{"Relation", nav, "Status"}
	}
	if fl := flavourOfRelationSet(set); fl != "" {
		return addressNavs(fl) // docs/api/relations/customers, contacts
	}
	if set == SetAddress {
		return []string{"Country", "Organization", "Person"} // docs/api/entities/addresses
	}
	return nil
}

// putWhole replaces one entity with itself plus the changes. OData v4.01
// Part 1 §11.4.3: "Services that support PUT MUST replace all values of
// structural properties with those specified in the request body. Missing
// non-key, updatable structural properties ... MUST be set to their default
// values." So a partial PUT would blank what it does not send. putWhole GETs
// the entity (every structural property, and the IDs of its known links),
// drops server-set properties (the standard says a service MUST ignore
// read-only ones anyway), merges the changes in (an address member by
// member) and PUTs the lot, with the entity's ETag in If-Match when it has
// one. Links the client does not know are not sent; the standard keeps
// properties tied by a referential constraint, and a link is no structural
// property, so a standard server leaves them alone.
func (c *Client) putWhole(ctx context.Context, set, id string, fields map[string]any) error {
	op := "PUT " + set
	links := map[string]bool{}
	var exp []string
	for _, l := range linksOf(set) {
		links[l] = true
		exp = append(exp, l+"($select=ID)")
	}
	resp, err := c.do(ctx, http.MethodGet, c.entityURL(set, id)+query("$expand", strings.Join(exp, ",")), "GET "+set, nil)
	if err != nil {
		return err
	}
	var cur item
	if err := resp.Decode(&cur); err != nil {
		return &connectors.Error{System: System, Op: "GET " + set, Kind: connectors.Retryable, Status: resp.Status, Err: err}
	}
	if got, _ := cur["ID"].(string); !strings.EqualFold(got, id) {
		return &connectors.Error{System: System, Op: "GET " + set, Kind: connectors.Retryable, Status: resp.Status, Message: "the entity read before a PUT has another or no ID"}
	}
	etag, _ := cur["@odata.etag"].(string)
	if etag == "" {
		etag = resp.Header.Get("ETag")
	}
	body := make(map[string]any, len(cur))
	for k, v := range cur {
		if strings.Contains(k, "@") || readOnlyFields[k] {
			continue // annotations and server-set properties
		}
		if links[k] {
			if m, ok := v.(map[string]any); ok {
				if lid, _ := m["ID"].(string); lid != "" {
					body[k] = map[string]any{"ID": lid}
				}
			}
			continue
		}
		body[k] = v
	}
	for k, v := range fields {
		if m, ok := v.(map[string]any); ok && !links[k] {
			if old, ok := body[k].(map[string]any); ok {
				merged := make(map[string]any, len(old)+len(m))
				for ck, cv := range old {
					merged[ck] = cv
				}
				for ck, cv := range m {
					merged[ck] = cv
				}
				body[k] = merged
				continue
			}
		}
		body[k] = v
	}
	var hdr http.Header
	if etag != "" {
		hdr = http.Header{"If-Match": {etag}}
	}
	_, err = c.doHeader(ctx, http.MethodPut, c.entityURL(set, id), op, body, nil, hdr)
	return err
}

// ConvertStage moves a relationship to another funnel stage of the same
// flavour by POSTing {"ID", "_UpgradeType": <target set>} (or "_Type" with
// the dotted type name, see Options.UpgradeField) to its current set. The
// ID stays the same.
func (c *Client) ConvertStage(ctx context.Context, entity, id, toEntity string) (connectors.Record, error) {
	op := "POST " + entity
	fromFl, _, ok1 := ParseFunnelSet(entity)
	toFl, _, ok2 := ParseFunnelSet(toEntity)
	switch {
	case !ok1 || !ok2:
		return connectors.Record{}, rejected(op, fmt.Sprintf("cannot convert %s to %s: both must be commercial relationship sets", entity, toEntity))
	case fromFl != toFl:
		return connectors.Record{}, rejected(op, fmt.Sprintf("cannot convert %s to %s: Tribe cannot cross Organization and Person", entity, toEntity))
	case entity == toEntity:
		return c.Get(ctx, entity, id)
	}
	body := map[string]any{"ID": id}
	if c.upgrade == "_UpgradeType" {
		body["_UpgradeType"] = toEntity
	} else {
		body["_Type"] = TypeOfSet(toEntity)
	}
	if _, err := c.do(ctx, http.MethodPost, c.root+"/"+entity, op, body); err != nil {
		return connectors.Record{}, err
	}
	return c.Get(ctx, toEntity, id)
}

// Delete removes the relationship (the funnel role); the organisation or
// person stays.
func (c *Client) Delete(ctx context.Context, entity, id string) error {
	_, err := c.do(ctx, http.MethodDelete, c.entityURL(entity, id), "DELETE "+entity, nil)
	return err
}

// Find returns the records that hold every match, by the shared rule
// connectors.MatchesAll (trimmed, case-insensitive, numbers by their text,
// names loosely when a match is Loose). For a funnel set it searches all five
// stages of the same flavour, so a record is found whatever stage it has
// reached. Dotted match fields (Organization.EmailAddress) become navigation
// paths.
//
// The $filter only narrows what is read; every row it returns is checked
// with connectors.MatchesAll, so the filter must never drop a row that rule
// would keep:
//   - an ID match is "path eq <guid>";
//   - any other match is "tolower(path) eq '<value>'", or, once the server
//     refused tolower(), "contains(path,'<value>')" (both case-insensitive);
//   - a Loose match (a name) has no term on the server. Its rule removes
//     punctuation ("Acme B.V." is "ACME BV"), and no OData filter can say
//     that: an eq drops "Acme B.V.", and even contains() of a word can miss
//     one a dot splits ("B.V." holds no "bv"). The other matches still
//     filter; with none left the sets are read whole, which is the simplest
//     filter that cannot lose a match (Find is the engine's per-record
//     lookup, used only when it has no index of the target).
//   - a value that may be a number ("42") keeps its term, but when the server
//     answers 400 the query is sent again without such terms: the field may
//     be numeric, and tolower() or contains() of an Edm.Double is a type
//     error in OData. Only if that also fails is tolower() taken as refused.
func (c *Client) Find(ctx context.Context, entity string, match []connectors.Match) ([]connectors.Record, error) {
	if len(match) == 0 {
		return nil, nil
	}
	sets := []string{entity}
	if fl, _, ok := ParseFunnelSet(entity); ok {
		sets = sets[:0]
		for _, s := range funnelStages {
			sets = append(sets, FunnelSet(fl, s))
		}
	}
	var terms []findTerm
	for _, m := range match {
		path := strings.ReplaceAll(m.Field, ".", "/")
		if !validPath(path) {
			return nil, rejected("find "+entity, "invalid match field "+m.Field)
		}
		v := strings.TrimSpace(m.Value)
		switch {
		case path == "ID" || strings.HasSuffix(path, "/ID"):
			if !isGUID(v) {
				return nil, nil
			}
			t := path + " eq " + strings.ToLower(v)
			terms = append(terms, findTerm{exact: t, narrow: t})
		case m.Loose, strings.HasSuffix(path, "/"+StreetAndNumber):
			// No server term: see above. StreetAndNumber is the client's
			// own property (address.go), which Tribe cannot filter on.
		default:
			_, err := strconv.ParseFloat(v, 64)
			terms = append(terms, findTerm{
				exact:    "tolower(" + path + ") eq " + quote(strings.ToLower(v)),
				narrow:   "contains(" + path + "," + quote(v) + ")",
				mayBeNum: err == nil,
			})
		}
	}
	var out []connectors.Record
	seen := map[string]bool{}
	noNumbers := false
	for _, set := range sets {
		rows, err := c.findRows(ctx, set, terms, &noNumbers)
		if err != nil {
			return nil, err
		}
		for _, it := range rows {
			rec, err := toRecord(set, it)
			if err != nil || seen[rec.ID] || !connectors.MatchesAll(rec.Fields, match) {
				continue
			}
			seen[rec.ID] = true
			out = append(out, rec)
		}
	}
	return out, nil
}

// findTerm is one match as a $filter condition: exact with tolower(),
// narrow with contains() for a server that refuses tolower().
type findTerm struct {
	exact, narrow string
	mayBeNum      bool // the value may be a number: the field may be numeric
}

// findFilter joins the terms: narrow or exact ones, with or without those
// whose value may be a number.
func findFilter(terms []findTerm, narrow, numbers bool) string {
	var parts []string
	for _, t := range terms {
		switch {
		case t.mayBeNum && !numbers:
		case narrow:
			parts = append(parts, t.narrow)
		default:
			parts = append(parts, t.exact)
		}
	}
	return strings.Join(parts, " and ")
}

// findRows reads the rows of one set that the terms let through (see Find).
// *noNumbers is set once the terms with values that may be numbers were
// refused, for the other sets of the same Find.
func (c *Client) findRows(ctx context.Context, set string, terms []findTerm, noNumbers *bool) ([]item, error) {
	read := func(filter string) ([]item, error) {
		return c.getAll(ctx, c.root+"/"+set+query("$filter", filter, "$expand", expandFor(set)), "find "+set)
	}
	if !c.noToLower.Load() {
		filter := findFilter(terms, false, !*noNumbers)
		rows, err := read(filter)
		if !isBadRequest(err) {
			return rows, err
		}
		if without := findFilter(terms, false, false); without != filter {
			*noNumbers = true
			if rows, err = read(without); !isBadRequest(err) {
				return rows, err
			}
		}
		var ce *connectors.Error
		errors.As(err, &ce)
		c.log.Warn().Str("message", ce.Message).Msg("server refused tolower() in $filter: matching with contains() and comparing here from now on")
		c.noToLower.Store(true)
	}
	// contains() of a numeric field is as much a type error as tolower():
	// values that may be numbers are compared here only.
	return read(findFilter(terms, true, false))
}

// isBadRequest reports whether err is the API's 400.
func isBadRequest(err error) bool {
	var ce *connectors.Error
	return errors.As(err, &ce) && ce.Status == http.StatusBadRequest
}

func validPath(p string) bool {
	if p == "" {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || !isIdentStart(seg[0]) {
			return false
		}
		for i := 0; i < len(seg); i++ {
			if !isIdentByte(seg[i]) {
				return false
			}
		}
	}
	return true
}

// quote writes an OData string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
