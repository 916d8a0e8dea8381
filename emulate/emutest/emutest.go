// Package emutest starts the built-in emulators for tests that know which
// vendor they talk to: it is emulate.Start over the built-in registry, with
// each emulator under its concrete type (srv.TribeCRM.Touch(), ...).
package emutest

import (
	"context"
	"fmt"

	"github.com/crmsync/crmsync/connectors/bluerocktel"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/overplane"
	overplaneemu "github.com/crmsync/crmsync/connectors/overplane/emulator"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	tribeemu "github.com/crmsync/crmsync/connectors/tribecrm/emulator"
	"github.com/crmsync/crmsync/emulate"
)

// Options configures the built-in emulators, on free loopback ports.
type Options struct {
	Token string
	// Seed is the number of TribeCRM records; SeedOthers (default Seed) the
	// number of Overplane and BlueRockTel records.
	Seed             int
	SeedOthers       *int
	Faults           emukit.Faults
	PageCap          int
	Ties             bool
	EditDuringPaging int
	// BlueRockTelNaming is the BlueRockTel emulator's spelling (camel or
	// snake; "" camel).
	BlueRockTelNaming string
}

// Servers are the running emulators, each also under its concrete type.
type Servers struct {
	*emulate.Servers
	TribeCRM    *tribeemu.Emulator
	Overplane   *overplaneemu.Emulator
	BlueRockTel *brtemu.Emulator
}

// Start starts the three built-in emulators.
func Start(ctx context.Context, o Options) (*Servers, error) {
	eo := emulate.Options{Types: builtin.Registry(), Addr: "127.0.0.1:0", Token: o.Token, Seed: o.Seed,
		Faults: o.Faults, PageCap: o.PageCap, Ties: o.Ties, EditDuringPaging: o.EditDuringPaging}
	if o.SeedOthers != nil {
		eo.Seeds = map[string]int{overplane.System: *o.SeedOthers, bluerocktel.System: *o.SeedOthers}
	}
	if o.BlueRockTelNaming != "" {
		eo.Params = map[string]map[string]string{bluerocktel.System: {"naming": o.BlueRockTelNaming}}
	}
	s, err := emulate.Start(ctx, eo)
	if err != nil {
		return nil, err
	}
	out := &Servers{Servers: s}
	var ok [3]bool
	out.TribeCRM, ok[0] = s.Handlers[tribecrm.System].(*tribeemu.Emulator)
	out.Overplane, ok[1] = s.Handlers[overplane.System].(*overplaneemu.Emulator)
	out.BlueRockTel, ok[2] = s.Handlers[bluerocktel.System].(*brtemu.Emulator)
	if !ok[0] || !ok[1] || !ok[2] {
		s.Close()
		return nil, fmt.Errorf("emutest: unexpected emulator types %T", s.Handlers)
	}
	return out, nil
}
