package overplane

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

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
	// ChildMaxAge is how long a prospect's child rows (leads,
	// opportunities), once read, are returned again without a request
	// while the prospect's updated_at stays the same (0: 1h). A child-row
	// edit that does not move the prospect's updated_at shows within it.
	// Negative turns the cache off: every scan reads every prospect's
	// child tables (two requests per prospect).
	ChildMaxAge time.Duration `yaml:"child_max_age"`
}

// Default fills in lead_link: create and child_max_age: 1h.
func (c *Config) Default() {
	if c.LeadLink == "" {
		c.LeadLink = LeadLinkCreate
	}
	if c.ChildMaxAge == 0 {
		c.ChildMaxAge = DefaultChildMaxAge
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
			// Child rows cost two requests per prospect whose rows are
			// not cached: read them only when the mapping uses them.
			children := s.UsesNative == nil || s.UsesNative("leads") || s.UsesNative("opportunities")
			return New(Options{BaseURL: s.BaseURL, Token: s.Token.Value(), HTTP: httpx.ForSystem(s, ErrorMessage),
				Logger: s.Logger.With().Str(logkey.System, s.Name).Logger(), NoChildren: !children, PageSize: s.PageSize,
				LeadLink: cfg.LeadLink, ChildMaxAge: cfg.ChildMaxAge})
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
