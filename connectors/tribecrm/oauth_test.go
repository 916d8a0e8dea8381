package tribecrm

import (
	"bytes"
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// fakeClock is a settable clock for the emulator's token expiry.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestOAuthClientCachesRefreshesAndNeverLogs(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-client-value"
	clk := &fakeClock{t: time.Now().UTC()}
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.TraceLevel)
	e := newEnv(t, emulator.Options{Records: 120, Now: clk.Now, ClientID: "crmsync", ClientSecret: secret, TokenLifetime: 10 * time.Minute}, func(o *Options) {
		o.Token = ""
		o.ClientID, o.ClientSecret = "crmsync", secret
		o.Logger = log
		o.HTTP = httpx.New(httpx.Options{System: System, ErrorMessage: ErrorMessage, RetryWaitMin: time.Millisecond, RetryWaitMax: 10 * time.Millisecond, Logger: log})
	})
	ctx := context.Background()
	var cursor connectors.Cursor
	seen := map[string]bool{}
	for i := 0; ; i++ {
		if i == 3 {
			// The token expires in the middle of the paging run.
			clk.Add(11 * time.Minute)
		}
		p, err := e.c.Pull(ctx, cursor, connectors.PullOptions{PageSize: 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Records {
			seen[r.ID] = true
		}
		cursor = p.Next
		if p.Done {
			break
		}
	}
	if len(seen) != 120 {
		t.Fatalf("pulled %d of 120", len(seen))
	}
	var tokenReqs int
	for _, r := range e.requests() {
		if r.Path == "/oauth2/token" {
			tokenReqs++
			if !strings.Contains(string(r.Body), "grant_type=client_credentials") {
				t.Errorf("token request body: %s", r.Body)
			}
		}
	}
	if tokenReqs != 2 {
		t.Errorf("%d token requests, want 2 (one, then one after the 401)", tokenReqs)
	}
	out := logs.String()
	if !strings.Contains(out, "access token refused") {
		t.Error("the token refresh after a 401 was not logged at all")
	}
	if strings.Contains(out, secret) || strings.Contains(out, "eyJ") {
		t.Errorf("a credential reached the logs:\n%s", out)
	}
}

func TestOAuthTokenRefreshedBeforeExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{TokenLifetime: 100 * time.Second}, nil)
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	ts := &tokenSource{http: newHTTP(t), url: e.srv.URL + "/oauth2/token", id: "dev-client", secret: "dev-secret", scope: "read write", now: func() time.Time { return now }}
	ctx := context.Background()
	t1, err := ts.token(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(89 * time.Second)
	if t2, _ := ts.token(ctx, ""); t2 != t1 {
		t.Fatal("token refreshed too early")
	}
	now = now.Add(2 * time.Second) // 91 s: inside the last 10% of a 100 s lifetime
	t3, err := ts.token(ctx, "")
	if err != nil || t3 == t1 {
		t.Fatalf("token not refreshed before expiry: %v", err)
	}
	// A 401 on a token other than the cached one does not refetch.
	if t4, _ := ts.token(ctx, t1); t4 != t3 {
		t.Error("refused old token caused a refetch")
	}
	if t5, _ := ts.token(ctx, t3); t5 == t3 {
		t.Error("refused current token was not replaced")
	}
}

func TestOAuthWrongSecretIsAuthError(t *testing.T) {
	t.Parallel()
	const secret = "definitely-wrong-secret"
	e := newEnv(t, emulator.Options{Records: 5}, func(o *Options) {
		o.Token = ""
		o.ClientID, o.ClientSecret = "dev-client", secret
	})
	_, err := e.c.Pull(context.Background(), nil, connectors.PullOptions{})
	if !connectors.IsAuth(err) {
		t.Fatalf("want Auth, got %v", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("secret in error: %v", err)
	}
	if !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("error lacks the OAuth error code: %v", err)
	}
}

func TestDefaultTokenURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://api.tribecrm.nl":          "https://auth.tribecrm.nl/oauth2/token",
		"https://api-staging.tribecrm.nl/": "https://auth-staging.tribecrm.nl/oauth2/token",
		"http://127.0.0.1:8081":            "http://127.0.0.1:8081/oauth2/token",
		"http://apiary.example/tribe":      "http://apiary.example/tribe/oauth2/token",
	} {
		u, _ := url.Parse(strings.TrimRight(in, "/"))
		if got := defaultTokenURL(u); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// Find follows @odata.nextLink under a server page cap, and an ID match
// ignores the GUID's case (a pull under a page cap is the contract suite's
// Paging/pageCap).
func TestFindFollowsNextLinkUnderPageCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 40, PageCap: 4}, nil)
	ctx := context.Background()
	id := e.em.IDs(orgLead)[0]
	row, _, _ := e.em.Entity(id)
	orgID := field(row, "Organization.ID").(string)
	for i := 0; i < 13; i++ {
		set := orgLead
		if i%2 == 0 {
			set = orgCustomer
		}
		if _, err := e.c.Create(ctx, connectors.Record{Entity: set, Fields: map[string]any{"Organization": map[string]any{"ID": orgID}}}); err != nil {
			t.Fatal(err)
		}
	}
	found, err := e.c.Find(ctx, orgLead, []connectors.Match{{Field: "Organization.ID", Value: strings.ToUpper(orgID)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 14 {
		t.Fatalf("Find across a page cap found %d, want 14", len(found))
	}
}

func TestPersonEditReachesPull(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 100}, nil)
	ctx := context.Background()
	first := pullPass(t, e.c, nil, connectors.PullOptions{})
	id := e.em.IDs(personLead)[0]
	before, _, _ := e.em.Entity(id)
	if _, err := e.c.Update(ctx, personLead, id, map[string]any{"Person": map[string]any{"LastName": "Nieuwenhuis", "MiddleName": nil}}); err != nil {
		t.Fatal(err)
	}
	after, _, _ := e.em.Entity(id)
	if after["LastMutationDate"] != before["LastMutationDate"] {
		t.Error("a person edit bumped the relationship's LastMutationDate")
	}
	if field(after, "Person.LastName") != "Nieuwenhuis" || field(after, "Person.MiddleName") != nil || field(after, "Person.FirstName") != field(before, "Person.FirstName") {
		t.Fatalf("person after update: %v", after["Person"])
	}
	next := pullPass(t, e.c, first.next, connectors.PullOptions{})
	r, ok := next.latest[id]
	if !ok || field(r.Fields, "Person.LastName") != "Nieuwenhuis" || r.Entity != personLead {
		t.Fatalf("person edit did not reach Pull: %+v", r)
	}
	// Relation_Person list and get work through the API.
	pid := field(after, "Person.ID").(string)
	st, body := e.raw(t, "GET", "/v1/odata/"+SetPerson+"?$filter=LastName%20eq%20'Nieuwenhuis'&$select=ID,LastMutationDate", nil)
	if st != 200 || len(body["value"].([]any)) != 1 {
		t.Fatalf("list persons: %d %v", st, body)
	}
	if st, body := e.raw(t, "GET", "/v1/odata/"+SetPerson+"("+pid+")", nil); st != 200 || body["_Name"] != field(after, "Person.FirstName").(string)+" Nieuwenhuis" {
		t.Fatalf("get person: %d %v", st, body)
	}
}
