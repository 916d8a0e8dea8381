package overplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/conntest"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/overplane"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
)

// seedStart is where the emulator's seeded created_at values start; the
// ties knob seeds every prospect on it and freezes the clock there.
var seedStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// TestContract runs the contract suite under each server profile
// (emulator.Profiles): with Link fields validated as ERPNext does, and with
// any text accepted in them.
func TestContract(t *testing.T) {
	t.Parallel()
	for _, p := range emulator.Profiles() {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			h := contractHarness(p)
			if p.Name == "links-unchecked" {
				// Link validation is a write rule: its pulls equal
				// validate-links' (conntest.Harness.SameReadsAs).
				h.SameReadsAs = "validate-links"
			}
			conntest.Run(t, h)
		})
	}
}

func contractHarness(p emulator.Profile) conntest.Harness {
	return conntest.Harness{
		System:       overplane.System,
		ErrorMessage: overplane.ErrorMessage,
		Start: func(t testing.TB, o conntest.EmuOptions) *conntest.Emulator {
			eo := emulator.Options{Records: o.Records, Faults: o.Faults, PageCap: o.PageCap}
			p.Apply(&eo)
			if o.Ties {
				// Pull pages by created_at: put every prospect on one.
				eo.SeedTieGroup = o.Records
			}
			em := emulator.New(eo)
			if o.Ties {
				em.Freeze(seedStart)
			}
			return &conntest.Emulator{
				Handler: em,
				Keys: func() []string {
					ids := em.IDs()
					out := make([]string, len(ids))
					for i, id := range ids {
						out[i] = conntest.Key(overplane.EntityProspect, id)
					}
					return out
				},
				SetFaults: em.SetFaults,
				Injected:  em.Injected,
				// n creates, n updates and n deletes after every list page.
				EditDuringPaging: em.EditDuringPaging,
				// ExpireAuth: none; Overplane keys are static (no expiry, no refresh).
			}
		},
		NewClient: func(t testing.TB, baseURL string, hc *httpx.Client, cfg conntest.ClientConfig) connectors.Connector {
			// Light cases skip the child tables: two extra GETs per
			// prospect that do not take part in paging. The suite's
			// child-row edit (below) must show on the very next pull, so
			// the client reads every child table on every scan; how the
			// row cache keeps that edit within ChildMaxAge is tested in
			// childcache_test.go.
			c, err := overplane.New(overplane.Options{BaseURL: baseURL, Token: "dev-token", HTTP: hc, Logger: zerolog.Nop(), NoChildren: cfg.Light,
				ChildMaxAge: -1})
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Entity: overplane.EntityProspect,
		NewRecord: func(i int) connectors.Record {
			return connectors.Record{Entity: overplane.EntityProspect, Fields: map[string]any{
				"company_name": fmt.Sprintf("Contract Quarry %d BV", i), "company": emulator.DefaultCompany,
				"website": fmt.Sprintf("https://quarry-%d.example", i), "industry": "Manufacturing",
				"annual_revenue": 125000.0, "no_of_employees": "11-50",
				// No lead: the client links the row to the contact's Lead.
				"leads": []any{map[string]any{"lead_name": "Ada Quarry",
					"email": fmt.Sprintf("ada@quarry-%d.example", i), "status": "Open"}},
			}}
		},
		Match: func(rec connectors.Record) []connectors.Match {
			return []connectors.Match{{Field: "company_name", Value: fmt.Sprint(rec.Fields["company_name"])}}
		},
		RawGet: func(t testing.TB, api *conntest.API, entity, id string) map[string]any {
			m := api.JSON(t, http.MethodGet, "/api/crm/prospect/"+id, nil)
			m["leads"] = api.JSON(t, http.MethodGet, "/api/crm/prospect-lead?parent_id="+id, nil)["data"]
			m["opportunities"] = api.JSON(t, http.MethodGet, "/api/crm/prospect-opportunity?parent_id="+id, nil)["data"]
			return m
		},
		Volatile: []string{"updated_at"},
		Updates: []conntest.Change{
			{Field: "website", Value: "https://renamed.example"},
			{Field: "leads.0.lead_name", Value: "Ada Lovelace"},
		},
		Edits: []conntest.Edit{
			func(t testing.TB, api *conntest.API, recs []connectors.Record) (string, string, any) {
				r := recs[len(recs)/3]
				api.JSON(t, http.MethodPatch, "/api/crm/prospect/"+r.ID, map[string]any{"website": "https://edited.example"})
				return conntest.Key(r.Entity, r.ID), "website", "https://edited.example"
			},
			// A child row edit does not move the prospect's updated_at.
			func(t testing.TB, api *conntest.API, recs []connectors.Record) (string, string, any) {
				for _, r := range recs[len(recs)/2:] {
					row, ok := conntest.Lookup(r.Fields, "leads.0.id")
					if !ok {
						continue
					}
					api.JSON(t, http.MethodPatch, fmt.Sprintf("/api/crm/prospect-lead/%v", row), map[string]any{"lead_name": "Grace Edited"})
					return conntest.Key(r.Entity, r.ID), "leads.0.lead_name", "Grace Edited"
				}
				t.Fatal("no prospect with a lead row to edit")
				return "", "", nil
			},
		},
		// Convert: none; a prospect has no stage entity to move to.
	}
}

// Error bodies the testdata/ decode test does not cover. Overplane documents
// no error body; these follow the Stripe-like envelope assumed in apis.md
// §2(c) (and written by the emulator): 404 resource_missing, 401 and 429
// rate_limit with Retry-After.
const (
	recordedNotFound     = `{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such prospect: 'prospect_nope'","param":"id"}}`
	recordedUnauthorized = `{"error":{"type":"invalid_request_error","code":"api_key_invalid","message":"Invalid API key provided."}}`
	recordedRateLimited  = `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}}`
)

func TestContractRecordedBodies(t *testing.T) {
	t.Parallel()
	const key = "sk_test_recorded_key_123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Header.Get("Authorization") != "Bearer "+key:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(recordedUnauthorized))
		case r.URL.Path == "/api/crm/prospect":
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(recordedRateLimited))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(recordedNotFound))
		}
	}))
	defer srv.Close()
	newClient := func(tok string) *overplane.Client {
		c, err := overplane.New(overplane.Options{BaseURL: srv.URL, Token: tok, Logger: zerolog.Nop(), NoChildren: true,
			HTTP: httpx.New(httpx.Options{System: overplane.System, ErrorMessage: overplane.ErrorMessage, RetryMax: -1, Logger: zerolog.Nop()})})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	c := newClient(key)

	_, err := c.Get(ctx, overplane.EntityProspect, "prospect_nope")
	var ce *connectors.Error
	if !connectors.IsNotFound(err) || !errors.As(err, &ce) || !strings.Contains(ce.Message, "No such prospect: 'prospect_nope'") {
		t.Errorf("404: %v", err)
	}

	_, err = c.Pull(ctx, nil, connectors.PullOptions{})
	if !connectors.IsRetryable(err) || !errors.As(err, &ce) || ce.Status != http.StatusTooManyRequests ||
		ce.RetryAfter != 2*time.Second || !strings.Contains(ce.Message, "Too many requests") {
		t.Errorf("429: %#v", err)
	}

	_, err = newClient("sk_test_wrong_key_456").Get(ctx, overplane.EntityProspect, "prospect_nope")
	if !connectors.IsAuth(err) || !strings.Contains(err.Error(), "Invalid API key provided.") || strings.Contains(err.Error(), "sk_test_wrong_key_456") {
		t.Errorf("401: %v", err)
	}
}
