package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/tribecrm"
)

// emulateCmd is a running `crmsync emulate` (in-process).
type emulateCmd struct {
	urls map[string]string
	stop func() cliResult
}

var urlLine = regexp.MustCompile(`(?m)^(tribecrm|overplane|bluerocktel)\s+(http://\S+)$`)

// startEmulate runs `crmsync emulate` with free ports and waits until it
// prints the three URLs.
func startEmulate(t *testing.T, args ...string) *emulateCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	args = append([]string{"emulate", "--tribecrm-addr", "127.0.0.1:0", "--overplane-addr", "127.0.0.1:0", "--bluerocktel-addr", "127.0.0.1:0"}, args...)
	go func() { done <- runCLIWith(ctx, &out, &errb, args...) }()
	stopped := false
	var res cliResult
	stop := func() cliResult {
		if !stopped {
			stopped = true
			cancel()
			select {
			case code := <-done:
				res = cliResult{Code: code, Stdout: out.String(), Stderr: errb.String()}
			case <-time.After(30 * time.Second):
				t.Fatalf("emulate did not stop after its context ended")
			}
		}
		return res
	}
	t.Cleanup(func() { stop() })
	urls := map[string]string{}
	waitFor(t, 30*time.Second, "emulate to print its URLs", func() bool {
		select {
		case code := <-done:
			t.Fatalf("emulate exited early with %d: %s %s", code, out.String(), errb.String())
		default:
		}
		for _, m := range urlLine.FindAllStringSubmatch(out.String(), -1) {
			urls[m[1]] = m[2]
		}
		// --json: one line {"urls": {...}}.
		for _, l := range strings.Split(out.String(), "\n") {
			var doc struct {
				URLs map[string]string `json:"urls"`
			}
			if json.Unmarshal([]byte(l), &doc) == nil {
				maps.Copy(urls, doc.URLs)
			}
		}
		return len(urls) == 3
	})
	return &emulateCmd{urls: urls, stop: stop}
}

// TestEmulateSameSeedSameRecords: two `crmsync emulate --seed N` serve the
// same records through every API; another seed serves other records.
func TestEmulateSameSeedSameRecords(t *testing.T) {
	t.Parallel()
	a := startEmulate(t, "--seed", "15")
	b := startEmulate(t, "--seed", "15")
	c := startEmulate(t, "--seed", "16", "--json")
	paths := map[string][]string{
		"overplane":   {"/api/crm/prospect?limit=100"},
		"bluerocktel": {"/api/v1/prospects?per_page=100", "/api/v1/customers?per_page=100"},
	}
	for _, set := range tribecrm.FunnelSets() {
		flavour, _, _ := tribecrm.ParseFunnelSet(set)
		paths[tribecrm.System] = append(paths[tribecrm.System], "/v1/odata/"+set+"?$top=1000&$orderby=ID%20asc&$expand="+flavour+"&$count=true")
	}
	get := func(em *emulateCmd, system, path string) string {
		st, body := doHTTP(t, http.MethodGet, em.urls[system]+path, "dev-token", nil)
		if st != http.StatusOK {
			t.Fatalf("GET %s%s: %d %s", system, path, st, body)
		}
		// Answers may name the server (OData context, paging links).
		s := strings.ReplaceAll(string(body), em.urls[system], "BASE")
		return strings.ReplaceAll(s, strings.ReplaceAll(em.urls[system], "/", `\/`), "BASE")
	}
	differs := 0
	for system, ps := range paths {
		for _, p := range ps {
			ga, gb, gc := get(a, system, p), get(b, system, p), get(c, system, p)
			if ga != gb {
				t.Errorf("%s %s differs between two emulators with --seed 15:\n%.400s\n%.400s", system, p, ga, gb)
			}
			if ga != gc {
				differs++
			}
		}
	}
	if differs == 0 {
		t.Errorf("--seed 15 and --seed 16 serve the same records everywhere")
	}
	for _, em := range []*emulateCmd{a, b, c} {
		if res := em.stop(); res.Code != 0 {
			t.Errorf("emulate did not stop cleanly: %s", res)
		}
	}
}

// TestEmulatorsRequireBearerToken: each emulator answers 401 without the
// bearer token, and with a wrong one.
func TestEmulatorsRequireBearerToken(t *testing.T) {
	t.Parallel()
	em := startEmulate(t, "--seed", "3", "--token", "e2e-token")
	for system, p := range map[string]string{
		tribecrm.System: "/v1/odata/Relationship_Organization_CommercialRelationship_Lead?$top=1",
		"overplane":     "/api/crm/prospect?limit=1",
		"bluerocktel":   "/api/v1/prospects?per_page=1",
	} {
		for _, tok := range []string{"", "dev-token"} {
			if st, body := doHTTP(t, http.MethodGet, em.urls[system]+p, tok, nil); st != http.StatusUnauthorized {
				t.Errorf("%s without the right token (%q): %d %s, want 401", system, tok, st, body)
			}
		}
		if st, body := doHTTP(t, http.MethodGet, em.urls[system]+p, "e2e-token", nil); st != http.StatusOK {
			t.Errorf("%s with the token: %d %s, want 200", system, st, body)
		}
	}
}
