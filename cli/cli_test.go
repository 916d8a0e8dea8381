package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/httpx"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"github.com/crmsync/crmsync/emulate/emutest"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/state"
)

// These tests run the commands as a user would (cli.Execute with arguments,
// output captured) against the emulators on loopback, with a configuration
// and the example mappings written to a temporary directory.

type cliWorld struct {
	t     *testing.T
	ctx   context.Context
	srv   *emutest.Servers
	dir   string
	cfg   string // config path
	state string
	tribe *tribecrm.Client
}

func newCLIWorld(t *testing.T, tribe int, logLevel string, mappings map[string]string) *cliWorld {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	none := 0
	srv, err := emutest.Start(ctx, emutest.Options{Seed: tribe, SeedOthers: &none})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mappings"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tribecrm.yaml", "overplane.yaml", "bluerocktel.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", "mappings", name))
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := mappings[name]; ok {
			data = []byte(s)
		}
		if err := os.WriteFile(filepath.Join(dir, "mappings", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "state: state.db\nlog:\n  level: %s\n  format: console\nadmin:\n  listen: \"\"\nsystems:\n", logLevel)
	for _, s := range []string{"tribecrm", "overplane", "bluerocktel"} {
		fmt.Fprintf(&b, "  %s:\n    type: %s\n    base_url: %s\n    token: dev-token\n    mapping: mappings/%s.yaml\n    page_size: 10\n    rate_limit: 0\n", s, s, srv.URLs[s], s)
	}
	b.WriteString("flows:\n  - name: t2b\n    source: tribecrm\n    write_concurrency: 1\n    targets:\n      - system: bluerocktel\n")
	cfg := filepath.Join(dir, "crmsync.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	tc, err := tribecrm.New(tribecrm.Options{BaseURL: srv.URLs["tribecrm"], Token: "dev-token", HTTP: httpx.New(httpx.Options{System: "tribecrm", RetryMax: -1})})
	if err != nil {
		t.Fatal(err)
	}
	return &cliWorld{t: t, ctx: ctx, srv: srv, dir: dir, cfg: cfg, state: filepath.Join(dir, "state.db"), tribe: tc}
}

// run executes crmsync with args and returns its exit code, stdout and stderr.
func (w *cliWorld) run(args ...string) (int, string, string) {
	w.t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(w.ctx, args, Env{Stdout: &out, Stderr: &errOut})
	return code, out.String(), errOut.String()
}

// mustRun runs crmsync and fails the test unless it exits 0.
func (w *cliWorld) mustRun(args ...string) string {
	w.t.Helper()
	code, out, errOut := w.run(args...)
	if code != 0 {
		w.t.Fatalf("crmsync %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func (w *cliWorld) createOrg(stage, name string) connectors.Record {
	w.t.Helper()
	rec, err := w.tribe.Create(w.ctx, connectors.Record{Entity: tribecrm.FunnelSet(tribecrm.FlavourOrganization, stage),
		Fields: map[string]any{"IsActive": true, "Organization": map[string]any{"Name": name}}})
	if err != nil {
		w.t.Fatal(err)
	}
	return rec
}

func (w *cliWorld) renameOrg(rec connectors.Record, name string) {
	w.t.Helper()
	if _, err := w.tribe.Update(w.ctx, rec.Entity, rec.ID, map[string]any{"Organization": map[string]any{"Name": name}}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *cliWorld) brtNames() map[string]int {
	out := map[string]int{}
	for _, e := range []string{"prospects", "customers"} {
		for _, id := range w.srv.BlueRockTel.IDs(e) {
			r, _ := w.srv.BlueRockTel.Record(e, id)
			out[fmt.Sprint(r["name"])]++
		}
	}
	return out
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
	return v
}

type deadLetterList struct {
	DeadLetters []state.DeadLetter `json:"dead_letters"`
}

func TestDeadLettersListShowReplayDrop(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 3, "warn", nil)
	x := w.createOrg("Lead", "X")
	w.createOrg("Lead", "Y")
	// Two records refused: the sync ends, but says work is left (exit 3).
	if code, out, errOut := w.run("sync", "--config", w.cfg); code != ExitUndelivered || !strings.Contains(out, "2 dead") {
		t.Fatalf("sync with 2 refused records: exit %d, want %d and a summary naming 2 dead\nstdout:\n%s\nstderr:\n%s", code, ExitUndelivered, out, errOut)
	}

	list := decode[deadLetterList](t, w.mustRun("deadletters", "list", "--config", w.cfg, "--json"))
	if len(list.DeadLetters) != 2 {
		t.Fatalf("listed %d dead letters, want 2: %+v", len(list.DeadLetters), list)
	}
	var keyX, keyY string
	for _, d := range list.DeadLetters {
		if d.Error == "" || d.Attempts != 1 || d.FirstAt.IsZero() || d.LastAt.IsZero() || d.Payload["name"] == nil {
			t.Errorf("dead letter lacks error, attempts, times or payload: %+v", d)
		}
		switch d.Payload["name"] {
		case "X":
			keyX = d.Key
		case "Y":
			keyY = d.Key
		}
	}
	if keyX == "" || keyY == "" {
		t.Fatalf("dead letters for X and Y not found: %+v", list)
	}
	if out := w.mustRun("deadletters", "list", "--config", w.cfg); !strings.Contains(out, keyX) || !strings.Contains(out, "at least 2 characters") {
		t.Errorf("plain list:\n%s", out)
	}

	show := decode[state.DeadLetter](t, w.mustRun("deadletters", "show", keyX, "--config", w.cfg, "--json"))
	if show.Key != keyX || show.SourceID != x.ID || show.Op != "create" || !strings.Contains(show.Error, "at least 2 characters") {
		t.Errorf("show: %+v", show)
	}
	if out := w.mustRun("deadletters", "show", keyX, "--config", w.cfg); !strings.Contains(out, "payload:") || !strings.Contains(out, `"name": "X"`) {
		t.Errorf("plain show:\n%s", out)
	}
	if code, _, errOut := w.run("deadletters", "show", "flow/none/nothing", "--config", w.cfg); code != 1 || !strings.Contains(errOut, "no dead letter") {
		t.Errorf("show of an unknown key: exit %d, %q", code, errOut)
	}

	// Replay while the record is still bad: it fails again, attempts count up.
	w.mustRun("deadletters", "replay", keyX, "--config", w.cfg, "--json")
	again := decode[state.DeadLetter](t, w.mustRun("deadletters", "show", keyX, "--config", w.cfg, "--json"))
	if again.Attempts != 2 {
		t.Errorf("attempts after a failed replay: %d, want 2", again.Attempts)
	}

	// Fixed at the source, a replay writes it and the dead letter goes.
	w.renameOrg(x, "Xylo BV")
	out := w.mustRun("deadletters", "replay", keyX, "--config", w.cfg)
	if !strings.Contains(out, "dead letters left in flow t2b: 1") {
		t.Errorf("replay output:\n%s", out)
	}
	if n := w.brtNames()["Xylo BV"]; n != 1 {
		t.Errorf("BlueRockTel holds %d records named Xylo BV, want 1", n)
	}

	dropped := decode[map[string]string](t, w.mustRun("deadletters", "drop", keyY, "--config", w.cfg, "--json"))
	if dropped["dropped"] != keyY {
		t.Errorf("drop: %v", dropped)
	}
	if left := decode[deadLetterList](t, w.mustRun("deadletters", "list", "--config", w.cfg, "--json")); len(left.DeadLetters) != 0 {
		t.Errorf("dead letters left: %+v", left)
	}
	if out := w.mustRun("deadletters", "list", "--config", w.cfg); !strings.Contains(out, "no dead letters") {
		t.Errorf("plain list of none:\n%s", out)
	}
	// A dropped dead letter is not retried: Y stays out of BlueRockTel.
	if code, out, errOut := w.run("sync", "--config", w.cfg); code != 0 {
		t.Fatalf("sync after the drop: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := w.brtNames()["Y"]; n != 0 {
		t.Errorf("the dropped record reached BlueRockTel")
	}
}

type planOutput struct {
	Flows map[string]*engine.Result `json:"flows"`
}

func TestPlanJSONWritesNothingAndSyncFollowsIt(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 12, "warn", nil)
	// No state file yet: plan must not create one.
	p := decode[planOutput](t, w.mustRun("plan", "--config", w.cfg, "--json"))
	if _, err := os.Stat(w.state); !os.IsNotExist(err) {
		t.Fatalf("plan created the state file (%v)", err)
	}
	if n := len(w.srv.BlueRockTel.Writes()); n != 0 {
		t.Fatalf("plan sent %d writes", n)
	}
	res := p.Flows["t2b"]
	if res == nil || len(res.Plan) != 12 {
		t.Fatalf("plan: %+v; want 12 creates", res)
	}
	for _, ch := range res.Plan {
		if ch.Op != "create" || ch.Target != "bluerocktel" || len(ch.Fields) == 0 {
			t.Errorf("planned change %+v", ch)
		}
	}
	s := decode[planOutput](t, w.mustRun("sync", "--config", w.cfg, "--json"))
	if c := s.Flows["t2b"].Systems["bluerocktel"]; c.Created != 12 {
		t.Errorf("sync created %d, plan said 12", c.Created)
	}

	// An edit: the plan shows the field's old and new value, and writes nothing.
	var org connectors.Record
	for _, set := range tribecrm.FunnelSets()[:4] {
		for _, id := range w.srv.TribeCRM.IDs(set) {
			org, _ = w.tribe.Get(w.ctx, set, id)
			break
		}
		if org.ID != "" {
			break
		}
	}
	if org.ID == "" {
		t.Fatal("no organisation seeded")
	}
	oldName := org.Fields["Organization"].(map[string]any)["Name"]
	w.renameOrg(org, "Renamed For Plan BV")
	before, _ := os.ReadFile(w.state)
	writes := len(w.srv.BlueRockTel.Writes())
	out := w.mustRun("plan", "--config", w.cfg, "--json")
	if after, _ := os.ReadFile(w.state); !bytes.Equal(before, after) {
		t.Error("plan changed the state file")
	}
	if n := len(w.srv.BlueRockTel.Writes()) - writes; n != 0 {
		t.Errorf("plan sent %d writes", n)
	}
	p = decode[planOutput](t, out)
	var diff *engine.FieldDiff
	for _, ch := range p.Flows["t2b"].Plan {
		for i, d := range ch.Fields {
			if ch.Op == "update" && d.Field == "name" {
				diff = &ch.Fields[i]
			}
		}
	}
	if diff == nil || diff.Old != oldName || diff.New != "Renamed For Plan BV" {
		t.Fatalf("plan lacks the name change %v -> Renamed For Plan BV: %s", oldName, out)
	}
	plain := w.mustRun("plan", "--config", w.cfg)
	if !strings.Contains(plain, "1 update") || !strings.Contains(plain, fmt.Sprintf("name: %q -> \"Renamed For Plan BV\"", oldName)) {
		t.Errorf("plain plan:\n%s", plain)
	}
	s = decode[planOutput](t, w.mustRun("sync", "--config", w.cfg, "--json"))
	if c := s.Flows["t2b"].Systems["bluerocktel"]; c.Updated != 1 || c.Created != 0 {
		t.Errorf("sync after the plan: %+v; want the 1 update it planned", c)
	}
}

func TestBackfillPrintsPlainProgressWithoutATerminal(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 40, "info", nil)
	w.mustRun("sync", "--config", w.cfg)
	code, out, errOut := w.run("backfill", "t2b", "--config", w.cfg)
	if code != 0 {
		t.Fatalf("backfill: exit %d\n%s\n%s", code, out, errOut)
	}
	lines, etas := 0, 0
	etaRe := regexp.MustCompile(`eta=(\d+h)?(\d+m)?\d+(\.\d+)?s\b`)
	for _, l := range strings.Split(errOut, "\n") {
		if strings.Contains(l, "backfill progress") {
			lines++
			if !strings.Contains(l, "records=") || !strings.Contains(l, "records_per_s=") {
				t.Errorf("progress line without counts: %q", l)
			}
			if strings.Contains(l, "\x1b[") || strings.Contains(l, "\r") {
				t.Errorf("terminal control codes in a plain progress line: %q", l)
			}
			if strings.Contains(l, "eta=") {
				etas++
				if !etaRe.MatchString(l) {
					t.Errorf("eta without a unit (want e.g. eta=1m40s): %q", l)
				}
			}
		}
	}
	if etas == 0 {
		t.Errorf("no progress line has an eta:\n%s", errOut)
	}
	if lines < 2 {
		t.Errorf("%d progress lines on stderr, want one per page:\n%s", lines, errOut)
	}
	if !regexp.MustCompile(`\d+ records/s`).MatchString(out) || !strings.Contains(out, "flow t2b (backfill): ok") {
		t.Errorf("backfill summary:\n%s", out)
	}
	// --since reads fewer records; a bad date is a usage error.
	s := decode[planOutput](t, w.mustRun("backfill", "t2b", "--config", w.cfg, "--since", "2026-01-01T00:20:00Z", "--json"))
	all := decode[planOutput](t, w.mustRun("backfill", "t2b", "--config", w.cfg, "--json"))
	since, full := s.Flows["t2b"].Systems["tribecrm"].Pulled, all.Flows["t2b"].Systems["tribecrm"].Pulled
	if since == 0 || since >= full {
		t.Errorf("backfill --since pulled %d, a full one %d", since, full)
	}
	if code, _, errOut := w.run("backfill", "t2b", "--config", w.cfg, "--since", "yesterday-ish"); code != 2 || !strings.Contains(errOut, "--since") {
		t.Errorf("bad --since: exit %d, %q", code, errOut)
	}
}

func TestMappingTestPrintsCanonicalAndBack(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 0, "warn", nil)
	sample := filepath.Join(w.dir, "prospect.json")
	if err := os.WriteFile(sample, []byte(`{"@entity": "prospects", "id": 7, "name": "Acme BV", "email_address": "info@acme.example",
		"prospection_code_id": 3, "main_address_city": "Lyon", "active": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := w.mustRun("mapping", "test", "--config", w.cfg, "--system", "bluerocktel", "--input", sample)
	for _, want := range []string{"canonical:", `"stage": "hot_prospect"`, `"email": "info@acme.example"`, `"address.city": "Lyon"`,
		"back to native:", `"prospection_code_id": 3`, `"entity": "prospects"`} {
		if !strings.Contains(out, want) {
			t.Errorf("mapping test output lacks %s:\n%s", want, out)
		}
	}
	js := decode[map[string]any](t, w.mustRun("mapping", "test", "--config", w.cfg, "--system", "bluerocktel", "--input", sample, "--json"))
	if c, _ := js["canonical"].(map[string]any); c["name"] != "Acme BV" {
		t.Errorf("--json: %v", js)
	}

	// A value the mapping cannot map: the error names the mapping's file and line.
	bad := filepath.Join(w.dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"@entity": "prospects", "name": "Acme BV", "prospection_code_id": 9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := w.run("mapping", "test", "--config", w.cfg, "--system", "bluerocktel", "--input", bad)
	if code != 1 || !regexp.MustCompile(`bluerocktel\.yaml:\d+`).MatchString(out) {
		t.Errorf("unmappable value: exit %d, output:\n%s", code, out)
	}
}

func TestMappingTestReportsABadFieldWithFileAndLine(t *testing.T) {
	t.Parallel()
	m, err := os.ReadFile(filepath.Join("..", "examples", "mappings", "bluerocktel.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(m), "    canonical: vat_number", "    canonical: vat_numbr", 1)
	line := 1 + strings.Count(text[:strings.Index(text, "vat_numbr")], "\n")
	w := newCLIWorld(t, 0, "warn", map[string]string{"bluerocktel.yaml": text})
	sample := filepath.Join(w.dir, "prospect.json")
	if err := os.WriteFile(sample, []byte(`{"@entity": "prospects", "name": "Acme BV"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := w.run("mapping", "test", "--config", w.cfg, "--system", "bluerocktel", "--input", sample)
	want := fmt.Sprintf("bluerocktel.yaml:%d", line)
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "vat_numbr") {
		t.Errorf("bad field: exit %d, want the error at %s:\n%s", code, want, out)
	}
	if code, out, _ := w.run("validate", "--config", w.cfg); code != 1 || !strings.Contains(out, want) {
		t.Errorf("validate with the bad field: exit %d:\n%s", code, out)
	}
}

func TestValidateExamples(t *testing.T) {
	t.Parallel()
	for _, path := range []string{filepath.Join("..", "examples", "mesh.yaml"), filepath.Join("..", "config.example.yaml")} {
		var out, errOut bytes.Buffer
		code := Execute(context.Background(), []string{"validate", "--config", path}, Env{Stdout: &out, Stderr: &errOut})
		if code != 0 || strings.TrimSpace(out.String()) != "ok" {
			t.Errorf("validate %s: exit %d\n%s%s", path, code, out.String(), errOut.String())
		}
	}
}

// TestVersion: `crmsync --version` says which build runs (issue 11).
func TestVersion(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), []string{"--version"}, Env{Stdout: &out, Stderr: &errOut})
	if code != 0 || !strings.HasPrefix(out.String(), "crmsync ") || !strings.Contains(out.String(), runtime.Version()) {
		t.Fatalf("--version: exit %d, %q %q", code, out.String(), errOut.String())
	}
}

// TestSyncJSONHasEveryCount: a script reading `sync --json` finds every
// count, 0 included (issue 11: "linked" was left out when 0).
func TestSyncJSONHasEveryCount(t *testing.T) {
	t.Parallel()
	w := newCLIWorld(t, 3, "", nil)
	var out struct {
		Flows map[string]struct {
			Systems map[string]map[string]json.RawMessage `json:"systems"`
		} `json:"flows"`
	}
	if err := json.Unmarshal([]byte(w.mustRun("sync", "--config", w.cfg, "--json")), &out); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range out.Flows {
		for sys, c := range f.Systems {
			for _, k := range []string{"pulled", "created", "linked", "updated", "converted", "unchanged", "skipped", "failed", "deleted", "closed", "retried"} {
				if _, ok := c[k]; !ok {
					t.Errorf("%s: %q missing from the JSON counts", sys, k)
				}
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no counts at all")
	}
}

// TestBackfillSaysWhileItReadsTheTarget: before its first creates a
// backfill reads the target once to match existing records; without a
// terminal it says so in the log (the first page, every tenth, the end)
// instead of staying silent.
func TestBackfillSaysWhileItReadsTheTarget(t *testing.T) {
	w := newCLIWorld(t, 30, "info", nil)
	w.mustRun("sync", "t2b", "--config", w.cfg) // BlueRockTel now holds 30 records
	if err := os.Remove(w.state); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := w.run("backfill", "t2b", "--config", w.cfg)
	if code != 0 {
		t.Fatalf("backfill: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "reading bluerocktel to match existing records: 10 read") {
		t.Errorf("no progress line for the first page of the target read:\n%s", errOut)
	}
	if !strings.Contains(errOut, "read bluerocktel to match existing records: 30 records") {
		t.Errorf("no line for the end of the target read:\n%s", errOut)
	}
}
