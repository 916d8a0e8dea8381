package overplane

// API facts the client relies on. Overplane's reference is generated from
// ERPNext/Frappe doctypes (a Prospect with two child tables); the emulator
// (package emulator) keeps its own copy of each fact, so neither side
// imports the other.

// Paths are /api/<module>/<kebab-doctype>; child tables are separate
// collections reached through the parent's id (seed
// /work/shared/seeds/overplane-prospect.txt, "Line items"; research
// shared/research/apis.md §2(a)).
const (
	prospectPath = "/api/crm/prospect"
	leadPath     = "/api/crm/prospect-lead"
	oppPath      = "/api/crm/prospect-opportunity"
)

// maxLimit is the largest list limit the client asks for. The cap is
// undocumented; 100 is assumed (shared/research/apis.md §2(c), docs/apis.md
// §2 "maximum limit"), and the client adapts to a smaller one.
const maxLimit = 100

// childKind is one child table of Prospect as the client carries it.
type childKind struct {
	// doctype is the kebab doctype, the id prefix of its rows and the last
	// segment of its path ("prospect-lead").
	doctype string
	// path is the collection ("/api/crm/prospect-lead"): GET ?parent_id=,
	// POST, PATCH|DELETE /{id}, POST /reorder (seed overplane-prospect.txt,
	// "Endpoints").
	path string
	// field is the record field the client puts the rows in ("leads"): a
	// name of crmsync's, not the API's (docs/apis.md §2 "Child tables").
	field string
}

// childKinds lists the child tables in a fixed order: Prospect Lead and
// Prospect Opportunity (seed overplane-prospect.txt).
var childKinds = []*childKind{
	{doctype: "prospect-lead", path: leadPath, field: "leads"},
	{doctype: "prospect-opportunity", path: oppPath, field: "opportunities"},
}

// childKindByField returns the child table carried in record field f, or nil.
func childKindByField(f string) *childKind {
	for _, k := range childKinds {
		if k.field == f {
			return k
		}
	}
	return nil
}
