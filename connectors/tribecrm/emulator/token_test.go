package emulator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestEmulatorTokenEndpoint(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	e := newEnv(t, Options{Records: 10, Now: clk.Now, ClientID: "cid", ClientSecret: "csecret", TokenLifetime: 5 * time.Minute})
	tokenURL := e.srv.URL + "/oauth2/token"
	st, body := postForm(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "scope": {"read write offline"}})
	if st != 200 || body["token_type"] != "bearer" || body["expires_in"] != float64(300) || body["scope"] != "read write offline" {
		t.Fatalf("token: %d %v", st, body)
	}
	tok, _ := body["access_token"].(string)
	if !strings.HasPrefix(tok, "eyJ") {
		t.Errorf("token does not look like a JWT: %q", tok)
	}
	st, body = postForm(t, tokenURL, url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"nope"}})
	if st != 401 || body["error"] != "invalid_client" || body["error_description"] == nil {
		t.Errorf("bad secret: %d %v", st, body)
	}
	st, body = postForm(t, tokenURL, url.Values{"grant_type": {"password"}, "client_id": {"cid"}, "client_secret": {"csecret"}})
	if st != 400 || body["error"] != "unsupported_grant_type" {
		t.Errorf("bad grant: %d %v", st, body)
	}
	get := func() int {
		req, _ := http.NewRequest("GET", e.srv.URL+"/v1/odata/"+orgLead+"?$top=1", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get(); st != 200 {
		t.Fatalf("issued token refused: %d", st)
	}
	clk.Add(5 * time.Minute)
	if st := get(); st != 401 {
		t.Fatalf("expired token: %d", st)
	}
}
