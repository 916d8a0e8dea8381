package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/tribecrm"
	"github.com/crmsync/crmsync/engine"
)

// statusJSON is `crmsync status --json`.
type statusJSON struct {
	State string              `json:"state"`
	Flows []engine.FlowStatus `json:"flows"`
}

// status runs `crmsync status --json` (plus extra args) and decodes it.
func (e *testEnv) status(extra ...string) statusJSON {
	e.t.Helper()
	res := e.cli(append([]string{"status", "--json"}, extra...)...)
	if res.Code != 0 {
		e.t.Fatalf("status: %s", res)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, res.Stdout)
	}
	if len(st.Flows) != 1 || st.Flows[0].Flow != flowName {
		e.t.Fatalf("status --json shows flows %+v, want only %s", st.Flows, flowName)
	}
	return st
}

// TestStatusShowsCursorLastRunAndCounts: after a sync, status --json shows
// the flow's cursor and its last run with the same counts and no error.
func TestStatusShowsCursorLastRunAndCounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 12})
	r := e.sync()
	st := e.status()
	if st.State != e.state {
		t.Errorf("status shows state %q, want %q", st.State, e.state)
	}
	f := st.Flows[0]
	if f.Source != tribecrm.System || strings.Join(f.Targets, ",") != "overplane,bluerocktel" {
		t.Errorf("status shows %s -> %v", f.Source, f.Targets)
	}
	if len(f.Cursor) == 0 || string(f.Cursor) == "null" {
		t.Errorf("status shows no cursor after a sync")
	}
	if f.LastRun == nil {
		t.Fatalf("status shows no last run")
	}
	if f.LastRun.Error != "" {
		t.Errorf("last run error %q, want none", f.LastRun.Error)
	}
	if f.LastRun.Finished.Before(f.LastRun.Started) || f.LastRun.Started.IsZero() {
		t.Errorf("last run times: %s .. %s", f.LastRun.Started, f.LastRun.Finished)
	}
	for sys, c := range r.Systems {
		got := f.LastRun.Counts[sys]
		for k, want := range map[string]int{"pulled": c.Pulled, "created": c.Created, "updated": c.Updated, "unchanged": c.Unchanged, "failed": c.Failed} {
			if got[k] != want {
				t.Errorf("status %s %s = %d, sync printed %d", sys, k, got[k], want)
			}
		}
	}
	if f.LastRun.Counts[bluerocktel.System]["created"] != 12 {
		t.Errorf("status: bluerocktel created %d, want 12", f.LastRun.Counts[bluerocktel.System]["created"])
	}
	// The human-readable form says the same.
	res := e.cli("status")
	if res.Code != 0 || !strings.Contains(res.Stdout, "cursor:") || !strings.Contains(res.Stdout, "created 12") {
		t.Errorf("status (text) does not show cursor and counts: %s", res)
	}
}

// TestStateFlagOverridesConfig: --state makes sync and status use another
// file and leaves the config's state file alone.
func TestStateFlagOverridesConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 6})
	other := filepath.Join(t.TempDir(), "other.db")
	r := e.sync("--state", other)
	if c := counts(t, r, bluerocktel.System); c.Created != 6 {
		t.Errorf("bluerocktel created %d, want 6", c.Created)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("--state file was not written: %v", err)
	}
	if _, err := os.Stat(e.state); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the config's state file was touched despite --state (stat: %v)", err)
	}
	st := e.status("--state", other)
	if st.State != other || st.Flows[0].LastRun == nil {
		t.Errorf("status --state %s: state %q, last run %+v", other, st.State, st.Flows[0].LastRun)
	}
	// A sync with the other file again knows everything is in place.
	r = e.sync("--state", other)
	if c := counts(t, r, bluerocktel.System); c.Writes() != 0 {
		t.Errorf("second sync with --state made writes: %+v", c)
	}
}

