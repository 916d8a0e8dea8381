// Package emulate serves the emulator of every registered system type on a
// loopback listener, seeded with deterministic data. It backs `crmsync
// emulate`, `crmsync demo`, the end-to-end tests and the benchmarks, so all
// of them exercise the same emulator code. It names no system type: each
// type's package registers its emulator (connectors.Type.Emulator).
package emulate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
)

// Options configures the emulators.
type Options struct {
	// Types are the system types to serve (required).
	Types *connectors.Registry
	// Addr is every emulator's listen address unless Addrs names one:
	// "127.0.0.1:0" picks free ports, "" each type's default address.
	Addr string
	// Addrs are listen addresses by type name.
	Addrs map[string]string
	// Token is the bearer token every emulator accepts (default dev-token).
	Token string
	// Seed is the number of records seeded per emulator, unless Seeds
	// names the type.
	Seed  int
	Seeds map[string]int
	// Faults are injected by every emulator.
	Faults  emukit.Faults
	PageCap int
	// Ties makes records share one timestamp: seeds are stamped alike, and
	// every later write in every emulator gets that same timestamp.
	Ties bool
	// EditDuringPaging makes each emulator edit n records after every list
	// page it answers, as colleagues would while a client pages.
	EditDuringPaging int
	// Params are type-specific knobs by type name (see
	// connectors.EmulatorType.Params).
	Params map[string]map[string]string
}

// TieTime is the one timestamp shared by every record under Options.Ties.
var TieTime = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Servers are the running emulators.
type Servers struct {
	// Handlers are the emulators by type name; a test that knows the type
	// asserts its concrete emulator type.
	Handlers map[string]http.Handler
	// URLs by type name ("tribecrm", "overplane", "bluerocktel").
	URLs     map[string]string
	servers  []*http.Server
	counters map[string]*counter
}

// Start listens on one address per type and serves until Close (or ctx ends).
func Start(ctx context.Context, o Options) (*Servers, error) {
	if o.Types == nil {
		return nil, errors.New("emulate: no system types")
	}
	if o.Token == "" {
		o.Token = "dev-token"
	}
	s := &Servers{Handlers: map[string]http.Handler{}, URLs: map[string]string{}, counters: map[string]*counter{}}
	for name := range o.Params {
		if _, ok := o.Types.Lookup(name); !ok {
			return nil, fmt.Errorf("emulator options for unknown type %q", name)
		}
	}
	for _, t := range o.Types.Types() {
		if t.Emulator.New == nil {
			continue
		}
		eo := connectors.EmulatorOptions{Token: o.Token, Records: o.Seed, Faults: o.Faults, PageCap: o.PageCap,
			EditDuringPaging: o.EditDuringPaging, Params: o.Params[t.Name]}
		if n, ok := o.Seeds[t.Name]; ok {
			eo.Records = n
		}
		if o.Ties {
			eo.Ties = TieTime
		}
		h, err := t.Emulator.New(eo)
		if err != nil {
			s.Close()
			return nil, err
		}
		addr := o.Addrs[t.Name]
		if addr == "" {
			addr = o.Addr
		}
		if addr == "" {
			addr = t.Emulator.Addr
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("%s emulator: listen on %s: %w", t.Name, addr, err)
		}
		c := &counter{next: h}
		srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		s.Handlers[t.Name] = h
		s.counters[t.Name] = c
		s.URLs[t.Name] = "http://" + ln.Addr().String()
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
