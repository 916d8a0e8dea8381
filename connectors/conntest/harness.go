package conntest

import (
	"net/http"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/httpx"
)

// EmuOptions is what a case asks of a fresh emulator.
type EmuOptions struct {
	// Records is how many records to seed (the connector decides how they
	// spread over its entities; Emulator.Keys says which exist).
	Records int
	// Faults are injected from the first request on.
	Faults emukit.Faults
	// PageCap is a server-side cap on the page size (0: the API's default).
	PageCap int
	// Ties puts every seeded record on one timestamp (the one the
	// connector's change detection reads) and keeps every later write on it.
	Ties bool
}

// Emulator is a started emulator and the knobs a case may turn.
type Emulator struct {
	// Handler serves the API (the suite puts it behind httptest.NewServer).
	Handler http.Handler
	// Keys returns Key(entity, id) of every record a full pull must return,
	// read from the emulator's store.
	Keys func() []string
	// SetFaults replaces the fault configuration.
	SetFaults func(emukit.Faults)
	// Injected counts the faults injected so far by kind ("5xx", "429", "reset").
	Injected func() map[string]int
	// EditDuringPaging makes the emulator change n records after every list
	// page it serves (0 turns it off). Nil when the emulator has no such knob.
	EditDuringPaging func(n int)
	// ExpireAuth makes every access token issued so far invalid (revoked or
	// expired), as the vendor would after its lifetime. Nil when the API's
	// credentials never expire.
	ExpireAuth func()
}

// ClientConfig tunes the client a case builds.
type ClientConfig struct {
	// Auth: authenticate with the refreshable credentials the emulator
	// accepts (OAuth2 client credentials, login e-mail and password) instead
	// of a static token.
	Auth bool
	// Light: the case pulls thousands of records or counts requests against
	// a rate limit; the connector may turn off per-record sub-requests that
	// do not change how paging works (say so in the harness).
	Light bool
}

// Change is one field to update.
type Change struct {
	// Field is a native field path as Pull returns it ("Name",
	// "Organization.PhoneNumber", "website"); dots address nested maps.
	Field string
	// Value is the new value.
	Value any
}

// Edit changes one record behind the client's back, through the API (as
// another user would). It picks its record among recs (records a full pull
// returned) and returns the record's key and the field path and value a
// later pull must show.
type Edit func(t testing.TB, api *API, recs []connectors.Record) (key, field string, want any)

// Conversion is a stage move the connector supports.
type Conversion struct {
	From, To string // entities
}

// Harness describes one connector to the suite. Fields marked optional may
// be left zero.
type Harness struct {
	// System is the connector's system name.
	System string
	// ErrorMessage is the connector's error-body reader for httpx.
	ErrorMessage func(status int, body []byte) string
	// Start starts a fresh emulator.
	Start func(t testing.TB, o EmuOptions) *Emulator
	// NewClient builds a client for baseURL over hc (built by the suite
	// with short retry waits).
	NewClient func(t testing.TB, baseURL string, hc *httpx.Client, cfg ClientConfig) connectors.Connector
	// Token is the static bearer token the emulator accepts (default "dev-token").
	Token string
	// AuthPath is the path of the token or login endpoint (optional: empty
	// when the API has no refreshable credentials).
	AuthPath string

	// Entity is the entity the write cases create into.
	Entity string
	// NewRecord returns a valid record for Entity, unique for each i.
	NewRecord func(i int) connectors.Record
	// Match returns the Find matches that identify rec.
	Match func(rec connectors.Record) []connectors.Match
	// RawGet reads a record straight from the API (not through the client),
	// with nested objects expanded and keys spelled as the client's Fields.
	RawGet func(t testing.TB, api *API, entity, id string) map[string]any
	// Volatile are field paths of RawGet's answer that any write may change
	// (timestamps, computed names): UpdateOnlyChanged ignores them.
	Volatile []string
	// Updates are the fields UpdateOnlyChanged changes, one at a time.
	Updates []Change
	// UpdateIdentity is the top-level body member that names the record in
	// an update request, when the API updates that way (TribeCRM's POST
	// Set with "ID" in the body, as the vendor's own clients update).
	// UpdateOnlyChanged requires it to hold the record's id and does not
	// count it as a changed field. Empty: the id is in the path only.
	UpdateIdentity string
	// Edits are the changes Incremental makes behind the client's back.
	Edits []Edit
	// Convert is the stage conversion to test (optional: nil when the
	// connector has none, and ConvertStage must then refuse).
	Convert *Conversion
	// AfterDelete checks what must survive a Delete (optional).
	AfterDelete func(t testing.TB, api *API, deleted connectors.Record)
	// Overlap: the connector documents that a quiet full pull may return a
	// record twice. When false, a pull during which nothing changes must
	// return every record exactly once.
	Overlap bool
	// Known lists contract checks this connector is known to fail, by check
	// id (see the Check* constants), with the reason. A known failure is
	// logged and turns its case into a skip that says so; a known failure
	// that no longer happens fails the case, so the entry gets removed.
	Known map[string]string
	// SameReadsAs names another profile of the same connector whose pulls
	// this one's are identical to (a profile that differs in writes only,
	// or in a naming the client reads the same way): the long read-only
	// case, Ties5000, runs in that profile only.
	SameReadsAs string
}

// Ids of contract checks a Harness may list in Known.
const (
	// CheckTotal: the last page's Total is the number of records the whole
	// pull covers (or -1).
	CheckTotal = "total"
	// CheckFullScanEdits: a pull that says FullScan returns every record
	// that existed while it ran, even records edited while it paged.
	CheckFullScanEdits = "fullscan-edits"
)

// Key is how the suite names a record: entity and id.
func Key(entity, id string) string { return entity + "/" + id }

func splitKey(k string) (entity, id string) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:]
		}
	}
	return "", k
}

func (h *Harness) validate(t *testing.T) {
	t.Helper()
	switch {
	case h.System == "", h.Start == nil, h.NewClient == nil, h.Entity == "", h.NewRecord == nil,
		h.Match == nil, h.RawGet == nil, len(h.Updates) == 0, len(h.Edits) == 0:
		t.Fatal("conntest: Harness is missing a required field")
	}
	if h.Token == "" {
		h.Token = "dev-token"
	}
}
