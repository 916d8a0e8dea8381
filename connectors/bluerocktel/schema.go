package bluerocktel

import "github.com/crmsync/crmsync/connectors/bluerocktel/api"

// The API facts the client relies on; those the emulator shares are
// written once, with their sources, in connectors/bluerocktel/api.

// Entity names: the API's collection names, used as connectors.Record.Entity.
const (
	EntityProspects = api.Prospects
	EntityCustomers = api.Customers
)

// DefaultConvertPath is the prospect -> customer conversion route the client
// uses unless convert_path says otherwise. The vendor does not document one:
// see api.DefaultConvertPath.
const DefaultConvertPath = api.DefaultConvertPath
