package tribecrm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// Issue 9 item 4: the conversion body follows the vendor's own n8n node
// (efficy-sa/n8n-nodes-tribecrm, nodes/TribeCrm/resources/lead.ts, "Upgrade
// to Customer"): POST to the record's current set with {"ID", "_UpgradeType":
// <target entity set>}. The handler is not our emulator: it records what a
// server would receive.
func TestConvertSendsWhatTheVendorsNodeSends(t *testing.T) {
	t.Parallel()
	const id = "9f1c3a70-5c1e-4d8e-9a1b-000000000001"
	var got map[string]any
	var path string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			path = r.URL.Path
			b, _ := io.ReadAll(r.Body)
			_ = json.Unmarshal(b, &got)
			_, _ = w.Write([]byte(`{"ID":"` + id + `"}`))
			return
		}
		_, _ = w.Write([]byte(`{"ID":"` + id + `","LastMutationDate":"2026-12-01T10:00:00Z","Organization":{"ID":"9f1c3a70-5c1e-4d8e-9a1b-0000000000aa","Name":"A"}}`))
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: "dev-token", HTTP: newHTTP(t), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	from, to := FunnelSet(FlavourOrganization, "Lead"), FunnelSet(FlavourOrganization, "Customer")
	if _, err := c.ConvertStage(context.Background(), from, id, to); err != nil {
		t.Fatal(err)
	}
	if path != "/v1/odata/"+from || got["ID"] != id || got["_UpgradeType"] != to || len(got) != 2 {
		t.Fatalf("conversion sent %v to %s; want {ID, _UpgradeType: %s} to /v1/odata/%s", got, path, to, from)
	}
	if strings.Contains(path, to) {
		t.Fatal("posted to the target set")
	}
}