// TestTwoSyncsOnOneStateFile: two syncs started at once against one state
// file: one runs, the other fails quickly saying another crmsync process
// holds the file, and nothing is created twice.
func TestTwoSyncsOnOneStateFile(t *testing.T) {
	t.Parallel()
	const seed = 10
	// Every TribeCRM request waits at the gate, so whichever sync gets the
	// state file first holds it until the test opens the gate.
	g := newGate()
	t.Cleanup(g.Open)
	e := newEnv(t, envOptions{Seed: seed, Front: map[string]func(http.Handler) http.Handler{tribecrm.System: g.wrap}})
	results := make(chan cliResult, 2)
	for i := 0; i < 2; i++ {
		go func() { results <- e.cli("sync", "--json") }()
	}
	var first cliResult
	select {
	case first = <-results:
	case <-time.After(30 * time.Second):
		t.Fatal("neither sync returned while the other held the state file: the second one waits instead of failing")
	}
	g.Open()
	var second cliResult
	select {
	case second = <-results:
	case <-time.After(60 * time.Second):
		t.Fatal("the sync holding the state file did not finish")
	}
	if first.Code == 0 {
		t.Fatalf("the sync that returned while the other held the file succeeded: %s", first)
	}
	if !strings.Contains(first.Stderr, "another crmsync process") || !strings.Contains(first.Stderr, e.state) {
		t.Errorf("the refused sync does not say another crmsync process holds %s: %s", e.state, first)
	}
	if second.Code != 0 {
		t.Fatalf("the sync holding the file failed: %s", second)
	}
	if c := counts(t, decodeSync(t, second.Stdout), bluerocktel.System); c.Created != seed {
		t.Errorf("bluerocktel created %d, want %d", c.Created, seed)
	}
	e.assertBlueRockTelHolds(t, seed, "")
	var opNames []string
	for _, p := range e.overplaneRecords() {
		opNames = append(opNames, p.Name)
	}
	if len(opNames) != e.tribeOrgCount() {
		t.Errorf("Overplane holds %d prospects, want %d", len(opNames), e.tribeOrgCount())
	}
	assertUniqueNames(t, "Overplane", opNames)
}

func TestValidateExampleConfigIsOK(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 1})
	res := e.cli("validate")
	if res.Code != 0 || res.Stdout != "ok\n" {
		t.Errorf("validate of the example config: %s", res)
	}
}

// lineOf returns the 1-based line of the first line of text containing s.
func lineOf(t *testing.T, text, s string) int {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	t.Fatalf("%q not found", s)
	return 0
}

// replaceOnce replaces the one occurrence of old in text.
func replaceOnce(t *testing.T, text, old, new string) string {
	t.Helper()
	if n := strings.Count(text, old); n != 1 {
		t.Fatalf("%q occurs %d times, want once", old, n)
	}
	return strings.Replace(text, old, new, 1)
}

// TestValidateReportsEveryConfigProblem: every problem of a broken config
// is printed with file:line, and the exit status is non-zero.
func TestValidateReportsEveryConfigProblem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 1})
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	text = replaceOnce(t, text, "level: info ", "level: loud ")
	text = replaceOnce(t, text, "page_size: 100        # per_page", "page_size: 5000       # per_page")
	text = replaceOnce(t, text, `schedule: "*/5 * * * *"`, `schedule: "every five minutes"`)
	text = replaceOnce(t, text, "policy: ignore ", "policy: purge  ")
	text = replaceOnce(t, text, "  - system: bluerocktel\n", "  - system: bluerock\n")
	// Accepted in silence before issue 11:
	text = replaceOnce(t, text, "listen: 127.0.0.1:9090 ", "listen: 127.0.0.1     ")
	text = replaceOnce(t, text, "burst: 10             # requests allowed", "burst: -1             # requests allowed")
	text = replaceOnce(t, text, "page_size: 100        # limit per page", "page_size: 0          # limit per page")
	e.writeConfig(text)
	res := e.cli("validate")
	if res.Code == 0 {
		t.Fatalf("validate accepted a broken config: %s", res)
	}
	for _, p := range []struct{ at, says string }{
		{"level: loud", `"loud"`},
		{"page_size: 5000", "5000"},
		{"every five minutes", "cron"},
		{"policy: purge", `"purge"`},
		{"system: bluerock\n", `"bluerock"`},
		{"listen: 127.0.0.1 ", "missing port"},
		{"burst: -1 ", "must not be negative"},
		{"page_size: 0 ", "expected 1..1000"},
	} {
		want := filepath.Base(e.cfgPath) + ":" + strconv.Itoa(lineOf(t, text, strings.TrimSuffix(p.at, "\n"))) + ":"
		found := false
		for _, l := range strings.Split(res.Stdout+res.Stderr, "\n") {
			if strings.Contains(l, want) && strings.Contains(l, p.says) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem reported at %s mentioning %s:\n%s", want, p.says, res)
		}
	}
}

