// Package builtin assembles the connector registry of this build: every
// system type crmsync ships. It is the one place that names them all;
// config, app, emulate and the CLI take the registry and loop over it.
package builtin

import (
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/overplane"
	"github.com/crmsync/crmsync/connectors/tribecrm"
)

// Registry returns a new registry of the built-in types.
func Registry() *connectors.Registry {
	r, err := connectors.NewRegistry(tribecrm.Type(), overplane.Type(), bluerocktel.Type())
	if err != nil {
		panic(err) // a programming error: the built-in types are fixed
	}
	return r
}
