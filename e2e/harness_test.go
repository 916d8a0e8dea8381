package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/cli"
	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"github.com/crmsync/crmsync/emulate/emutest"
	"github.com/crmsync/crmsync/engine"
)

// repoRoot is the module root, relative to this package's directory (go test
// runs tests in the package directory).
const repoRoot = ".."

const flowName = "tribecrm-to-others"

// binary is the crmsync binary built by TestMain for the process tests.
var binary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "crmsync-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "crmsync")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build -o %s . failed: %v\n%s", binary, err, out)
		return 1
	}
	return pg.Main(m)
}

// envOptions configures a test environment.
type envOptions struct {
	Seed int // TribeCRM records; Overplane and BlueRockTel start empty
	// EmulatorToken is the token the emulators accept (default dev-token);
	// ConfigToken the one written to the config (default EmulatorToken).
	EmulatorToken, ConfigToken string
	Faults                     emukit.Faults
	// Front, when set, wraps a system's emulator handler (by system name);
	// the config then points at an httptest server serving the wrapper.
	Front map[string]func(http.Handler) http.Handler
	// Edit changes the config text after the URLs, tokens and state are set.
	Edit func(string) string
	// ExampleConcurrency documents that a test relies on the example's
	// write_concurrency (4 writes in flight per target); every test uses it.
	ExampleConcurrency bool
}

// testEnv is three emulators on loopback, a config file pointing at them
// and a state file, all in a temporary directory.
type testEnv struct {
	t       testing.TB
	dir     string
	cfgPath string
	state   string
	srv     *emutest.Servers
	urls    map[string]string // what the config points at
	token   string            // what the emulators accept
}

func newEnv(t testing.TB, o envOptions) *testEnv {
	t.Helper()
	if o.EmulatorToken == "" {
		o.EmulatorToken = "dev-token"
	}
	if o.ConfigToken == "" {
		o.ConfigToken = o.EmulatorToken
	}
	ctx, cancel := context.WithCancel(context.Background())
	none := 0
	srv, err := emutest.Start(ctx, emutest.Options{
		Token: o.EmulatorToken, Seed: o.Seed, SeedOthers: &none, Faults: o.Faults})
	if err != nil {
		cancel()
		t.Fatalf("start emulators: %v", err)
	}
	t.Cleanup(func() { cancel(); srv.Close() })
	e := &testEnv{t: t, dir: t.TempDir(), srv: srv, urls: map[string]string{}, token: o.EmulatorToken}
	for name, u := range srv.URLs {
		e.urls[name] = u
	}
	handlers := map[string]http.Handler{tribecrm.System: srv.TribeCRM, "overplane": srv.Overplane, bluerocktel.System: srv.BlueRockTel}
	for name, wrap := range o.Front {
		hs := httptest.NewServer(wrap(handlers[name]))
		t.Cleanup(hs.Close)
		e.urls[name] = hs.URL
	}
	e.state = filepath.Join(e.dir, "state", "crmsync.db")
	if err := os.MkdirAll(filepath.Dir(e.state), 0o755); err != nil {
		t.Fatal(err)
	}
	e.cfgPath = filepath.Join(e.dir, "config.yaml")
	text := exampleConfig(t, e.urls, o.ConfigToken, e.state)
	if o.Edit != nil {
		text = o.Edit(text)
	}
	e.writeConfig(text)
	return e
}

// exampleConfig is config.example.yaml with its ${...} defaults replaced by
// literal values, so the result does not depend on the test's environment.
func exampleConfig(t testing.TB, urls map[string]string, token, state string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, r := range [][2]string{
		{"${CRMSYNC_STATE:-crmsync.db}", state},
		{"${TRIBECRM_URL:-http://127.0.0.1:8081}", urls[tribecrm.System]},
		{"${OVERPLANE_URL:-http://127.0.0.1:8082}", urls["overplane"]},
		{"${BLUEROCKTEL_URL:-http://127.0.0.1:8083}", urls[bluerocktel.System]},
		{"${TRIBECRM_TOKEN:-dev-token}", token},
		{"${OVERPLANE_TOKEN:-dev-token}", token},
		{"${BLUEROCKTEL_TOKEN:-dev-token}", token},
	} {
		if !strings.Contains(text, r[0]) {
			t.Fatalf("config.example.yaml no longer contains %s; update the e2e harness", r[0])
		}
		text = strings.ReplaceAll(text, r[0], r[1])
	}
	return text
}

