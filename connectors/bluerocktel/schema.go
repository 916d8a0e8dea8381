package bluerocktel

// The API facts the client relies on. The emulator (package emulator) keeps
// its own copy of each; neither side reads the other's.

// Entity names: the API's collection names (GET/POST /api/v1/prospects,
// /api/v1/customers; /work/shared/seeds/bluerocktel-prospects.txt "Base URL:
// /api/v1/prospects", BDOC:customers), used as connectors.Record.Entity.
const (
	EntityProspects = "prospects"
	EntityCustomers = "customers"
)

// DefaultConvertPath is the prospect -> customer conversion route (POST,
// with "{id}") the client uses unless Options.ConvertPath (convert_path)
// says otherwise. The route is NOT documented by the vendor: the docs
// promise "prospect-to-customer conversion" (seed
// bluerocktel-prospects.txt intro, BDOC:prospects) but no copy shows its
// path or body (research notes apis.md §0.4 and §4(c), which guess this
// path or .../transform; docs/apis.md §3 "Open questions"). It is a guess,
// configurable on both the client and the emulator.
const DefaultConvertPath = "/api/v1/prospects/{id}/convert"
