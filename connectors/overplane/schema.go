package overplane

import "github.com/crmsync/crmsync/connectors/overplane/api"

// API facts the client relies on; those the emulator shares (paths, child
// doctypes, the list limit) are written once, with their sources, in
// connectors/overplane/api.
const (
	prospectPath = api.ProspectPath
	leadPath     = api.LeadPath
	oppPath      = api.OppPath
	// maxLimit is the largest list limit the client asks for.
	maxLimit = api.MaxLimit
)

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
	{doctype: api.LeadDoctype, path: leadPath, field: "leads"},
	{doctype: api.OppDoctype, path: oppPath, field: "opportunities"},
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
