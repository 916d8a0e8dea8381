// Package emulate serves the three API emulators (TribeCRM, Overplane,
// BlueRockTel) on loopback listeners, seeded with deterministic data. It
// backs `crmsync emulate`, `crmsync demo`, the end-to-end tests and the
// benchmarks, so all of them exercise the same emulator code.
package emulate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/overplane"
	"github.com/crmsync/crmsync/connectors/tribecrm"
)

// Options configures the emulators.
type Options struct {
	TribeCRMAddr    string // default 127.0.0.1:8081; "127.0.0.1:0" picks a free port
	OverplaneAddr   string // default 127.0.0.1:8082
	BlueRockTelAddr string // default 127.0.0.1:8083
	Token           string // default dev-token
	// Seed is the number of records per system (TribeCRM gets Seed; the
	// others SeedOthers, which defaults to Seed).
	Seed       int
	SeedOthers *int
	Faults     emukit.Faults
	PageCap    int
	// Ties makes records share one timestamp: BlueRockTel and Overplane
	// seeds are all stamped alike, and every later write in all three
	// emulators gets that same timestamp.
	Ties bool
	// EditDuringPaging makes each emulator edit n records after every list
	// page it answers, as colleagues would while a client pages.
	EditDuringPaging int
	// BlueRockTelNaming is the field spelling BlueRockTel answers with and
	// accepts on writes (keys in the other spelling are dropped): camel
	// (default, as the official SDK reads and writes) or snake (the docs).
	BlueRockTelNaming string
}

// tieTime is the one timestamp shared by every record under Options.Ties.
var tieTime = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Servers are the running emulators.
type Servers struct {
	TribeCRM    *tribecrm.Emulator
	Overplane   *overplane.Emulator
	BlueRockTel *bluerocktel.Emulator
	// URLs by system name ("tribecrm", "overplane", "bluerocktel").
	URLs    map[string]string
	servers []*http.Server
}

// Start listens on the three addresses and serves until Close (or ctx ends).
func Start(ctx context.Context, o Options) (*Servers, error) {
	if o.Token == "" {
		o.Token = "dev-token"
	}
	others := o.Seed
	if o.SeedOthers != nil {
		others = *o.SeedOthers
	}
	opo := overplane.EmulatorOptions{Token: o.Token, Records: others, Faults: o.Faults, PageCap: o.PageCap}
	bro := bluerocktel.EmulatorOptions{Token: o.Token, Records: others, Faults: o.Faults, PageCap: o.PageCap, Naming: bluerocktel.Naming(o.BlueRockTelNaming)}
	if o.Ties {
		opo.SeedTieGroup = max(others, 1)
		bro.SeedTimestamp = tieTime
	}
	s := &Servers{
		TribeCRM:    tribecrm.NewEmulator(tribecrm.EmulatorOptions{Token: o.Token, Records: o.Seed, Faults: o.Faults, PageCap: o.PageCap}),
		Overplane:   overplane.NewEmulator(opo),
		BlueRockTel: bluerocktel.NewEmulator(bro),
		URLs:        map[string]string{},
	}
	if o.Ties {
		s.TribeCRM.Freeze(tieTime)
		s.Overplane.Freeze(tieTime)
		s.BlueRockTel.Freeze(tieTime)
	}
	if o.EditDuringPaging > 0 {
		s.TribeCRM.EditDuringPaging(o.EditDuringPaging)
		s.Overplane.EditDuringPaging(o.EditDuringPaging)
		s.BlueRockTel.EditDuringPaging(o.EditDuringPaging)
	}
	def := func(a, d string) string {
		if a == "" {
			return d
		}
		return a
	}
	for _, e := range []struct {
		name, addr string
		h          http.Handler
	}{
		{tribecrm.System, def(o.TribeCRMAddr, "127.0.0.1:8081"), s.TribeCRM},
		{overplane.System, def(o.OverplaneAddr, "127.0.0.1:8082"), s.Overplane},
		{bluerocktel.System, def(o.BlueRockTelAddr, "127.0.0.1:8083"), s.BlueRockTel},
	} {
		ln, err := net.Listen("tcp", e.addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s emulator: listen on %s: %w", e.name, e.addr, err)
		}
		srv := &http.Server{Handler: e.h, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		s.URLs[e.name] = "http://" + ln.Addr().String()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				_ = err // the listener closed under us; Close reports nothing more useful
			}
		}()
	}
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return s, nil
}

// Close stops every emulator.
func (s *Servers) Close() {
	for _, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
}
