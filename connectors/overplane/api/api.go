// Package api holds the Overplane facts that the client and the emulator
// both rely on, written once with their sources: the paths of the Prospect
// doctype and of its two child tables, and the list limit. Everything else
// each side decides for itself, so the emulator stays an independent
// witness of the vendor.
//
// Sources: the seed page ../shared/seeds/overplane-prospect.txt
// ("Endpoints", "Line items": /api/<module>/<kebab-doctype>, child tables as
// separate collections reached through the parent's id), research apis.md
// §2(a) and §2(c), docs/apis.md §2. Overplane's reference is generated from
// ERPNext/Frappe doctypes (frappe/erpnext erpnext/crm/doctype/prospect).
package api

// Paths of the Prospect doctype and its child tables.
const (
	ProspectPath = "/api/crm/prospect"
	LeadPath     = "/api/crm/prospect-lead"
	OppPath      = "/api/crm/prospect-opportunity"
)

// Child doctypes (kebab case): the last segment of their path and the
// prefix of their rows' ids.
const (
	LeadDoctype = "prospect-lead"
	OppDoctype  = "prospect-opportunity"
)

// MaxLimit is the largest list limit. The cap is undocumented; 100 is
// assumed (research apis.md §2(c), docs/apis.md §2 "maximum limit"), and the
// client adapts to a smaller one.
const MaxLimit = 100
