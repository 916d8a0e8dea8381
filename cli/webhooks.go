package cli

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
)

// hookSystem is one configured system whose vendor crmsync registers
// webhooks with.
type hookSystem struct {
	name string
	reg  connectors.WebhookRegistrar
	sc   *config.System
}

// webhookSystems lists the configured systems whose type manages webhooks.
func (g *globals) webhookSystems(cfg *config.Config) ([]hookSystem, error) {
	systems, err := app.BuildSystems(cfg, g.logger(cfg), nil)
	if err != nil {
		return nil, err
	}
	var out []hookSystem
	for _, name := range cfg.SystemNames() {
		if reg, ok := systems[name].Conn.(connectors.WebhookRegistrar); ok {
			out = append(out, hookSystem{name: name, reg: reg, sc: cfg.Systems[name]})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no configured system sends webhooks (types that do: %s)", strings.Join(webhookTypes(cfg), ", "))
	}
	return out, nil
}

func webhookTypes(cfg *config.Config) []string {
	var out []string
	for _, n := range cfg.Types().Names() {
		if t, _ := cfg.Types().Lookup(n); t.Webhooks != nil {
			out = append(out, n)
		}
	}
	return out
}

// hookURL is where the vendor of system delivers.
func hookURL(cfg *config.Config, system string) string {
	return strings.TrimSuffix(cfg.Webhooks.PublicURL, "/") + "/webhooks/" + system
}

func newWebhooksCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "webhooks",
		Short: "Register, list or delete the vendors' webhooks that announce changes to crmsync run",
		Long: `Manage the webhooks of every configured system whose vendor sends them
(TribeCRM): register binds one per entity type the flows read, delivering to
webhooks.public_url + /webhooks/<system> and signed with the system's
webhook_secret; list shows what the token can see; delete removes them.
Secrets are never printed, except one the server chose at registration,
shown once so that you can put it in webhook_secret.`,
	}
	c.AddCommand(newWebhooksRegisterCmd(g), newWebhooksListCmd(g), newWebhooksDeleteCmd(g))
	return c
}

func newWebhooksRegisterCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "register",
		Short: "Register the webhooks crmsync needs (those already there are kept)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if cfg.Webhooks.PublicURL == "" {
				return fmt.Errorf("%s: webhooks.public_url is not set (expected the address the vendor delivers to, e.g. https://crmsync.example.com)", cfg.File)
			}
			systems, err := g.webhookSystems(cfg)
			if err != nil {
				return err
			}
			type row struct {
				System string `json:"system"`
				ID     string `json:"id"`
				Topic  string `json:"topic"`
				URL    string `json:"url"`
				Status string `json:"status"` // registered, kept
				Secret string `json:"secret,omitempty"`
			}
			var rows []row
			for _, s := range systems {
				have, err := s.reg.ListWebhooks(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: listing webhooks: %w", s.name, err)
				}
				url := hookURL(cfg, s.name)
				for _, topic := range s.reg.WebhookTopics() {
					if h, ok := findHook(have, url, topic); ok {
						rows = append(rows, row{s.name, h.ID, topic, url, "kept", ""})
						continue
					}
					h, err := s.reg.RegisterWebhook(cmd.Context(), url, topic, s.sc.WebhookSecret.Value())
					if err != nil {
						return fmt.Errorf("%s: registering %s: %w", s.name, topic, err)
					}
					rows = append(rows, row{s.name, h.ID, topic, url, "registered", h.Secret})
				}
			}
			if g.jsonOut {
				return writeJSON(g.env.Stdout, rows)
			}
			tw := tabwriter.NewWriter(g.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SYSTEM\tWEBHOOK\tTOPIC\tURL\tSTATUS")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.System, r.ID, r.Topic, r.URL, r.Status)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, r := range rows {
				if r.Secret != "" {
					fmt.Fprintf(g.env.Stdout, "\n%s chose the secret of webhook %s (shown once): set systems.%s.webhook_secret to it, e.g. through an environment variable:\n  %s\n", r.System, r.ID, r.System, r.Secret)
				}
			}
			return nil
		},
	}
	g.addConfigFlags(c, false)
	c.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return c
}

