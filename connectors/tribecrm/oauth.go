package tribecrm

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
)

// tokenSource fetches and caches OAuth2 client-credentials access tokens.
// Tokens and the client secret are registered with the HTTP layer's
// redaction and never logged.
type tokenSource struct {
	http                   *httpx.Client
	url, id, secret, scope string
	now                    func() time.Time

	mu        sync.Mutex
	tok       string
	refreshAt time.Time
}

// defaultLifetime is assumed when the token reply has no expires_in (one
// third-party Tribe client does the same).
const defaultLifetime = 24 * time.Hour

// token returns a valid access token. stale is a token the API just refused
// (401): if it is still the cached one, a new token is fetched.
func (t *tokenSource) token(ctx context.Context, stale string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != "" && (stale == "" || stale != t.tok) && t.now().Before(t.refreshAt) {
		return t.tok, nil
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {t.id},
		"client_secret": {t.secret},
	}
	if t.scope != "" {
		form.Set("scope", t.scope)
	}
	start := t.now()
	resp, err := t.http.Do(ctx, httpx.Request{Method: http.MethodPost, URL: t.url, Form: form, Op: "token"})
	if err != nil {
		var ce *connectors.Error
		if errors.As(err, &ce) {
			switch {
			case ce.Kind == connectors.OutcomeUnknown:
				// Asking for a token has no side effect worth tracking.
				ce.Kind = connectors.Retryable
			case ce.Status == http.StatusBadRequest || ce.Status == http.StatusForbidden:
				ce.Kind = connectors.Auth
			}
		}
		return "", err
	}
	var tr struct {
		AccessToken string  `json:"access_token"`
		TokenType   string  `json:"token_type"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if err := resp.Decode(&tr); err != nil || tr.AccessToken == "" {
		return "", &connectors.Error{System: System, Op: "token", Kind: connectors.Auth, Status: resp.Status, Message: "token reply without access_token"}
	}
	t.http.AddSecret(tr.AccessToken)
	life := time.Duration(tr.ExpiresIn * float64(time.Second))
	if life <= 0 {
		life = defaultLifetime
	}
	// Refresh a minute before expiry, or at 90% of a short lifetime.
	margin := min(time.Minute, life/10)
	t.tok = tr.AccessToken
	t.refreshAt = start.Add(life - margin)
	return t.tok, nil
}
