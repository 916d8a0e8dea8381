package bluerocktel

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
)

// Issue 9 item 10: no public material documents a conversion route. On a
// server without one, the client must say "not supported" (a capability),
// not report every record as a missing record to dead-letter.
func TestConvertWithoutRouteIsUnsupportedNotNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, brtemu.Options{Records: 3, NoConvert: true}, nil)
	ctx := context.Background()
	for _, id := range []string{"1", "2"} {
		_, err := e.cli.ConvertStage(ctx, EntityProspects, id, EntityCustomers)
		if !connectors.IsUnsupported(err) {
			t.Fatalf("convert %s on a server without the route: %v (kind %v), want unsupported", id, err, connectors.KindOf(err))
		}
	}
	if n := len(e.emu.Writes()); n != 0 {
		t.Fatalf("%d writes reached the server", n)
	}
	if _, ok := e.emu.Record(EntityProspects, 2); !ok {
		t.Fatal("prospect 2 is gone")
	}
}

// Item 10: conversion: off never sends a request; a prospect id that does
// not exist on a server that has the route stays NotFound (the record).
func TestConvertOffAndMissingRecord(t *testing.T) {
	t.Parallel()
	var posts sync.Map
	e := newEnv(t, brtemu.Options{Records: 2}, func(o *Options) { o.Conversion = ConversionOff })
	wrapSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Store(r.URL.Path, true)
		e.emu.ServeHTTP(w, r)
	}))
	t.Cleanup(wrapSrv.Close)
	off := e.newClient(t, func(o *Options) { o.BaseURL = wrapSrv.URL; o.Conversion = ConversionOff })
	if _, err := off.ConvertStage(context.Background(), EntityProspects, "1", EntityCustomers); !connectors.IsUnsupported(err) {
		t.Fatalf("conversion off: %v, want unsupported", err)
	}
	if _, sent := posts.Load("/api/v1/prospects/1/convert"); sent {
		t.Fatal("conversion off sent a request")
	}
	auto := e.newClient(t, nil)
	if _, err := auto.ConvertStage(context.Background(), EntityProspects, "99", EntityCustomers); !connectors.IsNotFound(err) {
		t.Fatalf("missing prospect on a server with the route: %v, want not found", err)
	}
	if _, err := auto.ConvertStage(context.Background(), EntityProspects, "1", EntityCustomers); err != nil {
		t.Fatalf("convert with the route: %v", err)
	}
}

// Item 10: conversion is a typed key of the bluerocktel system, default
// auto, validated, and reaches the client.
func TestConversionConfigKey(t *testing.T) {
	t.Parallel()
	o := &Config{}
	o.Default()
	if o.Conversion != string(ConversionAuto) {
		t.Errorf("default conversion %q, want auto", o.Conversion)
	}
	bad := &Config{Naming: "camel", ConvertPath: DefaultConvertPath, Conversion: "maybe"}
	var keys []string
	for _, p := range bad.Check(connectors.Settings{Token: "t"}) {
		keys = append(keys, p.Key)
	}
	if len(keys) != 1 || keys[0] != "conversion" {
		t.Errorf("problems of conversion: maybe: %v", keys)
	}
	srv := httptest.NewServer(brtemu.New(brtemu.Options{Records: 1}))
	t.Cleanup(srv.Close)
	c, err := Type().New(context.Background(), connectors.Settings{Name: "brt", BaseURL: srv.URL, Token: "dev-token", Logger: zerolog.Nop()},
		&Config{Naming: "camel", ConvertPath: DefaultConvertPath, Conversion: string(ConversionOff)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ConvertStage(context.Background(), EntityProspects, "1", EntityCustomers); !connectors.IsUnsupported(err) {
		t.Errorf("conversion: off from the config: %v", err)
	}
}
