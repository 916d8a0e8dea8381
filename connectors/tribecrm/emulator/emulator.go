package emulator

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// Options configures an Emulator. Zero values take the defaults noted.
type Options struct {
	// Token is the accepted static bearer token; default "dev-token".
	Token string
	// Records is how many commercial relationships to seed. Seeding is
	// deterministic: the same Records and SeedOffset give the same data,
	// ids and timestamps.
	Records int
	// SeedOffset is the index of the first emukit.Fake profile used (default 0).
	SeedOffset int
	// SeedSets, when set, seeds only these funnel sets (round robin) instead
	// of a realistic spread over all 10.
	SeedSets []string
	// Faults configures fault injection (latency, 5xx, 429, resets).
	Faults emukit.Faults
	// Now is the server clock source; default time.Now.
	Now func() time.Time
	// PageCap caps the number of rows per list reply (0: no cap, which is
	// what we assume Tribe does; see apis.md §0.3). When the cap cuts a reply
	// short, the reply carries @odata.nextLink.
	PageCap int
	// ClientID and ClientSecret are the accepted OAuth2 client credentials
	// for POST /oauth2/token (defaults "dev-client" / "dev-secret").
	ClientID, ClientSecret string
	// TokenLifetime is the lifetime of issued access tokens (default 1h).
	TokenLifetime time.Duration
	// PutSemantics is what PUT Set(id) does with the properties a client
	// does not send (PATCH always merges, and so does POST Set with an ID
	// in the body). The default, PutMerge, keeps them, as Tribe's API pages
	// describe PUT ("Provide only the fields to update"). PutReplace is
	// OData's PUT: the entity is replaced by the body, so every property
	// not sent is reset (see PutReplace).
	PutSemantics PutSemantics
	// ServerPaging makes the @odata.nextLink of a capped reply carry an
	// opaque $skiptoken instead of $skip (OData v4 Part 1 §11.2.6.7:
	// server-driven paging, the token is the server's and a client must not
	// build it), and accepts $skiptoken. RelativeLinks writes the link
	// relative to the context URL ("Set?$skiptoken=…"), which OData's JSON
	// format allows (§4.6.1 of OData JSON v4.01). Both are profiles a
	// client must survive (issue 9); Tribe's own replies are not documented.
	ServerPaging, RelativeLinks bool
	// Webhooks configures the webhook deliveries (webhooks.go); also
	// SetWebhookOptions.
	Webhooks WebhookOptions
}

// PutSemantics selects how the emulator applies a PUT.
type PutSemantics string

const (
	// PutMerge (also the zero value) merges the body into the entity, like
	// PATCH: what Tribe's API pages document for PUT. It stays the default
	// because the harness outside this package (emulate, e2e, the demo)
	// edits records "behind crmsync" with partial PUTs as Tribe documents.
	PutMerge PutSemantics = "merge"
	// PutReplace follows OData v4.01 Part 1 §11.4.3 "Update an Entity":
	// "Services that support PUT MUST replace all values of structural
	// properties with those specified in the request body. Missing
	// non-key, updatable structural properties ... MUST be set to their
	// default values. Omitting a non-nullable property with no
	// service-generated or default value from a PUT request results in a
	// 400 Bad Request error." So a PUT rebuilds the entity from its body as
	// a create would (same ID, CreationDate and SortIndex, which are
	// server-set): a property not sent becomes null (IsActive true,
	// IsClosed false, an address all null), a required one not sent (Name
	// of an organisation, LastName of a person) is a 400, and a sent
	// address replaces the whole address. Links are treated like
	// properties, which is stricter than the standard (it keeps properties
	// tied by a referential constraint): an optional link not sent
	// (Status) is unbound, a required one (Relation, Organization/Person)
	// not sent is a 400. That is the worst a replacing server can do, so a
	// test against it proves a client re-sends its links.
	PutReplace PutSemantics = "replace"
)

// Emulator is an in-memory TribeCRM OData v4 API. It implements
// http.Handler and is safe for concurrent use.
type Emulator struct {
	opts    Options
	clock   *emukit.Clock
	inj     *emukit.Injector
	handler http.Handler

	mu       sync.RWMutex // reads (lists, gets) share it; writes hold it alone
	st       *store
	scan     bool       // answer lists by the full scan (the equivalence test, benchmarks)
	rnd      *rand.Rand // ids of rows created at run time
	tenantID string
	editN    int        // EditDuringPaging: edits after each list reply
	editRnd  *rand.Rand // which rows EditDuringPaging touches
	edits    int
	tokens   map[string]time.Time // issued OAuth tokens -> expiry
	tokenSeq uint64
	hooks    *webhooks // registrations, queue and worker (webhooks.go)

	frozenMu sync.Mutex
	frozen   time.Time // the Freeze instant, zero while the clock runs
}