// TestValidateReportsUnknownKeyAlongsideOtherProblems: a config with an
// unknown key and a bad value reports both.
func TestValidateReportsUnknownKeyAlongsideOtherProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 1})
	b, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	text := replaceOnce(t, string(b), "level: info ", "level: loud ")
	text = replaceOnce(t, text, "log:\n", "log:\n  colour: red\n")
	e.writeConfig(text)
	res := e.cli("validate")
	if res.Code == 0 {
		t.Fatalf("validate accepted a broken config: %s", res)
	}
	base := filepath.Base(e.cfgPath)
	for _, want := range []string{
		base + ":" + strconv.Itoa(lineOf(t, text, "colour: red")) + ":",
		base + ":" + strconv.Itoa(lineOf(t, text, "level: loud")) + ":",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("no problem reported at %s:\n%s", want, res)
		}
	}
}

// TestValidateReportsEveryMappingProblem: problems in two mapping files are
// all printed with the mapping's file:line.
func TestValidateReportsEveryMappingProblem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 1})
	mdir := filepath.Join(e.dir, "examples", "mappings")
	edit := func(file string, edits ...[2]string) string {
		p := filepath.Join(mdir, file)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for _, ed := range edits {
			text = replaceOnce(t, text, ed[0], ed[1])
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return text
	}
	blue := edit("bluerocktel.yaml",
		[2]string{"canonical: email\n", "canonical: e_mail\n"},
		[2]string{"  - native: phone\n", "  - native: phone\n    colour: red\n"},
		[2]string{"  - native: created_at\n    canonical: created_at\n    direction: inbound", "  - native: created_at\n    canonical: created_at\n    direction: sideways"},
	)
	op := edit("overplane.yaml", [2]string{"canonical: website", "canonical: web_site"})
	res := e.cli("validate")
	if res.Code == 0 {
		t.Fatalf("validate accepted broken mappings: %s", res)
	}
	for _, p := range []struct{ file, text, at, says string }{
		{"bluerocktel.yaml", blue, "canonical: e_mail", "e_mail"},
		{"bluerocktel.yaml", blue, "colour: red", "colour"},
		{"bluerocktel.yaml", blue, "direction: sideways", "sideways"},
		{"overplane.yaml", op, "canonical: web_site", "web_site"},
	} {
		want := p.file + ":" + strconv.Itoa(lineOf(t, p.text, p.at)) + ":"
		found := false
		for _, l := range strings.Split(res.Stdout+res.Stderr, "\n") {
			if strings.Contains(l, want) && strings.Contains(l, p.says) {
				found = true
			}
		}
		if !found {
			t.Errorf("no problem reported at %s mentioning %s:\n%s", want, p.says, res)
		}
	}
}

