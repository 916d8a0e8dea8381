package overplane

import (
	"context"
	"net/http"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
	"github.com/crmsync/crmsync/logkey"
)

// Config is the Overplane-only keys of a system (type: overplane): none
// yet; the API key is the system's token.
type Config struct{}

// Default does nothing: Overplane has no keys of its own.
func (c *Config) Default() {}

// Check requires the token (Overplane has no other credential).
func (c *Config) Check(s connectors.Settings) []connectors.Problem {
	if s.Token == "" {
		return []connectors.Problem{{Msg: "has no credentials (expected token: the API key)"}}
	}
	return nil
}

// Type is Overplane as the connector registry knows it.
func Type() connectors.Type {
	return connectors.Type{
		Name:       System,
		Title:      "Overplane",
		NewOptions: func() connectors.Options { return &Config{} },
		New: func(_ context.Context, s connectors.Settings, _ connectors.Options) (connectors.Connector, error) {
			// Child rows cost two requests per prospect: read them only
			// when the mapping uses them.
			children := s.UsesNative == nil || s.UsesNative("leads") || s.UsesNative("opportunities")
			return New(Options{BaseURL: s.BaseURL, Token: s.Token.Value(), HTTP: httpx.ForSystem(s, ErrorMessage),
				Logger: s.Logger.With().Str(logkey.System, s.Name).Logger(), NoChildren: !children, PageSize: s.PageSize})
		},
		Emulator: connectors.EmulatorType{
			Addr: "127.0.0.1:8082",
			New: func(o connectors.EmulatorOptions) (http.Handler, error) {
				eo := emulator.Options{Token: o.Token, Records: o.Records, Faults: o.Faults, PageCap: o.PageCap}
				if !o.Ties.IsZero() {
					eo.SeedTieGroup = max(o.Records, 1)
				}
				em := emulator.New(eo)
				o.Apply(em)
				return em, nil
			},
		},
	}
}
