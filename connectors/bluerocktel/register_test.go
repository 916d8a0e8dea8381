package bluerocktel

import (
	"context"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
)

// The registered type: its options' defaults and checks, a connector built
// from settings, and the emulator built from connectors.EmulatorOptions
// (its naming knob converted to the emulator's own type).
func TestTypeOptionsConnectorAndEmulator(t *testing.T) {
	t.Parallel()
	typ := Type()
	o := typ.NewOptions().(*Config)
	o.Default()
	if o.Naming != string(NamingCamel) || o.ConvertPath != DefaultConvertPath {
		t.Errorf("defaults: %+v", o)
	}
	if p := o.Check(connectors.Settings{Token: "t"}); len(p) != 0 {
		t.Errorf("defaulted options with a token: %v", p)
	}
	bad := &Config{Naming: "kebab", ConvertPath: "/api/v1/convert", Login: &LoginConfig{Email: "a@b.c"}}
	keys := map[string]bool{}
	for _, p := range bad.Check(connectors.Settings{}) {
		keys[p.Key] = true
	}
	if !keys["login"] || !keys["naming"] || !keys["convert_path"] {
		t.Errorf("problems of bad options: %v", keys)
	}
	if p := o.Check(connectors.Settings{}); len(p) != 1 || p[0].Key != "" || !strings.Contains(p[0].Msg, "no credentials") {
		t.Errorf("no token, no login: %v", p)
	}

	h, err := typ.Emulator.New(connectors.EmulatorOptions{Token: "tok", Records: 4, Ties: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
		EditDuringPaging: 1, Params: map[string]string{"naming": "snake"}})
	if err != nil {
		t.Fatal(err)
	}
	em, ok := h.(*brtemu.Emulator)
	if !ok || em.Len() != 4 {
		t.Fatalf("emulator %T", h)
	}
	srv := httptest.NewServer(em)
	defer srv.Close()
	c, err := typ.New(context.Background(), connectors.Settings{Name: "brt", BaseURL: srv.URL, Token: "tok", Logger: zerolog.Nop()},
		&Config{Naming: string(NamingAuto), ConvertPath: DefaultConvertPath, Login: nil})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := c.Get(context.Background(), EntityProspects, "1")
	if err != nil || rec.Fields["customer_account"] != "PR000001" || !rec.UpdatedAt.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("get from the registered emulator: %+v %v", rec, err)
	}
	if !c.(connectors.EntityScopedIDs).IDsScopedByEntity() {
		t.Error("prospect and customer ids are separate sequences")
	}
	// The emulator answers in the spelling asked for (snake): the client
	// in auto naming saw it.
	if c.(*Client).seenCamel.Load() != 1 {
		t.Error("the emulator's naming option was not applied")
	}
	if _, err := typ.New(context.Background(), connectors.Settings{BaseURL: srv.URL, Logger: zerolog.Nop()},
		&Config{Naming: string(NamingCamel), ConvertPath: DefaultConvertPath, Login: &LoginConfig{Email: "admin@bluerocktel.example", Password: "password"}}); err != nil {
		t.Errorf("connector with login: %v", err)
	}

	for _, p := range []map[string]string{{"naming": "auto"}, {"spelling": "camel"}} {
		if _, err := typ.Emulator.New(connectors.EmulatorOptions{Params: p}); err == nil || !strings.Contains(err.Error(), "bluerocktel emulator") {
			t.Errorf("params %v: %v", p, err)
		}
	}
}

// The client's code names the emulator in register.go only (it builds it
// for the registry); everything else holds the client's own API facts.
// deps_test.go at the root checks that the emulator never imports this
// package.
func TestOnlyRegisterImportsTheEmulator(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	const emu = `"github.com/crmsync/crmsync/connectors/bluerocktel/emulator"`
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "register.go" {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			if imp.Path.Value == emu {
				t.Errorf("%s imports the emulator; only register.go may", f)
			}
		}
	}
}