// writeConfig writes the config and a fresh copy of the example mappings
// next to it (the config refers to examples/mappings/*.yaml, relative to
// its own directory), and checks that the config parses.
func (e *testEnv) writeConfig(text string) {
	e.t.Helper()
	mdir := filepath.Join(e.dir, "examples", "mappings")
	if err := os.MkdirAll(mdir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "mappings", "*.yaml"))
	if err != nil || len(files) == 0 {
		e.t.Fatalf("no example mappings found: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mdir, filepath.Base(f)), b, 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := os.WriteFile(e.cfgPath, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// parseConfig parses the written config with no environment at all.
func (e *testEnv) parseConfig() *config.Config {
	e.t.Helper()
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg, err := config.Parse(e.cfgPath, b, func(string) (string, bool) { return "", false }, builtin.Registry())
	if err != nil {
		e.t.Fatalf("config does not parse: %v", err)
	}
	return cfg
}

// cliResult is one in-process CLI invocation's outcome.
type cliResult struct {
	Code           int
	Stdout, Stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.Code, r.Stdout, r.Stderr)
}

// runCLI runs crmsync in-process with args.
func runCLI(ctx context.Context, args ...string) cliResult {
	var out, errb syncBuffer
	code := runCLIWith(ctx, &out, &errb, args...)
	return cliResult{Code: code, Stdout: out.String(), Stderr: errb.String()}
}

// runCLIWith runs crmsync in-process with args, writing to out and errw,
// and returns its exit code.
func runCLIWith(ctx context.Context, out, errw io.Writer, args ...string) int {
	return cli.Execute(ctx, args, cli.Env{Stdout: out, Stderr: errw})
}

// cli runs a command against this environment's config.
func (e *testEnv) cli(args ...string) cliResult {
	e.t.Helper()
	args = append(args, "--config", e.cfgPath)
	return runCLI(context.Background(), args...)
}

// syncJSON is `crmsync sync --json`.
type syncJSON struct {
	Flows map[string]*engine.Result `json:"flows"`
}

// sync runs `crmsync sync --json` (plus extra args), expects exit 0 and
// returns the flow's result.
func (e *testEnv) sync(extra ...string) *engine.Result {
	e.t.Helper()
	res := e.cli(append([]string{"sync", "--json"}, extra...)...)
	if res.Code != 0 {
		e.t.Fatalf("sync failed: %s", res)
	}
	return decodeSync(e.t, res.Stdout)
}

func decodeSync(t testing.TB, stdout string) *engine.Result {
	t.Helper()
	var out syncJSON
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("sync --json did not print one JSON object: %v\n%s", err, stdout)
	}
	r := out.Flows[flowName]
	if r == nil {
		t.Fatalf("sync --json has no flow %s: %s", flowName, stdout)
	}
	return r
}

// counts returns a system's counts, failing when the result lacks it.
func counts(t testing.TB, r *engine.Result, system string) engine.Counts {
	t.Helper()
	c, ok := r.Systems[system]
	if !ok || c == nil {
		t.Fatalf("result has no counts for %s: %+v", system, r.Systems)
	}
	return *c
}

// ---- emulator views ----

// tribeOrg is one TribeCRM organisation relationship as the API shows it.
type tribeOrg struct {
	Set, RelID, OrgID, Name string
	IsActive, IsClosed      bool
}

// tribeOrgs lists every organisation relationship through the OData API.
func (e *testEnv) tribeOrgs() []tribeOrg {
	e.t.Helper()
	var out []tribeOrg
	for _, stage := range tribecrm.Stages() {
		set := tribecrm.FunnelSet(tribecrm.FlavourOrganization, stage)
		var list struct {
			Value []struct {
				ID           string
				IsActive     bool
				IsClosed     bool
				Organization struct{ ID, Name string }
			} `json:"value"`
		}
		e.getJSON(tribecrm.System, "/v1/odata/"+set+"?$top=1000&$orderby=ID%20asc&$expand=Organization", &list)
		for _, v := range list.Value {
			out = append(out, tribeOrg{Set: set, RelID: v.ID, OrgID: v.Organization.ID, Name: v.Organization.Name, IsActive: v.IsActive, IsClosed: v.IsClosed})
		}
	}
	return out
}

