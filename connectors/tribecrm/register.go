package tribecrm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/tribecrm/api"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
	"github.com/crmsync/crmsync/logkey"
)

// Config is the TribeCRM-only keys of a system (type: tribecrm).
type Config struct {
	// OAuth, when set, gets tokens with the client-credentials flow instead
	// of using the static token.
	OAuth *OAuthConfig `yaml:"oauth"`
	// UpgradeField is how a stage conversion is asked for: _UpgradeType
	// (default, the vendor's own n8n node) or _Type.
	UpgradeField string `yaml:"upgrade_field"`
	// Stages are the funnel stages read (default all five).
	Stages []string `yaml:"stages"`
	// UpdateMethod is post (default, the vendor's own clients: POST Set with
	// ID), patch, or put (GET, then PUT of the whole entity).
	UpdateMethod string `yaml:"update_method"`
	// WatchRelations (default true) makes each pull also read the changes
	// of Relation_Organization, Relation_Person and Address, because an edit
	// of a company, person or address does not move its relationship's
	// LastMutationDate.
	// Set false for an application that may not read those sets (403):
	// such edits then arrive with the next change of the relationship.
	WatchRelations *bool `yaml:"watch_relations"`
	// RelationMatch lists the properties by which a create looks for an
	// organisation or person that exists in Tribe already, to link it
	// instead of creating a second one (default: organization
	// [ChamberOfCommerceNumber, EmailAddress, Name], person [EmailAddress];
	// an empty list turns the lookup off for that kind).
	RelationMatch *RelationMatchConfig `yaml:"relation_match"`
	// CreateStatus is the Code of the Datastore row bound as the Status of
	// a relationship crmsync creates (default none: the server's default).
	CreateStatus string `yaml:"create_status"`
}

// RelationMatchConfig is relation_match: properties per kind, in order.
type RelationMatchConfig struct {
	Organization []string `yaml:"organization"`
	Person       []string `yaml:"person"`
}

// options returns relation_match as Options.RelationMatch: a kind left out
// keeps its default.
func (r *RelationMatchConfig) options() map[string][]string {
	out := DefaultRelationMatch()
	if r == nil {
		return out
	}
	if r.Organization != nil {
		out[FlavourOrganization] = r.Organization
	}
	if r.Person != nil {
		out[FlavourPerson] = r.Person
	}
	return out
}

// OAuthConfig holds OAuth2 client credentials.
type OAuthConfig struct {
	TokenURL     string            `yaml:"token_url"`
	ClientID     string            `yaml:"client_id"`
	ClientSecret connectors.Secret `yaml:"client_secret"`
	Scope        string            `yaml:"scope"`
}

// Default fills in the defaults: update_method post, upgrade_field
// _UpgradeType.
func (c *Config) Default() {
	if c.UpdateMethod == "" {
		c.UpdateMethod = UpdatePost
	}
	if c.UpgradeField == "" {
		c.UpgradeField = DefaultUpgradeField
	}
	if c.WatchRelations == nil {
		watch := true
		c.WatchRelations = &watch
	}
}

// Check validates the keys; s gives the static token.
func (c *Config) Check(s connectors.Settings) []connectors.Problem {
	var out []connectors.Problem
	if s.Token == "" && c.OAuth == nil {
		out = append(out, connectors.Problem{Msg: "has no credentials (expected token, or oauth with client_id and client_secret)"})
	}
	if c.OAuth != nil && (c.OAuth.ClientID == "" || c.OAuth.ClientSecret == "") {
		out = append(out, connectors.Problem{Key: "oauth", Msg: "needs client_id and client_secret"})
	}
	if c.UpgradeField != "_Type" && c.UpgradeField != "_UpgradeType" {
		out = append(out, connectors.Problem{Key: "upgrade_field", Msg: fmt.Sprintf("%q must be _Type or _UpgradeType", c.UpgradeField)})
	}
	for k, st := range c.Stages {
		if !slices.Contains(funnelStages, st) {
			out = append(out, connectors.Problem{Key: "stages." + strconv.Itoa(k), Msg: fmt.Sprintf("%q is not a TribeCRM funnel stage (expected %s)", st, strings.Join(funnelStages, ", "))})
		}
	}
	if !slices.Contains([]string{UpdatePost, UpdatePatch, UpdatePut}, c.UpdateMethod) {
		out = append(out, connectors.Problem{Key: "update_method", Msg: fmt.Sprintf("%q must be post, patch or put", c.UpdateMethod)})
	}
	if c.RelationMatch != nil {
		for i, keys := range [][]string{c.RelationMatch.Organization, c.RelationMatch.Person} {
			kind := [...]string{"organization", "person"}[i]
			for k, p := range keys {
				if !validPath(p) || strings.Contains(p, "/") {
					out = append(out, connectors.Problem{Key: "relation_match." + kind + "." + strconv.Itoa(k), Msg: fmt.Sprintf("%q is not a property name", p)})
				}
			}
		}
	}
	return out
}