// seedStart is the first seeded timestamp.
var seedStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// New builds an emulator and seeds it.
func New(o Options) *Emulator {
	if o.Token == "" {
		o.Token = "dev-token"
	}
	if o.ClientID == "" {
		o.ClientID = "dev-client"
	}
	if o.ClientSecret == "" {
		o.ClientSecret = "dev-secret"
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.PutSemantics {
	case "":
		o.PutSemantics = PutMerge
	case PutMerge, PutReplace:
	default:
		panic("tribecrm emulator: Options.PutSemantics must be merge or replace, not " + string(o.PutSemantics))
	}
	em := &Emulator{
		opts:    o,
		clock:   emukit.NewClock(o.Now, time.Millisecond),
		st:      newStore(),
		rnd:     emukit.Rand(uint64(o.SeedOffset)*7919 + 0x7e1be),
		editRnd: emukit.Rand(uint64(o.SeedOffset) + 0xed17),
		tokens:  map[string]time.Time{},
	}
	em.seed()
	em.hooks = newWebhooks(o.Webhooks, webhookTopics(em.st.sets), uint64(o.SeedOffset)*7919+0x400c5)
	em.inj = emukit.NewInjector(o.Faults, o.Now, writeODataError)
	em.handler = em.inj.Wrap(http.HandlerFunc(em.route))
	return em
}

// serverDate sets the reply's Date header from the emulator's own clock
// (the clock that stamps LastMutationDate), as an origin server does
// (RFC 9110 §6.6.1): with Freeze, it shows the frozen instant. net/http
// only adds its own Date when the handler set none.
func (em *Emulator) serverDate(w http.ResponseWriter) {
	em.frozenMu.Lock()
	now := em.frozen
	em.frozenMu.Unlock()
	if now.IsZero() {
		now = em.opts.Now()
	}
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
}

// ServeHTTP implements http.Handler.
func (em *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	em.serverDate(w)
	em.handler.ServeHTTP(w, r)
}

// SetFaults replaces the fault configuration.
func (em *Emulator) SetFaults(f emukit.Faults) { em.inj.Set(f) }

// Injected returns how many faults of each kind were injected.
func (em *Emulator) Injected() map[string]int { return em.inj.Injected() }

// Freeze makes every later write share the timestamp t (the ties knob).
// A zero t unfreezes the clock.
func (em *Emulator) Freeze(t time.Time) {
	em.frozenMu.Lock()
	em.frozen = t.UTC().Truncate(time.Millisecond)
	em.frozenMu.Unlock()
	em.clock.Freeze(t)
}

// TenantID returns the ID of the tenant's own organisation (the Relation of
// every commercial relationship).
func (em *Emulator) TenantID() string { return em.tenantID }

// Len returns the number of commercial relationships (all 10 funnel sets).
func (em *Emulator) Len() int {
	em.mu.RLock()
	defer em.mu.RUnlock()
	n := 0
	for _, s := range funnelSets() {
		n += len(em.st.rows[s])
	}
	return n
}

// Count returns the number of rows in one entity set.
func (em *Emulator) Count(set string) int {
	em.mu.RLock()
	defer em.mu.RUnlock()
	return len(em.st.rows[set])
}

// IDs returns the ids of the rows of one entity set, sorted.
func (em *Emulator) IDs(set string) []string {
	em.mu.RLock()
	defer em.mu.RUnlock()
	out := make([]string, 0, len(em.st.rows[set]))
	for id := range em.st.rows[set] {
		out = append(out, id)
	}
	sortStrings(out)
	return out
}

// Entity returns a row as the API would return it with its links expanded
// three levels deep (a relationship's Organization, its VisitingAddress and
// that address's Country), the set it is in now, and whether it exists.
func (em *Emulator) Entity(id string) (map[string]any, string, bool) {
	em.mu.RLock()
	defer em.mu.RUnlock()
	e, ok := em.st.byID[strings.ToLower(id)]
	if !ok {
		return nil, "", false
	}
	return em.st.render(e, nil, expandAll(e.typ, 3)), e.set, true
}

// expandAll expands every link of t, depth levels deep.
func expandAll(t *typeDef, depth int) []expandItem {
	if depth == 0 {
		return nil
	}
	var exp []expandItem
	for nav, nt := range t.navs {
		exp = append(exp, expandItem{nav: nav, expand: expandAll(nt, depth-1)})
	}
	return exp
}

// Touch bumps LastMutationDate of the given relationships (all commercial
// relationships when no id is given), as an edit that changes no field
// would. With Freeze, this puts them all on one timestamp.
func (em *Emulator) Touch(ids ...string) {
	em.mu.Lock()
	defer em.mu.Unlock()
	if len(ids) == 0 {
		for _, s := range funnelSets() {
			for _, e := range em.st.rows[s] {
				e.props["LastMutationDate"] = em.clock.Now()
			}
			em.st.idx[s].rebuild()
		}
		return
	}
	for _, id := range ids {
		if e, ok := em.st.byID[strings.ToLower(id)]; ok {
			em.st.unindex(e)
			e.props["LastMutationDate"] = em.clock.Now()
			em.st.index(e)
		}
	}
}

// EditDuringPaging makes the emulator edit n commercial relationships right
// after it computes each list reply, so that rows change while a client
// pages. Edits alternate between renaming the relationship (bumping its
// LastMutationDate) and changing the phone number of its organisation or
// person (bumping only that relation's LastMutationDate). 0 turns it off.
func (em *Emulator) EditDuringPaging(n int) {
	em.mu.Lock()
	defer em.mu.Unlock()
	em.editN = n
}

// Edits returns how many EditDuringPaging edits were made so far.
func (em *Emulator) Edits() int {
	em.mu.RLock()
	defer em.mu.RUnlock()
	return em.edits
}

// editSome performs the EditDuringPaging edits. Caller holds em.mu.
func (em *Emulator) editSome() {
	if em.editN <= 0 {
		return
	}
	var all []*entity
	for _, s := range funnelSets() {
		for _, e := range em.st.rows[s] {
			all = append(all, e)
		}
	}
	if len(all) == 0 {
		return
	}
	// Map iteration order is random; sort for a deterministic choice.
	sortEntities(all)
	for i := 0; i < em.editN; i++ {
		e := all[em.editRnd.IntN(len(all))]
		em.edits++
		if em.edits%2 == 0 {
			if child := em.st.navTarget(e, em.st.sets[e.set].flavour); child != nil {
				em.st.unindex(child)
				child.props["PhoneNumber"] = fmt.Sprintf("+31 20 %03d %04d", em.edits/10000%1000, em.edits%10000)
				child.props["LastMutationDate"] = em.clock.Now()
				em.st.index(child)
				em.st.changed(child, api.OpUpdate)
				continue
			}
		}
		base, _ := em.st.displayName(e).(string)
		em.st.unindex(e)
		e.props["Name"] = fmt.Sprintf("%s (edit %d)", base, em.edits)
		e.props["LastMutationDate"] = em.clock.Now()
		em.st.index(e)
		em.st.changed(e, api.OpUpdate)
	}
}

// ---------------------------------------------------------------- seeding

func (em *Emulator) seed() {
	st := em.st
	st.loading = true
	defer st.endLoad()
	tr := emukit.Rand(0x7e1be_7e11a17)
	em.tenantID = newGUID(tr)
	countries := em.seedCountries(tr)
	tenantAddr := seedAddress(st, newGUID(tr), "Herengracht 1", "1015 BA", "Amsterdam", countries["netherlands"], seedStart.Add(-24*time.Hour))
	tenant := &entity{set: relationOrganization, typ: st.sets[relationOrganization].typ, id: em.tenantID,
		props: map[string]any{
			"Name": "Crmsync Demo Tenant BV", "EmailAddress": "sales@crmsync-tenant.example", "PhoneNumber": "+31 20 000 0000",
			"Website": "https://www.crmsync-tenant.example", "VatNumber": "NL000000000B01", "ChamberOfCommerceNumber": "00000000",
			"ImportId": nil, "SortIndex": 0.0, "CreationDate": seedStart.Add(-24 * time.Hour), "LastMutationDate": seedStart.Add(-24 * time.Hour),
		}, nav: map[string]string{"VisitingAddress": tenantAddr}}
	st.add(tenant)
	identity := &entity{set: organizationIdentity, typ: st.sets[organizationIdentity].typ, id: newGUID(tr),
		props: map[string]any{"Name": "Crmsync Demo Tenant BV", "ImportId": nil, "SortIndex": 0.0, "IsActive": true, "IsClosed": false,
			"CreationDate": seedStart.Add(-24 * time.Hour), "LastMutationDate": seedStart.Add(-24 * time.Hour)},
		nav: map[string]string{"Relation": em.tenantID, flavourOrganization: em.tenantID}}
	st.add(identity)

	statuses := []struct{ code, name string }{{"NEW", "New"}, {"CONTACTED", "Contacted"}, {"QUALIFIED", "Qualified"}, {"ON_HOLD", "On hold"}}
	var statusIDs []string
	for i, s := range statuses {
		id := newGUID(tr)
		statusIDs = append(statusIDs, id)
		st.add(&entity{set: "Datastore", typ: st.sets["Datastore"].typ, id: id,
			props: map[string]any{"Code": s.code, "_Name": s.name, "SortIndex": float64(i + 1)}, nav: map[string]string{}})
	}

	stageWeights := []int{30, 25, 15, 15, 15} // Suspect..Customer, percent
	minute := 0
	for i := 0; i < em.opts.Records; i++ {
		idx := em.opts.SeedOffset + i
		p := emukit.Fake(idx)
		r := emukit.Rand(uint64(idx)*2654435761 + 0x5eed)
		relID, childID := newGUID(r), newGUID(r)
		// About a quarter of the records share the previous record's
		// timestamp, which makes groups of ties.
		if i > 0 && r.IntN(4) != 0 {
			minute++
		}
		lmd := seedStart.Add(time.Duration(minute) * time.Minute)
		created := seedStart.Add(time.Duration(r.IntN(minute+1)) * time.Minute)

		var set string
		if len(em.opts.SeedSets) > 0 {
			set = em.opts.SeedSets[i%len(em.opts.SeedSets)]
		} else {
			flavour := flavourOrganization
			if r.IntN(10) >= 7 {
				flavour = flavourPerson
			}
			w, stage := r.IntN(100), 0
			for w >= stageWeights[stage] {
				w -= stageWeights[stage]
				stage++
			}
			set = funnelSet(flavour, funnelStages[stage])
		}
		si, ok := st.sets[set]
		if !ok || si.kind != setFunnel {
			panic("tribecrm emulator: SeedSets holds a set that is not a funnel set: " + set)
		}
		addrID := newGUID(emukit.Rand(uint64(idx)*2654435761 + 0xadd7))
		seedAddress(st, addrID, p.Street, p.PostalCode, p.City, countries[strings.ToLower(p.Country)], created)
		var child *entity
		name := p.Company
		if si.flavour == flavourOrganization {
			child = &entity{set: relationOrganization, typ: st.sets[relationOrganization].typ, id: childID, props: map[string]any{
				"Name": p.Company, "EmailAddress": p.CompanyEmail, "PhoneNumber": p.Phone, "Website": p.Website,
				"VatNumber": p.VATNumber, "ChamberOfCommerceNumber": p.RegistrationNumber,
			}, nav: map[string]string{"VisitingAddress": addrID}}
		} else {
			middle, last := splitDutchLastName(p.LastName)
			child = &entity{set: relationPerson, typ: st.sets[relationPerson].typ, id: childID, props: map[string]any{
				"FirstName": p.FirstName, "MiddleName": middle, "LastName": last, "EmailAddress": p.Email,
				"PhoneNumber": p.Phone, "MobilePhoneNumber": p.Mobile,
			}, nav: map[string]string{"Address": addrID}}
			name = strings.TrimSpace(p.FirstName + " " + p.LastName)
		}
		child.props["ImportId"] = nil
		child.props["SortIndex"] = float64(i + 1)
		child.props["CreationDate"] = created
		child.props["LastMutationDate"] = created
		st.add(child)

		var importID any
		if r.IntN(5) == 0 {
			importID = fmt.Sprintf("seed-%d", idx)
		}
		rel := &entity{set: set, typ: si.typ, id: relID, props: map[string]any{
			"Name": name, "IsActive": r.IntN(10) != 0, "IsClosed": r.IntN(10) == 0, "ImportId": importID,
			"SortIndex": float64(i + 1), "CreationDate": created, "LastMutationDate": lmd,
		}, nav: map[string]string{"Relation": em.tenantID, si.flavour: childID}}
		if r.IntN(3) == 0 {
			rel.nav["Status"] = statusIDs[r.IntN(len(statusIDs))]
		}
		st.add(rel)
	}
}

// seedCountries stores the Datastore_Country rows and returns their IDs by
// lower-case name. Code is the ISO 3166-1 alpha-2 code: Tribe's page calls it
// a "Unique code identifier" (docs/api/datastores/countries) without naming
// the code list, so that it is ISO is an assumption (docs/apis.md §1).
func (em *Emulator) seedCountries(r *rand.Rand) map[string]string {
	out := map[string]string{}
	for i, c := range seedCountryList {
		id := newGUID(r)
		out[strings.ToLower(c.name)] = id
		em.st.add(&entity{set: setCountry, typ: em.st.sets[setCountry].typ, id: id, nav: map[string]string{}, props: map[string]any{
			"Code": c.code, "Name": c.name, "_Name": c.name, "LocalizedName": c.local, "IsDefault": c.code == "NL",
			"HasIntraCommunityVat": c.eu, "CountryNumber": nil, "SortIndex": float64(i + 1),
		}})
	}
	return out
}

// seedCountryList holds the countries the seed profiles use and a few more.
var seedCountryList = []struct {
	code, name, local string
	eu                bool
}{
	{"NL", "Netherlands", "Nederland", true}, {"BE", "Belgium", "België", true}, {"DE", "Germany", "Duitsland", true},
	{"FR", "France", "Frankrijk", true}, {"GB", "United Kingdom", "Verenigd Koninkrijk", false}, {"LU", "Luxembourg", "Luxemburg", true},
	{"ES", "Spain", "Spanje", true}, {"IT", "Italy", "Italië", true}, {"US", "United States", "Verenigde Staten", false},
}

// seedAddress stores one Address row: the street line's trailing number is
// Tribe's separate HouseNumber ("Keizersgracht 12" is Street "Keizersgracht",
// HouseNumber 12; docs/api/entities/addresses).
func seedAddress(st *store, id, line, postal, city, countryID string, at time.Time) string {
	street, number := line, any(nil)
	if i := strings.LastIndexByte(line, ' '); i > 0 {
		if n, err := strconv.Atoi(line[i+1:]); err == nil {
			street, number = line[:i], float64(n)
		}
	}
	e := &entity{set: setAddress, typ: st.sets[setAddress].typ, id: id, nav: map[string]string{}, props: map[string]any{
		"Street": street, "HouseNumber": number, "HouseNumberSuffix": nil, "Extra": nil, "Postalcode": postal, "City": city,
		"Latitude": nil, "Longitude": nil, "ImportId": nil, "SortIndex": 0.0, "CreationDate": at, "LastMutationDate": at,
	}}
	if countryID != "" {
		e.nav["Country"] = countryID
	}
	st.add(e)
	return id
}

// splitDutchLastName splits a prefix ("de Vries") into Tribe's MiddleName
// ("de") and LastName ("Vries"), as Dutch CRMs store them.
func splitDutchLastName(full string) (middle any, last string) {
	if i := strings.LastIndexByte(full, ' '); i > 0 {
		prefix := full[:i]
		if prefix == strings.ToLower(prefix) {
			return prefix, full[i+1:]
		}
	}
	return nil, full
}

// ---------------------------------------------------------------- HTTP

// odataError is the OData (Olingo) error body.
type odataError struct {
	Error odataErrorBody `json:"error"`
}

type odataErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeODataError(w http.ResponseWriter, status int, message string) {
	code := http.StatusText(status)
	code = strings.ReplaceAll(code, " ", "")
	writeJSON(w, status, odataError{Error: odataErrorBody{Code: code, Message: message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"InternalServerError","message":"encode response"}}`)
	}
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (em *Emulator) route(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/oauth2/token":
		em.serveToken(w, r)
	case r.URL.Path == "/v1/odata" || strings.HasPrefix(r.URL.Path, "/v1/odata/"):
		if !em.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tribecrm"`)
			writeODataError(w, http.StatusUnauthorized, "The access token is missing, invalid or expired.")
			return
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v1/odata"), "/")
		if rest == "Webhook" && r.Method == http.MethodGet {
			// The registrations as an OData set (TDOC:api/concepts/webhooks
			// names GET /v1/odata/Webhook beside GET /v1/webhooks).
			writeJSON(w, http.StatusOK, map[string]any{"@odata.context": baseURL(r) + "/v1/odata/$metadata#Webhook", "value": em.hooks.list()})
			return
		}
		em.serveOData(w, r, rest)
	case r.URL.Path == api.WebhooksPath || strings.HasPrefix(r.URL.Path, api.WebhooksPath+"/"):
		if !em.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tribecrm"`)
			writeODataError(w, http.StatusUnauthorized, "The access token is missing, invalid or expired.")
			return
		}
		em.serveWebhooks(w, r)
	default:
		writeODataError(w, http.StatusNotFound, "No route for "+r.URL.Path+".")
	}
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func sortStrings(s []string) { slices.Sort(s) }

func sortEntities(es []*entity) {
	slices.SortFunc(es, func(a, b *entity) int { return strings.Compare(a.id, b.id) })
}
