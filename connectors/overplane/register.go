package overplane

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
	"github.com/crmsync/crmsync/logkey"
)

// Config is the Overplane-only keys of a system (type: overplane); the API
// key is the system's token.
type Config struct {
	// LeadLink is how a prospect-lead row gets its required lead link (a
	// Lead's id): create (default) finds the Lead whose email_id is the
	// row's email and creates it when missing; find only finds it (a row
	// with an unknown e-mail is a dead letter); off sends rows as the
	// mapping writes them.
	LeadLink string `yaml:"lead_link" jsonschema:"enum=create,enum=find,enum=off"`
}

// Default fills in lead_link: create.
func (c *Config) Default() {
	if c.LeadLink == "" {
		c.LeadLink = LeadLinkCreate
	}
}

// Check requires the token (Overplane has no other credential) and a known
// lead_link.
func (c *Config) Check(s connectors.Settings) []connectors.Problem {
	var out []connectors.Problem
	if s.Token == "" {
		out = append(out, connectors.Problem{Msg: "has no credentials (expected token: the API key)"})
	}
	if !slices.Contains([]string{LeadLinkCreate, LeadLinkFind, LeadLinkOff}, c.LeadLink) {
		out = append(out, connectors.Problem{Key: "lead_link", Msg: fmt.Sprintf("%q must be create, find or off", c.LeadLink)})
	}
	return out
}

// Type is Overplane as the connector registry knows it.
func Type() connectors.Type {
	return connectors.Type{
		Name:       System,
		Title:      "Overplane",
		NewOptions: func() connectors.Options { return &Config{} },
		New: func(_ context.Context, s connectors.Settings, opts connectors.Options) (connectors.Connector, error) {
			cfg, _ := opts.(*Config)
			if cfg == nil {
				cfg = &Config{}
				cfg.Default()
			}
			// Child rows cost two requests per prospect: read them only
			// when the mapping uses them.
			children := s.UsesNative == nil || s.UsesNative("leads") || s.UsesNative("opportunities")
			return New(Options{BaseURL: s.BaseURL, Token: s.Token.Value(), HTTP: httpx.ForSystem(s, ErrorMessage),
				Logger: s.Logger.With().Str(logkey.System, s.Name).Logger(), NoChildren: !children, PageSize: s.PageSize,
				LeadLink: cfg.LeadLink})
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