// TestEmptyStateFileIsTakenAsNew: a 0-byte state file (touched, or left by
// a first start that died at once) is a new state file for every command:
// status and plan used to fail with "bad file descriptor" (issue 11).
func TestEmptyStateFileIsTakenAsNew(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 5})
	if err := os.WriteFile(e.state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := e.cli("status"); r.Code != 0 || !strings.Contains(r.Stdout, "no state yet") {
		t.Fatalf("status on an empty state file: %s", r)
	}
	if r := e.cli("plan"); r.Code != 0 || !strings.Contains(r.Stdout, "create") {
		t.Fatalf("plan on an empty state file: %s", r)
	}
	if fi, err := os.Stat(e.state); err != nil || fi.Size() != 0 {
		t.Fatalf("plan or status wrote the state file: %v %v", fi, err)
	}
	res := e.sync()
	if c := counts(t, res, "bluerocktel"); c.Created != 5 {
		t.Fatalf("sync on an empty state file: %+v", c)
	}
	if r := e.cli("status"); r.Code != 0 || strings.Contains(r.Stdout, "no state yet") {
		t.Fatalf("status after the sync: %s", r)
	}
}

// TestValidateOnlineReadsEverySystem: `validate --online` makes one
// authenticated read of each system, so a refused token shows before a sync
// has something to write (issue 11: it went unnoticed while nothing needed
// writing), and the token never appears in what it prints.
func TestValidateOnlineReadsEverySystem(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 3})
	r := e.cli("validate", "--online")
	if r.Code != 0 || strings.Count(r.Stdout, "ok (answered in") != 3 {
		t.Fatalf("validate --online against healthy emulators: %s", r)
	}
	bad := newEnv(t, envOptions{Seed: 3, EmulatorToken: "server-token", ConfigToken: "wrong-token-1234"})
	r = bad.cli("validate", "--online")
	if r.Code != 1 || strings.Count(r.Stdout, "FAILED") != 3 || !strings.Contains(r.Stdout, "401") {
		t.Fatalf("validate --online with a refused token: %s", r)
	}
	if strings.Contains(r.Stdout+r.Stderr, "wrong-token-1234") {
		t.Fatalf("the token appears in the output:\n%s", r)
	}
	// `check` is the same online check, and says what to fix.
	r = bad.cli("check")
	if r.Code != 1 || strings.Count(r.Stdout, "fix: the credentials were refused") != 3 || strings.Contains(r.Stdout+r.Stderr, "wrong-token-1234") {
		t.Fatalf("check with a refused token: %s", r)
	}
	if r := e.cli("check"); r.Code != 0 || strings.Count(r.Stdout, "ok (answered in") != 3 {
		t.Fatalf("check against healthy emulators: %s", r)
	}
}

// TestValidateJSON: `validate --json` gives a pipeline every problem with
// its file and line, and the online check per system (issue 11).
func TestValidateJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 3})
	var out struct {
		OK       bool `json:"ok"`
		Problems []struct {
			File    string `json:"file"`
			Line    int    `json:"line"`
			Message string `json:"message"`
		} `json:"problems"`
		Systems []struct {
			System string `json:"system"`
			OK     bool   `json:"ok"`
		} `json:"systems"`
	}
	r := e.cli("validate", "--json", "--online")
	if err := json.Unmarshal([]byte(r.Stdout), &out); r.Code != 0 || err != nil || !out.OK || len(out.Systems) != 3 || len(out.Problems) != 0 {
		t.Fatalf("validate --json --online on a good config: %v %+v\n%s", err, out, r)
	}
	text, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	const good = "page_size: 100        # records asked for per page ($top)"
	e.writeConfig(replaceOnce(t, string(text), good, "page_size: 0"))
	r = e.cli("validate", "--json")
	out.OK, out.Problems = true, nil
	if err := json.Unmarshal([]byte(r.Stdout), &out); r.Code != 1 || err != nil || out.OK || len(out.Problems) != 1 ||
		out.Problems[0].Line != lineOf(t, string(text), good) || !strings.Contains(out.Problems[0].Message, "page_size 0") || out.Problems[0].File == "" {
		t.Fatalf("validate --json on a bad config: %v %+v\n%s", err, out, r)
	}
}
