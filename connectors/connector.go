package connectors

import (
	"context"
	"time"
)

// Record is one native record, as the API returned it.
type Record struct {
	// Entity is the API's name for the record's collection or type:
	// a TribeCRM entity set ("Relationship_Organization_CommercialRelationship_Lead"),
	// "prospect" for Overplane, "prospects" or "customers" for BlueRockTel.
	// Mappings see it as the pseudo-field "@entity".
	Entity string
	// ID is the record's id in its system, as a string.
	ID string
	// CreatedAt and UpdatedAt are the server-set timestamps (UTC).
	CreatedAt time.Time
	UpdatedAt time.Time
	// Fields holds the record's JSON properties as decoded
	// (string, float64, bool, nil, map[string]any, []any). Navigation
	// properties (TribeCRM's Organization, Person) are nested maps.
	Fields map[string]any
}

// Cursor is an opaque position produced by a connector's Pull. Only the
// connector that produced it can read it. Nil means "from the beginning"
// (or from PullOptions.Since).
type Cursor []byte

// PullOptions tunes one Pull call.
type PullOptions struct {
	// PageSize is the number of records to ask for per page (0: connector default).
	PageSize int
	// Since, when the cursor is nil, starts the pull at this time instead of
	// the beginning (backfill --since). Ignored when a cursor is given.
	Since time.Time
	// WantTotal asks for Page.Total to cover the whole pull from its first
	// page (progress bars), even if that costs a few extra requests.
	WantTotal bool
}

// Page is one page of a pull.
type Page struct {
	// Records on this page, in a stable order. A record may appear again on a
	// later page or pull (overlap windows, edits while paging); the engine
	// handles records idempotently.
	Records []Record
	// Next is the cursor to store once every record of this page is handled.
	// Passing it to Pull continues after this page.
	Next Cursor
	// Done is true when this page is the last of the pull: nothing newer
	// than Next is known to exist right now.
	Done bool
	// Total is the number of records the API says the whole pull covers,
	// or -1 when it does not say (used for progress and ETA).
	Total int
	// FullScan is true when the pull reads every record of the system
	// (not only changed ones), so that a completed pull proves which records
	// exist (used for delete reconciliation).
	FullScan bool
}

// Match is one lookup key for Find: a native field path and the value it
// must equal, compared by MatchesAll (the one rule every connector uses).
type Match struct {
	Field string
	Value string
	// Loose compares without punctuation (names: "Acme B.V." is "ACME
	// BV"); a connector that filters on the server must then not ask for
	// the exact value there.
	Loose bool
}

// Connector is the contract every system implements.
//
// Create and Update return the record as Pull would return it after the
// write (same fields, server-set timestamps), so the engine can fingerprint
// exactly what it will see when the record comes back.
type Connector interface {
	// System returns the connector's system name ("tribecrm", ...).
	System() string

	// Pull returns the page that follows cursor. Records changed since the
	// cursor are returned in a stable order; see each connector for how it
	// finds changes (filter by time, sort with early stop, or full scan).
	Pull(ctx context.Context, cursor Cursor, opts PullOptions) (Page, error)

	// Get reads one record by entity and id. A missing record is an error
	// that IsNotFound recognises.
	Get(ctx context.Context, entity, id string) (Record, error)

	// Find looks in entity for records whose field equals the value of every
	// match (AND). It is used before a create, so a record is never created
	// twice. An empty slice means none.
	Find(ctx context.Context, entity string, match []Match) ([]Record, error)

	// Create creates rec in rec.Entity. It is never retried blindly by the
	// HTTP layer: a create whose outcome is unknown returns an error for
	// which IsOutcomeUnknown is true.
	Create(ctx context.Context, rec Record) (Record, error)

	// Update changes only the given native fields of an existing record.
	// Nested maps address nested properties (TribeCRM's Organization.Name).
	Update(ctx context.Context, entity, id string, changed map[string]any) (Record, error)

	// ConvertStage moves a record to another entity of the same system
	// (TribeCRM: another CommercialRelationship type; BlueRockTel: prospect to
	// customer). The returned record carries the id it has after the move.
	ConvertStage(ctx context.Context, entity, id, toEntity string) (Record, error)

	// Delete removes a record. For TribeCRM this removes the relationship
	// (the funnel role), never the organisation or person.
	Delete(ctx context.Context, entity, id string) error
}

// EntityScopedIDs is implemented by connectors whose ids are unique only
// within one entity (BlueRockTel numbers prospects and customers
// separately). The engine then keys links by entity and id together.
type EntityScopedIDs interface {
	IDsScopedByEntity() bool
}

// ScanFinder is implemented by connectors whose Find reads the whole
// collection (no server-side filter). The engine then reads the target once
// per run and matches against that instead of calling Find per record.
type ScanFinder interface {
	FindScans() bool
}
