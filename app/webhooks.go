package app

import (
	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/webhook"
)

// Webhooks builds the webhook receiver of the config's webhooks section, or
// nil when webhooks.listen is empty: one source per system with a
// webhook_secret whose type sends webhooks (its flows are those that read
// from it), and the generic /hooks/<flow> for every flow when
// webhooks.secret is set. observe counts requests (metrics), when set.
func (a *App) Webhooks(flows []engine.Flow, log zerolog.Logger, observe func(source, outcome string)) *webhook.Receiver {
	w := a.Cfg.Webhooks
	if w.Listen == "" {
		return nil
	}
	o := webhook.Options{HookSecret: []byte(w.Secret.Value()), MaxBody: w.MaxBody, Queue: w.Queue, RateLimit: w.RateLimit,
		Burst: w.Burst, Debounce: w.Debounce, MaxSkew: w.MaxSkew, Logger: log, Observe: observe}
	for _, f := range flows {
		o.HookFlows = append(o.HookFlows, f.Name)
	}
	for _, name := range a.Cfg.SystemNames() {
		sc := a.Cfg.Systems[name]
		t, ok := a.Cfg.Types().Lookup(sc.Type)
		if !ok || t.Webhooks == nil || sc.WebhookSecret == "" {
			continue
		}
		src := webhook.Source{Name: name, Verify: t.Webhooks.Verify, Secret: []byte(sc.WebhookSecret.Value())}
		for _, f := range flows {
			if f.Source == name {
				src.Flows = append(src.Flows, f.Name)
			}
		}
		if reg, ok := a.Systems[name].Conn.(connectors.WebhookRegistrar); ok {
			src.Known = reg.ListWebhooks
		}
		o.Sources = append(o.Sources, src)
	}
	return webhook.New(o)
}