func findHook(have []connectors.Webhook, url, topic string) (connectors.Webhook, bool) {
	for _, h := range have {
		if h.URL == url && h.Topic == topic {
			return h, true
		}
	}
	return connectors.Webhook{}, false
}

func newWebhooksListCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List the webhooks of every system that sends them (ours are marked)",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			systems, err := g.webhookSystems(cfg)
			if err != nil {
				return err
			}
			type row struct {
				System string `json:"system"`
				connectors.Webhook
				Ours bool `json:"ours"`
			}
			var rows []row
			for _, s := range systems {
				have, err := s.reg.ListWebhooks(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: listing webhooks: %w", s.name, err)
				}
				sort.Slice(have, func(i, j int) bool { return have[i].ID < have[j].ID })
				for _, h := range have {
					rows = append(rows, row{s.name, h, cfg.Webhooks.PublicURL != "" && h.URL == hookURL(cfg, s.name)})
				}
			}
			if g.jsonOut {
				return writeJSON(g.env.Stdout, rows)
			}
			tw := tabwriter.NewWriter(g.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SYSTEM\tWEBHOOK\tTOPIC\tURL\tOURS")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", r.System, r.ID, r.Topic, r.URL, r.Ours)
			}
			return tw.Flush()
		},
	}
	g.addConfigFlags(c, false)
	c.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return c
}

func newWebhooksDeleteCmd(g *globals) *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "delete [ID...]",
		Short: "Delete webhooks by id, or --all of ours (those delivering to webhooks.public_url)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return fmt.Errorf("give webhook ids, or --all (not both)")
			}
			cfg, err := g.loadConfig()
			if err != nil {
				return err
			}
			if all && cfg.Webhooks.PublicURL == "" {
				return fmt.Errorf("%s: --all deletes the webhooks delivering to webhooks.public_url, which is not set", cfg.File)
			}
			systems, err := g.webhookSystems(cfg)
			if err != nil {
				return err
			}
			want := map[string]bool{}
			for _, id := range args {
				want[id] = true
			}
			deleted := 0
			gone := []map[string]string{}
			for _, s := range systems {
				have, err := s.reg.ListWebhooks(cmd.Context())
				if err != nil {
					return fmt.Errorf("%s: listing webhooks: %w", s.name, err)
				}
				for _, h := range have {
					if !want[h.ID] && !(all && h.URL == hookURL(cfg, s.name)) {
						continue
					}
					if err := s.reg.DeleteWebhook(cmd.Context(), h.ID); err != nil {
						return fmt.Errorf("%s: deleting webhook %s: %w", s.name, h.ID, err)
					}
					delete(want, h.ID)
					deleted++
					gone = append(gone, map[string]string{"system": s.name, "id": h.ID, "topic": h.Topic})
					if !g.jsonOut {
						fmt.Fprintf(g.env.Stdout, "deleted %s webhook %s (%s)\n", s.name, h.ID, h.Topic)
					}
				}
			}
			if g.jsonOut {
				if err := writeJSON(g.env.Stdout, map[string]any{"deleted": gone}); err != nil {
					return err
				}
			}
			if len(want) > 0 {
				var ids []string
				for id := range want {
					ids = append(ids, id)
				}
				sort.Strings(ids)
				return fmt.Errorf("no webhook %s in any configured system (deleted %d)", strings.Join(ids, ", "), deleted)
			}
			return nil
		},
	}
	g.addConfigFlags(c, false)
	c.Flags().BoolVar(&all, "all", false, "delete every webhook delivering to webhooks.public_url")
	c.Flags().BoolVar(&g.jsonOut, "json", false, "print JSON")
	return c
}
