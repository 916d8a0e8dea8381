package bluerocktel

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/logkey"
)

// Config is the BlueRockTel-only keys of a system (type: bluerocktel).
type Config struct {
	// Login, when set, logs in with POST /api/login instead of using the
	// static token.
	Login *LoginConfig `yaml:"login"`
	// Naming is the spelling of written field names: camel (default, the
	// vendor's PHP SDK), snake (the API docs) or auto.
	Naming string `yaml:"naming"`
	// ConvertPath is the prospect -> customer conversion route, with {id}
	// (default DefaultConvertPath, a guess: no public material documents one).
	ConvertPath string `yaml:"convert_path"`
	// Conversion is whether the server converts prospects: auto (default:
	// try convert_path; a server without the route makes conversion
	// unsupported, reported once per run, the records staying prospects),
	// on (a missing route is a failed write per record) or off (never try).
	Conversion string `yaml:"conversion"`
}

// LoginConfig holds BlueRockTel login credentials.
type LoginConfig struct {
	Email    string            `yaml:"email"`
	Password connectors.Secret `yaml:"password"`
}

// Default fills in naming camel and the conversion route.
func (c *Config) Default() {
	if c.Naming == "" {
		// camelCase, as the vendor's PHP SDK writes (bluerocktel/php-sdk
		// Create/UpdateProspectRequest send the Prospect entity's
		// camelCase properties). A Laravel server drops keys in a
		// spelling it does not validate and still answers 201, so the
		// default follows the vendor's own client (docs/apis.md §3).
		c.Naming = string(NamingCamel)
	}
	if c.ConvertPath == "" {
		c.ConvertPath = DefaultConvertPath
	}
	if c.Conversion == "" {
		// auto: the route is undocumented (docs/apis.md §3 "Conversion"),
		// so neither "it exists" nor "it does not" is the safe guess.
		c.Conversion = string(ConversionAuto)
	}
}

// Check validates the keys; s gives the static token.
func (c *Config) Check(s connectors.Settings) []connectors.Problem {
	var out []connectors.Problem
	if s.Token == "" && c.Login == nil {
		out = append(out, connectors.Problem{Msg: "has no credentials (expected token, or login with email and password)"})
	}
	if c.Login != nil && (c.Login.Email == "" || c.Login.Password == "") {
		out = append(out, connectors.Problem{Key: "login", Msg: "needs email and password"})
	}
	switch Naming(c.Naming) {
	case NamingSnake, NamingCamel, NamingAuto:
	default:
		out = append(out, connectors.Problem{Key: "naming", Msg: fmt.Sprintf("%q is not snake, camel or auto", c.Naming)})
	}
	switch Conversion(c.Conversion) {
	case "", ConversionAuto, ConversionOn, ConversionOff:
	default:
		out = append(out, connectors.Problem{Key: "conversion", Msg: fmt.Sprintf("%q is not auto, on or off", c.Conversion)})
	}
	if !strings.Contains(c.ConvertPath, "{id}") {
		out = append(out, connectors.Problem{Key: "convert_path", Msg: fmt.Sprintf("%q has no {id} (expected e.g. %s)", c.ConvertPath, DefaultConvertPath)})
	}
	return out
}

// Type is BlueRockTel as the connector registry knows it.
func Type() connectors.Type {
	return connectors.Type{
		Name:       System,
		Title:      "BlueRockTel",
		NewOptions: func() connectors.Options { return &Config{} },
		New: func(_ context.Context, s connectors.Settings, o connectors.Options) (connectors.Connector, error) {
			c := o.(*Config)
			hc := httpx.ForSystem(s, ErrorMessage)
			opts := Options{BaseURL: s.BaseURL, Token: s.Token.Value(), HTTP: hc,
				Logger:   s.Logger.With().Str(logkey.System, s.Name).Logger(),
				PageSize: s.PageSize, Overlap: s.Overlap, Naming: Naming(c.Naming), ConvertPath: c.ConvertPath,
				Conversion: Conversion(c.Conversion)}
			if c.Login != nil {
				hc.AddSecret(c.Login.Password.Value())
				opts.Email, opts.Password = c.Login.Email, c.Login.Password.Value()
			}
			return New(opts)
		},
		Emulator: connectors.EmulatorType{
			Addr: "127.0.0.1:8083",
			Params: map[string]string{
				"naming":  "field spelling answered and accepted on writes: camel (default, as the vendor's SDK) or snake (the docs)",
				"convert": "route: serve POST " + DefaultConvertPath + " (default; undocumented), none: no conversion route",
			},
			New: func(o connectors.EmulatorOptions) (http.Handler, error) {
				eo := emulator.Options{Token: o.Token, Records: o.Records, Faults: o.Faults, PageCap: o.PageCap, SeedTimestamp: o.Ties}
				for k, v := range o.Params {
					switch {
					case k == "naming" && (v == string(emulator.Camel) || v == string(emulator.Snake)):
						eo.Naming = emulator.Naming(v)
					case k == "naming":
						return nil, fmt.Errorf("bluerocktel emulator: naming %q is not camel or snake", v)
					case k == "convert" && (v == "route" || v == "none"):
						eo.NoConvert = v == "none"
					case k == "convert":
						return nil, fmt.Errorf("bluerocktel emulator: convert %q is not route or none", v)
					default:
						return nil, fmt.Errorf("bluerocktel emulator: unknown option %q (known: naming, convert)", k)
					}
				}
				em := emulator.New(eo)
				o.Apply(em)
				return em, nil
			},
		},
	}
}