// Type is TribeCRM as the connector registry knows it.
func Type() connectors.Type {
	return connectors.Type{
		Name:       System,
		Title:      "TribeCRM",
		NewOptions: func() connectors.Options { return &Config{} },
		New: func(_ context.Context, s connectors.Settings, o connectors.Options) (connectors.Connector, error) {
			c := o.(*Config)
			hc := httpx.ForSystem(s, ErrorMessage)
			opts := Options{BaseURL: s.BaseURL, Token: s.Token.Value(), HTTP: hc,
				Logger:   s.Logger.With().Str(logkey.System, s.Name).Logger(),
				PageSize: s.PageSize, Overlap: s.Overlap,
				UpgradeField: c.UpgradeField, Stages: c.Stages, UpdateMethod: c.UpdateMethod,
				SkipRelations: c.WatchRelations != nil && !*c.WatchRelations,
				RelationMatch: c.RelationMatch.options(), CreateStatus: c.CreateStatus}
			if c.OAuth != nil {
				opts.ClientID, opts.ClientSecret = c.OAuth.ClientID, c.OAuth.ClientSecret.Value()
				opts.TokenURL, opts.Scope = c.OAuth.TokenURL, c.OAuth.Scope
			}
			return New(opts)
		},
		Emulator: connectors.EmulatorType{
			Addr:   "127.0.0.1:8081",
			Params: emulatorParams,
			New: func(o connectors.EmulatorOptions) (http.Handler, error) {
				wo, err := webhookKnobs(o.Params)
				if err != nil {
					return nil, err
				}
				em := emulator.New(emulator.Options{Token: o.Token, Records: o.Records, Faults: o.Faults, PageCap: o.PageCap, Webhooks: wo})
				o.Apply(em)
				return em, nil
			},
		},
		Webhooks: &connectors.Webhooks{Verify: VerifyWebhook},
	}
}

// emulatorParams are the emulator's knobs for `crmsync emulate
// --emulator-option tribecrm.KEY=VALUE`: its webhook deliveries.
var emulatorParams = map[string]string{
	"webhook_loss":      "fraction of webhook deliveries never sent, 0..1 (default 0)",
	"webhook_duplicate": "fraction of webhook deliveries sent twice, 0..1 (default 0)",
	"webhook_delay":     "least time from a change to its delivery, e.g. 200ms (default 0)",
	"webhook_jitter":    "random extra delay in [0, jitter), e.g. 100ms (default 0)",
	"webhook_reorder":   "shuffle deliveries within windows of this many (default 0: in order)",
	"webhook_seed":      "seed of the knobs' choices (default 0)",
	"webhook_signature": "hex (default: Base64 of the hex HMAC text) or raw (Base64 of the MAC bytes)",
}

// webhookKnobs reads emulatorParams; an unknown key or a bad value is an
// error.
func webhookKnobs(params map[string]string) (emulator.WebhookOptions, error) {
	var o emulator.WebhookOptions
	for k, v := range params {
		var err error
		switch k {
		case "webhook_loss":
			o.Loss, err = fraction(v)
		case "webhook_duplicate":
			o.Duplicate, err = fraction(v)
		case "webhook_delay":
			o.Delay, err = nonNegative(v)
		case "webhook_jitter":
			o.Jitter, err = nonNegative(v)
		case "webhook_reorder":
			o.Reorder, err = strconv.Atoi(v)
			if err == nil && o.Reorder < 0 {
				err = errors.New("must not be negative")
			}
		case "webhook_seed":
			o.Seed, err = strconv.ParseUint(v, 10, 64)
		case "webhook_signature":
			switch v {
			case "hex":
				o.Sign = api.Sign
			case "raw":
				o.Sign = api.SignRaw
			default:
				err = errors.New("must be hex or raw")
			}
		default:
			return o, fmt.Errorf("tribecrm emulator: unknown option %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(emulatorParams)), ", "))
		}
		if err != nil {
			return o, fmt.Errorf("tribecrm emulator: %s %q: %v", k, v, err)
		}
	}
	return o, nil
}

func fraction(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err == nil && (f < 0 || f > 1) {
		err = errors.New("must be between 0 and 1")
	}
	return f, err
}

func nonNegative(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = errors.New("must not be negative")
	}
	return d, err
}