// tribeOrgCount counts organisation relationships with the emulator's helper.
func (e *testEnv) tribeOrgCount() int {
	n := 0
	for _, s := range tribecrm.Stages() {
		n += e.srv.TribeCRM.Count(tribecrm.FunnelSet(tribecrm.FlavourOrganization, s))
	}
	return n
}

// blueRecord is one BlueRockTel record (prospect or customer).
type blueRecord struct {
	Entity  string
	ID      int64
	Name    string
	Updated time.Time
}

// blueRecords lists every prospect and customer with the emulator's helpers.
func (e *testEnv) blueRecords() []blueRecord {
	var out []blueRecord
	for _, ent := range []string{bluerocktel.EntityProspects, bluerocktel.EntityCustomers} {
		for _, id := range e.srv.BlueRockTel.IDs(ent) {
			r, ok := e.srv.BlueRockTel.Record(ent, id)
			if !ok {
				continue
			}
			name, _ := r["name"].(string)
			upd, _ := r["updated_at"].(time.Time)
			out = append(out, blueRecord{Entity: ent, ID: id, Name: name, Updated: upd})
		}
	}
	return out
}

// overplaneRecord is one Overplane prospect.
type overplaneRecord struct {
	ID, Name, Updated string
}

func (e *testEnv) overplaneRecords() []overplaneRecord {
	var out []overplaneRecord
	for _, id := range e.srv.Overplane.IDs() {
		p, ok := e.srv.Overplane.Prospect(id)
		if !ok {
			continue
		}
		name, _ := p["company_name"].(string)
		upd, _ := p["updated_at"].(string)
		out = append(out, overplaneRecord{ID: id, Name: name, Updated: upd})
	}
	return out
}

// writes is the number of write requests each target emulator received.
type writes struct{ overplane, bluerocktel int }

func (e *testEnv) writes() writes {
	return writes{overplane: len(e.srv.Overplane.Writes()), bluerocktel: len(e.srv.BlueRockTel.Writes())}
}

// assertBlueRockTelHolds fails unless BlueRockTel holds want records, each
// name once (nothing lost, nothing created twice); when says at which point
// of the test ("" or e.g. " after the retry").
func (e *testEnv) assertBlueRockTelHolds(t testing.TB, want int, when string) {
	t.Helper()
	var names []string
	for _, b := range e.blueRecords() {
		names = append(names, b.Name)
	}
	if len(names) != want {
		t.Errorf("BlueRockTel holds %d records%s, want %d", len(names), when, want)
	}
	assertUniqueNames(t, "BlueRockTel", names)
}

// assertUniqueNames fails when two records share a name.
func assertUniqueNames(t testing.TB, system string, names []string) {
	t.Helper()
	seen := map[string]int{}
	for _, n := range names {
		seen[n]++
	}
	var dups []string
	for n, c := range seen {
		if c > 1 {
			dups = append(dups, fmt.Sprintf("%q ×%d", n, c))
		}
	}
	sort.Strings(dups)
	if len(dups) > 0 {
		t.Errorf("%s holds records sharing a name (created twice?): %s", system, strings.Join(dups, ", "))
	}
}

// ---- HTTP ----

// api sends one request to a system's API (as the config sees it) with the
// emulators' token, and returns the status and body.
func (e *testEnv) api(system, method, path string, body any) (int, []byte) {
	e.t.Helper()
	return doHTTP(e.t, method, e.urls[system]+path, e.token, body)
}

func (e *testEnv) getJSON(system, path string, out any) {
	e.t.Helper()
	st, b := e.api(system, http.MethodGet, path, nil)
	if st != http.StatusOK {
		e.t.Fatalf("GET %s %s: %d %s", system, path, st, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		e.t.Fatalf("GET %s %s: %v: %s", system, path, err, b)
	}
}

func doHTTP(t testing.TB, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

// gate holds requests until it is opened. While shut it counts the
// requests it holds.
type gate struct {
	mu      sync.Mutex
	open    chan struct{}
	opened  bool
	waiting int
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.waiting++
		g.mu.Unlock()
		select {
		case <-g.open:
		case <-r.Context().Done():
		}
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// Open lets every held and later request through. Safe to call twice.
func (g *gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened {
		g.opened = true
		close(g.open)
	}
}

func (g *gate) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
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

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
