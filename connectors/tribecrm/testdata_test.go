package tribecrm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
)

// TestDecodeVendorShapedBodies serves the bodies in testdata/ (shaped as
// Tribe documents them, not as the emulator writes them) and checks that the
// client decodes them.
func TestDecodeVendorShapedBodies(t *testing.T) {
	t.Parallel()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var (
		mu      sync.Mutex
		queries []string
		auths   []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Path+"?"+r.URL.RawQuery)
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/oauth2/token":
			_, _ = w.Write(read("token.json"))
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write(read("error_validation.json"))
		case r.URL.Path == "/v1/odata/"+orgLead && !strings.Contains(r.URL.RawQuery, "%20gt%20"):
			_, _ = w.Write(read("list_organization_leads.json"))
		case strings.HasPrefix(r.URL.Path, "/v1/odata/Relationship_Person_CommercialRelationship_HotProspect("):
			_, _ = w.Write(read("get_person_hotprospect.json"))
		default:
			_, _ = w.Write([]byte(`{"@odata.context":"x","value":[]}`))
		}
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, ClientID: "recorded-client", ClientSecret: "recorded-secret", HTTP: newHTTP(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	p, err := c.Pull(ctx, nil, connectors.PullOptions{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Records) != 2 || p.Total != 2 {
		t.Fatalf("page: %d records, total %d", len(p.Records), p.Total)
	}
	r := p.Records[1]
	if r.Entity != orgLead || r.ID != "9b2e1c4d-55aa-4f3b-8d1e-2f6a7b8c9d0e" || r.Fields["ImportId"] != "crm-42" ||
		field(r.Fields, "Organization.VisitingAddress.City") != "Berlin" || field(r.Fields, "Organization.VisitingAddress.Country.Name") != "Germany" ||
		field(r.Fields, "Organization.VisitingAddress.StreetAndNumber") != "Hauptstraße 7" {
		t.Fatalf("decoded record: %+v", r)
	}
	if !r.CreatedAt.Equal(time.Date(2026, 5, 1, 7, 58, 0, 0, time.UTC)) || r.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt %v", r.CreatedAt)
	}
	// UpdatedAt is the later of the relationship's and the organisation's LastMutationDate.
	if !r.UpdatedAt.Equal(time.Date(2026, 5, 2, 9, 30, 0, 0, time.UTC)) {
		t.Errorf("UpdatedAt %v", r.UpdatedAt)
	}
	// A full page: the next page continues from the keyset, with the
	// timestamp exactly as the API wrote it and its '+' escaped.
	if _, err := c.Pull(ctx, p.Next, connectors.PullOptions{PageSize: 2}); err != nil {
		t.Fatal(err)
	}
	want := "$filter=" + esc("LastMutationDate gt 2026-05-01T10:00:00.1234567+02:00 or (LastMutationDate eq 2026-05-01T10:00:00.1234567+02:00 and ID gt 9b2e1c4d-55aa-4f3b-8d1e-2f6a7b8c9d0e)")
	mu.Lock()
	found := false
	for _, q := range queries {
		if strings.Contains(q, want) {
			found = true
		}
	}
	for _, a := range auths[1:] {
		if a != "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJyZWNvcmRlZCJ9.c2lnbmF0dXJl" {
			t.Errorf("request sent with %q, not the recorded token", a)
		}
	}
	mu.Unlock()
	if !found || !strings.Contains(want, "%2B02%3A00") {
		t.Errorf("keyset query %q not sent", want)
	}
	// Addresses are expanded with their country, nested, as the vendor's
	// MCP server asks for them.
	wantExpand := "$expand=" + esc("Organization($expand=VisitingAddress($expand=Country),PostalAddress($expand=Country))")
	mu.Lock()
	expanded := false
	for _, q := range queries {
		expanded = expanded || strings.Contains(q, wantExpand)
	}
	mu.Unlock()
	if !expanded {
		t.Errorf("no pull asked for %s: %v", wantExpand, queries)
	}

	rec, err := c.Get(ctx, FunnelSet(FlavourPerson, "HotProspect"), "0f8fad5b-d9cb-469f-a165-70867728950e")
	if err != nil {
		t.Fatal(err)
	}
	if field(rec.Fields, "Person.MiddleName") != "de" || field(rec.Fields, "Person.Address.Postalcode") != "1015 AA" ||
		field(rec.Fields, "Person.Address.StreetAndNumber") != "Keizersgracht 100A" || field(rec.Fields, "Person.Address.Country.Code") != "NL" ||
		!rec.UpdatedAt.Equal(time.Date(2026, 3, 1, 16, 45, 12, 250e6, time.UTC)) {
		t.Errorf("single entity: %+v", rec)
	}
	if _, ok := rec.Fields["@odata.context"]; ok {
		t.Error("annotation kept in Fields")
	}

	_, err = c.Create(ctx, connectors.Record{Entity: FunnelSet(FlavourPerson, "Lead"), Fields: map[string]any{"Relation": map[string]any{"ID": "16fd2706-8baf-433b-82eb-8c7fada847da"}, "Person": map[string]any{"FirstName": "X"}}})
	var ce *connectors.Error
	if !asError(err, &ce) || ce.Kind != connectors.Rejected || ce.Message != "The property 'LastName' is required for type 'Relation.Person'." {
		t.Errorf("validation error: %#v", err)
	}

	if got := ErrorMessage(401, read("error_invalid_client.json")); !strings.HasPrefix(got, "invalid_client: Client authentication failed") {
		t.Errorf("ErrorMessage(oauth) = %q", got)
	}
	if got := ErrorMessage(500, []byte("<html>oops</html>")); got != "" {
		t.Errorf("ErrorMessage(html) = %q", got)
	}
}
