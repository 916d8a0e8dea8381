package app

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/config"
	brtemu "github.com/crmsync/crmsync/connectors/bluerocktel/emulator"
	"github.com/crmsync/crmsync/connectors/builtin"
	tribeemu "github.com/crmsync/crmsync/connectors/tribecrm/emulator"
	"github.com/crmsync/crmsync/engine"
)

// TestCredentialsFromConfig syncs with TribeCRM OAuth client credentials and
// a BlueRockTel login taken from the config (no static tokens), and checks
// that no secret reaches the logs.
func TestCredentialsFromConfig(t *testing.T) {
	tribe := httptest.NewServer(tribeemu.New(tribeemu.Options{Records: 12, ClientID: "crm-client", ClientSecret: "tribe-client-secret-123", TokenLifetime: time.Minute}))
	defer tribe.Close()
	brt := httptest.NewServer(brtemu.New(brtemu.Options{
		Users: []brtemu.User{{ID: 1, Name: "Sync", Email: "sync@example.test", Password: "brt-password-456", Role: 1}}}))
	defer brt.Close()
	dir := t.TempDir()
	root, _ := filepath.Abs("..")
	cfgText := `state: s.db
systems:
  tribecrm:
    type: tribecrm
    base_url: ` + tribe.URL + `
    mapping: ` + filepath.Join(root, "examples/mappings/tribecrm.yaml") + `
    oauth:
      client_id: crm-client
      client_secret: ${TRIBE_SECRET}
  bluerocktel:
    type: bluerocktel
    base_url: ` + brt.URL + `
    mapping: ` + filepath.Join(root, "examples/mappings/bluerocktel.yaml") + `
    login:
      email: sync@example.test
      password: ${BRT_PASSWORD}
flows:
  - name: f
    source: tribecrm
    targets: [{system: bluerocktel}]
`
	path := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"TRIBE_SECRET": "tribe-client-secret-123", "BRT_PASSWORD": "brt-password-456"}
	cfg, err := config.Parse(path, []byte(cfgText), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := zerolog.New(zerolog.SyncWriter(&logs)).Level(zerolog.TraceLevel)
	a, err := Open(cfg, log, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	flows, _ := Flows(cfg, nil)
	res, err := a.Engine.Run(context.Background(), flows[0], engine.RunOptions{})
	if err != nil {
		t.Fatalf("sync with OAuth and login credentials: %v", err)
	}
	if got := res.Systems["bluerocktel"].Created; got != 12 {
		t.Fatalf("created %d in BlueRockTel, want 12", got)
	}
	for _, secret := range env {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("secret %q appears in the logs", secret)
		}
	}
}
