package config

import (
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/crmsync/crmsync/webhook"
)

// validateWebhooks checks the webhooks section and every system's
// webhook_secret.
func (v *validator) validateWebhooks() {
	w := v.c.Webhooks
	line := func(k string) int { return v.pos.line("webhooks", k) }
	v.validateListen("webhooks.listen", w.Listen, line("listen"), "0.0.0.0:8443 behind a TLS proxy")
	if w.Listen != "" && v.c.Admin.Listen != "" && samePort(w.Listen, v.c.Admin.Listen) {
		v.add(line("listen"), "webhooks.listen %q shares its port with admin.listen %q (expected a port of its own: the receiver may face the internet, the admin endpoint must not)", w.Listen, v.c.Admin.Listen)
	}
	if u, err := url.Parse(w.PublicURL); w.PublicURL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
		v.add(line("public_url"), "webhooks.public_url %q is not an http(s) URL (expected the address the vendor delivers to, e.g. https://crmsync.example.com)", w.PublicURL)
	}
	if s := w.Secret.Value(); s != "" && len(s) < MinAdminToken {
		v.add(line("secret"), "webhooks.secret is %d characters long; use at least %d (e.g. the output of `openssl rand -hex 32`)", len(s), MinAdminToken)
	}
	for _, d := range []struct {
		key string
		val time.Duration
		def time.Duration
	}{{"debounce", w.Debounce, webhook.DefaultDebounce}, {"max_skew", w.MaxSkew, webhook.DefaultMaxSkew}} {
		if d.val < 0 {
			v.add(line(d.key), "webhooks.%s %s must not be negative (expected 0s for the default %s)", d.key, d.val, d.def)
		}
	}
	for _, n := range []struct {
		key string
		neg bool
	}{{"max_body", w.MaxBody < 0}, {"queue", w.Queue < 0}, {"rate_limit", w.RateLimit < 0}, {"burst", w.Burst < 0}} {
		if n.neg {
			v.add(line(n.key), "webhooks.%s must not be negative (expected 0 for the default)", n.key)
		}
	}
	sources := 0
	for _, name := range v.names {
		s := v.c.Systems[name]
		if s.WebhookSecret == "" {
			continue
		}
		if t, ok := v.types.Lookup(s.Type); ok && t.Webhooks == nil {
			v.add(v.sysLine(name, "webhook_secret"), "systems.%s.webhook_secret: %s does not send webhooks (expected it only on a system whose vendor does; others can call POST /hooks/<flow> signed with webhooks.secret)", name, t.Title)
			continue
		}
		sources++
	}
	if w.Listen != "" && sources == 0 && w.Secret == "" {
		v.add(line("listen"), "webhooks.listen is set but no event could be verified (expected webhooks.secret for /hooks/<flow>, or webhook_secret on a system whose vendor sends webhooks)")
	}
}

// samePort reports whether two host:port addresses use one fixed port.
func samePort(a, b string) bool {
	_, pa, errA := net.SplitHostPort(a)
	_, pb, errB := net.SplitHostPort(b)
	return errA == nil && errB == nil && pa == pb && strings.TrimLeft(pa, "0") != ""
}
