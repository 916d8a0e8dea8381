package emulate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/app"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"github.com/crmsync/crmsync/emulate"
	"github.com/crmsync/crmsync/emulate/emutest"
	"github.com/crmsync/crmsync/engine"
)

// TestSyncUnderEveryFaultLosesAndDuplicatesNothing runs the example flow
// against emulators that answer 5xx, rate-limit with 429 + Retry-After,
// cut connections (also after a create was received), stamp every record
// with one timestamp and edit records while crmsync pages. Runs are
// repeated as a scheduler would until one ends cleanly; then every
// TribeCRM record exists exactly once in BlueRockTel and every organisation
// exactly once in Overplane.
func TestSyncUnderEveryFaultLosesAndDuplicatesNothing(t *testing.T) {
	const seed = 60
	none := 0
	ctx := t.Context()
	srv, err := emutest.Start(ctx, emutest.Options{
		Seed: seed, SeedOthers: &none, Ties: true,
		Faults: emukit.Faults{ErrorRate: 0.05, ResetRate: 0.03, RateLimit: 400, RetryAfter: time.Second, Seed: 7}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Edits while paging, at the source (Overplane's paging edits also
	// create and delete prospects, which would make target counts moot).
	srv.TribeCRM.EditDuringPaging(1)
	root, _ := filepath.Abs("..")
	data, err := os.ReadFile(filepath.Join(root, "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "examples/mappings/", filepath.Join(root, "examples/mappings")+"/")
	text = strings.ReplaceAll(text, "rate_limit: 50", "rate_limit: 0")
	text = strings.ReplaceAll(text, "rate_limit: 30", "rate_limit: 0")
	text = strings.ReplaceAll(text, "retry_after_max: 30s", "retry_after_max: 2s")
	env := map[string]string{"TRIBECRM_URL": srv.URLs["tribecrm"], "OVERPLANE_URL": srv.URLs["overplane"],
		"BLUEROCKTEL_URL": srv.URLs["bluerocktel"], "CRMSYNC_STATE": filepath.Join(t.TempDir(), "s.db")}
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "c.yaml"), []byte(text), func(k string) (string, bool) { v, ok := env[k]; return v, ok }, builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(cfg, zerolog.Nop(), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	flows, _ := app.Flows(cfg, nil)
	clean := false
	for run := 1; run <= 15 && !clean; run++ {
		res, err := a.Engine.Run(ctx, flows[0], engine.RunOptions{})
		clean = err == nil && res.Systems["bluerocktel"].Failed == 0 && res.Systems["overplane"].Failed == 0
		t.Logf("run %d: err=%v bluerocktel=%+v overplane=%+v", run, err, *res.Systems["bluerocktel"], *res.Systems["overplane"])
	}
	if !clean {
		t.Fatal("no clean run within 15 runs under faults")
	}
	srv.TribeCRM.EditDuringPaging(0)
	// TribeCRM's paging edits rename or re-phone records; they never add or remove any.
	if got := srv.BlueRockTel.Count("prospects") + srv.BlueRockTel.Count("customers"); got != seed {
		t.Errorf("BlueRockTel holds %d prospects and customers, want %d (one per TribeCRM record)", got, seed)
	}
	names := map[string]int{}
	for _, coll := range []string{"prospects", "customers"} {
		for _, n := range listNames(t, srv.URLs["bluerocktel"]+"/api/v1/"+coll+"?per_page=100", "data", "name") {
			names[n]++
		}
	}
	for n, c := range names {
		if c > 1 {
			t.Errorf("BlueRockTel holds %q %d times", n, c)
		}
	}
	orgs := 0
	for _, st := range tribecrm.Stages() {
		orgs += srv.TribeCRM.Count(tribecrm.FunnelSet("Organization", st))
	}
	if got := srv.Overplane.Len(); got != orgs {
		t.Errorf("Overplane holds %d prospects, want %d (one per TribeCRM organisation)", got, orgs)
	}
}

func listNames(t *testing.T, url, list, field string) []string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", url, nil)
		req.Header.Set("Authorization", "Bearer dev-token")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode == 200 {
			var body map[string]any
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err == nil {
				var out []string
				rows, _ := body[list].([]any)
				for _, r := range rows {
					out = append(out, fmt.Sprint(r.(map[string]any)[field]))
				}
				return out
			}
		} else if resp != nil {
			resp.Body.Close()
		}
		if attempt > 20 {
			t.Fatalf("list %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStatsCountTheRequestsEachEmulatorServed: the stats path answers how
// many reads and writes each emulator served, and reading it counts nothing.
func TestStatsCountTheRequestsEachEmulatorServed(t *testing.T) {
	s, err := emulate.Start(t.Context(), emulate.Options{Types: builtin.Registry(), Addr: "127.0.0.1:0", Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	do := func(method, url string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer dev-token")
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	brt := s.URLs["bluerocktel"]
	do(http.MethodGet, brt+"/api/v1/prospects?per_page=2")
	do(http.MethodGet, brt+"/api/v1/prospects?per_page=2")
	do(http.MethodPost, brt+"/api/v1/prospects") // counted whatever the answer
	for range 2 {
		resp, err := http.Get(brt + emulate.StatsPath)
		if err != nil {
			t.Fatal(err)
		}
		var got emulate.Stats
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if want := (emulate.Stats{Requests: 3, Reads: 2, Writes: 1}); got != want {
			t.Fatalf("bluerocktel stats = %+v, want %+v", got, want)
		}
	}
	if got := s.Stats()["tribecrm"]; got != (emulate.Stats{}) {
		t.Errorf("tribecrm served %+v, want nothing", got)
	}
}
