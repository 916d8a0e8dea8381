package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/cli"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/tribecrm"
)

// TestSyncLifecycle walks the main job of issue 2 on one set of emulators:
// a first sync creates every record once, a second makes no write, and an
// edit at the source makes exactly one update in each target holding it.
func TestSyncLifecycle(t *testing.T) {
	t.Parallel()
	const seed = 30
	e := newEnv(t, envOptions{Seed: seed})
	orgs := e.tribeOrgs()
	if len(orgs) != e.tribeOrgCount() || len(orgs) == 0 || len(orgs) == seed {
		t.Fatalf("want a mix of organisations and persons in TribeCRM: API lists %d organisations, emulator holds %d, seed %d", len(orgs), e.tribeOrgCount(), seed)
	}
	persons := e.srv.TribeCRM.Len() - len(orgs)

	ok := t.Run("first sync creates each record exactly once", func(t *testing.T) {
		res := e.cli("sync", "--json")
		if res.Code != 0 {
			t.Fatalf("sync: %s", res)
		}
		// One JSON object, with per flow and per system every count.
		var raw map[string]map[string]struct {
			Systems map[string]map[string]json.Number `json:"systems"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &raw); err != nil {
			t.Fatalf("stdout is not one JSON object: %v\n%s", err, res.Stdout)
		}
		for _, sys := range []string{tribecrm.System, "overplane", bluerocktel.System} {
			c, ok := raw["flows"][flowName].Systems[sys]
			if !ok {
				t.Fatalf("no counts for %s in %s", sys, res.Stdout)
			}
			for _, k := range []string{"pulled", "created", "updated", "unchanged", "failed"} {
				if _, ok := c[k]; !ok {
					t.Errorf("counts of %s lack %q: %v", sys, k, c)
				}
			}
		}
		r := decodeSync(t, res.Stdout)
		if r.Error != "" {
			t.Errorf("flow error: %s", r.Error)
		}
		if c := counts(t, r, tribecrm.System); c.Pulled != seed || c.Failed != 0 {
			t.Errorf("tribecrm: pulled %d failed %d, want %d and 0", c.Pulled, c.Failed, seed)
		}
		if c := counts(t, r, bluerocktel.System); c.Created != seed || c.Updated != 0 || c.Failed != 0 {
			t.Errorf("bluerocktel counts %+v, want %d created", c, seed)
		}
		if c := counts(t, r, "overplane"); c.Created != len(orgs) || c.Skipped != persons || c.Failed != 0 {
			t.Errorf("overplane counts %+v, want %d created (organisations) and %d skipped (persons)", c, len(orgs), persons)
		}

		blue := e.blueRecords()
		if len(blue) != seed {
			t.Errorf("BlueRockTel holds %d records, want %d", len(blue), seed)
		}
		var blueNames []string
		for _, b := range blue {
			blueNames = append(blueNames, b.Name)
		}
		assertUniqueNames(t, "BlueRockTel", blueNames)
		op := e.overplaneRecords()
		if len(op) != len(orgs) {
			t.Errorf("Overplane holds %d prospects, want %d (one per organisation)", len(op), len(orgs))
		}
		var opNames []string
		inOverplane := map[string]bool{}
		for _, p := range op {
			opNames = append(opNames, p.Name)
			inOverplane[p.Name] = true
		}
		assertUniqueNames(t, "Overplane", opNames)
		inBlue := map[string]bool{}
		for _, n := range blueNames {
			inBlue[n] = true
		}
		for _, o := range orgs {
			if !inOverplane[o.Name] || !inBlue[o.Name] {
				t.Errorf("organisation %q: in Overplane %v, in BlueRockTel %v; want both", o.Name, inOverplane[o.Name], inBlue[o.Name])
			}
		}
	})
	if !ok {
		return
	}

	ok = t.Run("second sync with nothing changed writes nothing", func(t *testing.T) {
		before := e.writes()
		blueBefore := e.blueRecords()
		opBefore := e.overplaneRecords()
		r := e.sync()
		for _, sys := range []string{"overplane", bluerocktel.System} {
			if c := counts(t, r, sys); c.Writes() != 0 || c.Failed != 0 {
				t.Errorf("%s counts %+v, want no write and no failure", sys, c)
			}
		}
		if after := e.writes(); after != before {
			t.Errorf("emulators received writes: before %+v, after %+v", before, after)
		}
		if got := e.blueRecords(); fmt.Sprint(got) != fmt.Sprint(blueBefore) {
			t.Errorf("BlueRockTel records changed:\nbefore %v\nafter  %v", blueBefore, got)
		}
		if got := e.overplaneRecords(); fmt.Sprint(got) != fmt.Sprint(opBefore) {
			t.Errorf("Overplane records changed:\nbefore %v\nafter  %v", opBefore, got)
		}
	})
	if !ok {
		return
	}

	target := orgs[len(orgs)/2]
	ok = t.Run("renaming an organisation updates it once in each target", func(t *testing.T) {
		newName := target.Name + " Holding"
		if st, b := e.api(tribecrm.System, http.MethodPut, "/v1/odata/"+tribecrm.SetOrganization+"("+target.OrgID+")", map[string]any{"Name": newName}); st != http.StatusOK {
			t.Fatalf("PUT organisation: %d %s", st, b)
		}
		before := e.writes()
		r := e.sync()
		for _, sys := range []string{"overplane", bluerocktel.System} {
			if c := counts(t, r, sys); c.Updated != 1 || c.Created != 0 || c.Converted != 0 || c.Failed != 0 {
				t.Errorf("%s counts %+v, want exactly 1 update", sys, c)
			}
		}
		bw := e.srv.BlueRockTel.Writes()[before.bluerocktel:]
		ow := e.srv.Overplane.Writes()[before.overplane:]
		if len(bw) != 1 || len(ow) != 1 {
			t.Fatalf("writes after the rename: BlueRockTel %v, Overplane %v; want exactly one each", bw, ow)
		}
		// The new name is visible through each target's API.
		var blue map[string]any
		e.getJSON(bluerocktel.System, bw[0].Path, &blue)
		if blue["name"] != newName {
			t.Errorf("BlueRockTel GET %s: name %v, want %q", bw[0].Path, blue["name"], newName)
		}
		var op map[string]any
		e.getJSON("overplane", ow[0].Path, &op)
		if data, ok := op["data"].(map[string]any); ok {
			op = data
		}
		if op["company_name"] != newName {
			t.Errorf("Overplane GET %s: company_name %v, want %q", ow[0].Path, op["company_name"], newName)
		}
		var names []string
		for _, b := range e.blueRecords() {
			names = append(names, b.Name)
			if b.Name == target.Name {
				t.Errorf("BlueRockTel still holds the old name %q", target.Name)
			}
		}
		assertUniqueNames(t, "BlueRockTel", names)
		if n := len(names); n != seed {
			t.Errorf("BlueRockTel holds %d records after the rename, want %d", n, seed)
		}
	})
	if !ok {
		return
	}

	ok = t.Run("changing IsActive on the relationship updates BlueRockTel only", func(t *testing.T) {
		// IsActive maps to canonical active, which BlueRockTel maps and
		// Overplane does not.
		want := !target.IsActive
		if st, b := e.api(tribecrm.System, http.MethodPut, "/v1/odata/"+target.Set+"("+target.RelID+")", map[string]any{"IsActive": want}); st != http.StatusOK {
			t.Fatalf("PUT relationship: %d %s", st, b)
		}
		before := e.writes()
		r := e.sync()
		if c := counts(t, r, bluerocktel.System); c.Updated != 1 || c.Created != 0 || c.Failed != 0 {
			t.Errorf("bluerocktel counts %+v, want exactly 1 update", c)
		}
		if c := counts(t, r, "overplane"); c.Writes() != 0 || c.Failed != 0 {
			t.Errorf("overplane counts %+v, want no write (it does not map active)", c)
		}
		bw := e.srv.BlueRockTel.Writes()[before.bluerocktel:]
		if len(bw) != 1 {
			t.Fatalf("BlueRockTel writes: %v, want exactly one", bw)
		}
		if n := len(e.srv.Overplane.Writes()) - before.overplane; n != 0 {
			t.Errorf("Overplane received %d writes, want 0", n)
		}
		var blue map[string]any
		e.getJSON(bluerocktel.System, bw[0].Path, &blue)
		if blue["active"] != want {
			t.Errorf("BlueRockTel GET %s: active %v, want %v", bw[0].Path, blue["active"], want)
		}
	})
	if !ok {
		return
	}

	t.Run("changing IsClosed, which no target maps, writes nothing", func(t *testing.T) {
		if st, b := e.api(tribecrm.System, http.MethodPut, "/v1/odata/"+target.Set+"("+target.RelID+")", map[string]any{"IsClosed": !target.IsClosed}); st != http.StatusOK {
			t.Fatalf("PUT relationship: %d %s", st, b)
		}
		before := e.writes()
		r := e.sync()
		for _, sys := range []string{"overplane", bluerocktel.System} {
			if c := counts(t, r, sys); c.Writes() != 0 || c.Failed != 0 {
				t.Errorf("%s counts %+v, want no write", sys, c)
			}
		}
		if after := e.writes(); after != before {
			t.Errorf("emulators received writes: before %+v, after %+v", before, after)
		}
	})
}

// TestRejectedRecordIsCountedAndFlowGoesOn: a record BlueRockTel refuses
// (a name of one character: 422) is counted failed, dead-lettered, and the
// other records of the run still sync.
func TestRejectedRecordIsCountedAndFlowGoesOn(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{Seed: 20})
	e.sync()
	orgs := e.tribeOrgs()
	bad, good := orgs[0], orgs[len(orgs)-1]
	goodName := good.Name + " International"
	for _, ed := range []struct {
		org  tribeOrg
		name string
	}{{bad, "Q"}, {good, goodName}} {
		if st, b := e.api(tribecrm.System, http.MethodPut, "/v1/odata/"+tribecrm.SetOrganization+"("+ed.org.OrgID+")", map[string]any{"Name": ed.name}); st != http.StatusOK {
			t.Fatalf("PUT organisation: %d %s", st, b)
		}
	}
	before := e.writes()
	res := e.cli("sync", "--json")
	if res.Code != cli.ExitUndelivered {
		t.Fatalf("a rejected record must not fail the run, but the exit status must say a write is owed (%d): %s", cli.ExitUndelivered, res)
	}
	r := decodeSync(t, res.Stdout)
	if r.Error != "" {
		t.Errorf("flow error %q, want none", r.Error)
	}
	if c := counts(t, r, bluerocktel.System); c.Failed != 1 || c.Updated != 1 {
		t.Errorf("bluerocktel counts %+v, want 1 failed (the one-character name) and 1 updated", c)
	}
	if c := counts(t, r, "overplane"); c.Updated+c.Failed != 2 {
		t.Errorf("overplane counts %+v, want both edits handled", c)
	}
	if n := len(e.srv.BlueRockTel.Writes()) - before.bluerocktel; n != 2 {
		t.Errorf("BlueRockTel received %d writes, want 2 (one refused, one accepted)", n)
	}
	names := map[string]int{}
	for _, b := range e.blueRecords() {
		names[b.Name]++
	}
	if names[goodName] != 1 || names[good.Name] != 0 {
		t.Errorf("BlueRockTel: %q ×%d, %q ×%d; want the accepted rename applied once", goodName, names[goodName], good.Name, names[good.Name])
	}
	if names[bad.Name] != 1 || names["Q"] != 0 {
		t.Errorf("BlueRockTel: %q ×%d, \"Q\" ×%d; want the refused record left as it was", bad.Name, names[bad.Name], names["Q"])
	}
	// The refusal is visible in status as a dead letter.
	st := e.status()
	if st.Flows[0].DeadLetters < 1 {
		t.Errorf("status shows %d dead letters, want the refused record", st.Flows[0].DeadLetters)
	}
	// The API's reason is kept with the dead letter and logged.
	dl := e.cli("deadletters", "list")
	if dl.Code != 0 || !strings.Contains(dl.Stdout, "422") || !strings.Contains(dl.Stdout, "bluerocktel") {
		t.Errorf("deadletters list does not show BlueRockTel's 422: %s", dl)
	}
	if !strings.Contains(res.Stderr, "at least 2 characters") {
		t.Errorf("the log does not say why the record was refused:\n%s", res.Stderr)
	}
}

// TestWrongTokenFailsWithAuthErrorAndNeverShowsToken: with a token the CRM
// refuses, the run fails and says it is an authentication problem, and the
// token appears nowhere in the output, not even at debug level.
func TestWrongTokenFailsWithAuthErrorAndNeverShowsToken(t *testing.T) {
	t.Parallel()
	const good, wrong = "emulator-Token-7c1e", "Wrong-Secret-Token-93ab5f"
	e := newEnv(t, envOptions{Seed: 5, EmulatorToken: good, ConfigToken: wrong})
	res := e.cli("sync", "--json", "--log-level", "debug")
	if res.Code == 0 {
		t.Fatalf("sync with a wrong token succeeded: %s", res)
	}
	out := res.Stdout + res.Stderr
	if !regexp.MustCompile(`(?i)\bauth|401|unauthori`).MatchString(out) {
		t.Errorf("the output does not say the credentials were refused:\n%s", res)
	}
	for _, secret := range []string{wrong, good} {
		if strings.Contains(out, secret) {
			t.Errorf("the output contains a token (%s…):\n%s", secret[:6], res)
		}
	}
	r := decodeSync(t, res.Stdout)
	if r.Error == "" {
		t.Errorf("sync --json shows no error for the flow: %s", res.Stdout)
	}
	if n := len(e.blueRecords()) + len(e.overplaneRecords()); n != 0 {
		t.Errorf("%d records were written despite the refused token", n)
	}
	st := e.cli("status", "--json")
	if st.Code != 0 {
		t.Fatalf("status: %s", st)
	}
	if strings.Contains(st.Stdout+st.Stderr, wrong) {
		t.Errorf("status shows the token:\n%s", st)
	}
	s := e.status()
	if s.Flows[0].LastRun == nil || s.Flows[0].LastRun.Error == "" {
		t.Errorf("status does not show the failed run's error: %+v", s.Flows[0].LastRun)
	}
}

// TestConcurrentFirstSyncIsRaceFree: a first sync with the example's
// write_concurrency (4 writes in flight per target) creates every record
// exactly once, without a data race.
func TestConcurrentFirstSyncIsRaceFree(t *testing.T) {
	t.Parallel()
	const seed = 40
	e := newEnv(t, envOptions{Seed: seed, ExampleConcurrency: true})
	r := e.sync()
	if c := counts(t, r, bluerocktel.System); c.Created != seed || c.Failed != 0 {
		t.Errorf("bluerocktel counts %+v, want %d created", c, seed)
	}
	e.assertBlueRockTelHolds(t, seed, "")
	if c := counts(t, r, "overplane"); c.Created != e.tribeOrgCount() {
		t.Errorf("overplane created %d, want %d", c.Created, e.tribeOrgCount())
	}
}
