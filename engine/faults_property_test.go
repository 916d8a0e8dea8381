package engine_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/funnel"
)

// The delivery guarantee as a property (issue 7): whatever faults the APIs
// produce while users edit the source, once the faults stop and a few clean
// runs have passed, every target holds exactly the source's records as the
// mappings project them, each once, nothing is owed and nothing is dead.
//
//	go test ./engine -run TestDeliveryUnderFaults                     short: 8 seeds
//	go test ./engine -run TestDeliveryUnderFaults -faults.long        200 seeds, more records and steps
//	go test ./engine -run TestDeliveryUnderFaults -faults.seed=12345  replay one seed
var (
	faultsLong  = flag.Bool("faults.long", false, "run the long version of the fault property test")
	faultsSeed  = flag.Uint64("faults.seed", 0, "replay the fault property test with this one seed")
	faultsSeeds = flag.Int("faults.seeds", 0, "number of seeds of the fault property test (default 8, 200 with -faults.long)")
)

// propertyFlow is the example configuration's flow.
const propertyFlow = `
  - name: tribecrm-to-others
    source: tribecrm
    match: [email, registration_number, vat_number, name]
    targets:
      - system: overplane
        filter:
          kinds: [organization]
      - system: bluerocktel
`

type faultRun struct {
	records, steps int
}

func TestDeliveryUnderFaults(t *testing.T) {
	t.Parallel()
	size := faultRun{records: 16, steps: 4}
	n := 8
	if *faultsLong {
		size, n = faultRun{records: 60, steps: 10}, 200
	}
	if *faultsSeeds > 0 {
		n = *faultsSeeds
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(20261202 + i*7919)
	}
	if *faultsSeed != 0 {
		seeds = []uint64{*faultsSeed}
	}
	// Each seed has its own emulators and state file, and spends most of
	// its time waiting (retry backoffs, hung requests), not computing: run
	// up to seedsAtOnce of them at a time, not -parallel (sized for tests
	// that compute) at a time.
	sem := make(chan struct{}, seedsAtOnce)
	var wg sync.WaitGroup
	for _, seed := range seeds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				ok := t.Run("run", func(t *testing.T) { deliveryUnderFaults(t, seed, size) })
				if !ok {
					t.Logf("replay: go test ./engine -run 'TestDeliveryUnderFaults/%d' -faults.seed=%d%s", seed, seed, map[bool]string{true: " -faults.long"}[*faultsLong])
				}
			})
		}()
	}
	wg.Wait()
}

// seedsAtOnce bounds how many seeds of TestDeliveryUnderFaults run at once.
const seedsAtOnce = 8

// faultMix draws a fault configuration: every kind the issue lists, before
// and after the server acted, at rates that add up to about 5-25 %.
func faultMix(rnd *rand.Rand) emukit.Faults {
	r := func(max float64) float64 { return rnd.Float64() * max }
	return emukit.Faults{
		Seed:           rnd.Uint64(),
		ErrorRate:      r(0.06),
		ResetRate:      r(0.04),
		AuthErrorRate:  r(0.03),
		BodyErrorRate:  r(0.03),
		HangRate:       r(0.01),
		HangFor:        150 * time.Millisecond,
		ActedResetRate: r(0.05),
		ActedErrorRate: r(0.04),
	}
}

func deliveryUnderFaults(t *testing.T, seed uint64, size faultRun) {
	rnd := rand.New(rand.NewPCG(seed, seed^0xfa17))
	conc := []int{1, 4}[rnd.IntN(2)]
	w := newWorld(t, worldOpts{tribe: size.records, flows: propertyFlow, concurrency: conc})
	ed := &editor{w: w, rnd: rnd}
	emus := map[string]interface{ SetFaults(emukit.Faults) }{
		"tribecrm": w.srv.TribeCRM, "overplane": w.srv.Overplane, "bluerocktel": w.srv.BlueRockTel}
	setFaults := func(on bool) {
		for _, name := range []string{"tribecrm", "overplane", "bluerocktel"} {
			f := emukit.Faults{}
			if on {
				f = faultMix(rnd)
			}
			emus[name].SetFaults(f)
		}
	}
	var log []string
	for step := 0; step < size.steps; step++ {
		setFaults(false) // users edit through a healthy API
		edits := ed.editProperty(1+rnd.IntN(5), seed, step)
		log = append(log, fmt.Sprintf("step %d: %s", step, edits))
		setFaults(true)
		for runs := 1 + rnd.IntN(2); runs > 0; runs-- {
			ctx := w.ctx
			var cancel context.CancelFunc = func() {}
			what := "run"
			if rnd.IntN(5) == 0 { // a run cut short, as by a stop or a crash
				d := time.Duration(5+rnd.IntN(60)) * time.Millisecond
				ctx, cancel = context.WithTimeout(w.ctx, d)
				what = fmt.Sprintf("run cut after %s", d)
			}
			if rnd.IntN(6) == 0 { // a target's token refused for the whole run
				sys := []string{"overplane", "bluerocktel"}[rnd.IntN(2)]
				emus[sys].SetFaults(emukit.Faults{AuthErrorRate: 1})
				what += ", " + sys + " refusing the token"
			}
			res, err := w.eng.Run(ctx, w.flow("tribecrm-to-others"), engine.RunOptions{Mode: engine.ModeSync})
			cancel()
			log = append(log, fmt.Sprintf("  %s: %s", what, summarise(res, err)))
			setFaults(true)
			if rnd.IntN(4) == 0 {
				w.reopen() // a restart between runs
				log = append(log, "  restart")
			}
		}
	}
	setFaults(false)
	// At least two clean runs: the first may only finish a TribeCRM pass a
	// faulty run left half done (it resumes at the entity set where that
	// one stopped), so edits made meanwhile to sets earlier in the pass are
	// read by the next pass, not lost. Then runs until one writes nothing.
	var last *engine.Result
	for i := 0; i < 4; i++ {
		res, err := w.eng.Run(w.ctx, w.flow("tribecrm-to-others"), engine.RunOptions{Mode: engine.ModeSync})
		log = append(log, fmt.Sprintf("clean run %d: %s", i+1, summarise(res, err)))
		last = res
		if i >= 1 && err == nil && writes(res) == 0 && len(res.Undelivered) == 0 {
			break
		}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
	}
	if last.Error != "" || writes(last) != 0 || len(last.Undelivered) != 0 {
		fail("four clean runs did not settle: last run %s", summarise(last, nil))
	}
	plan := w.runFlow(w.flow("tribecrm-to-others"), engine.RunOptions{Mode: engine.ModePlan})
	if len(plan.Plan) != 0 || len(plan.Undelivered) != 0 {
		fail("plan after the clean runs: %d changes %v, owed %+v", len(plan.Plan), plan.Plan, plan.Undelivered)
	}
	if dls, _ := w.st.DeadLetters(""); len(dls) > 0 {
		for _, d := range dls {
			fail("dead letter %s (%d attempts): %s", d.Key, d.Attempts, d.Error)
		}
	}
	for _, tg := range w.flow("tribecrm-to-others").Targets {
		w.checkProjection("tribecrm", tg)
	}
	if t.Failed() {
		t.Logf("seed %d, write_concurrency %d; what happened:\n%s", seed, conc, strings.Join(log, "\n"))
		for _, name := range []string{"tribecrm", "overplane", "bluerocktel"} {
			t.Logf("%s faults injected: %v", name, injected(w, name))
		}
	}
}

func injected(w *world, system string) map[string]int {
	switch system {
	case "tribecrm":
		return w.srv.TribeCRM.Injected()
	case "overplane":
		return w.srv.Overplane.Injected()
	}
	return w.srv.BlueRockTel.Injected()
}

func summarise(res *engine.Result, err error) string {
	if res == nil {
		return fmt.Sprintf("no result (%v)", err)
	}
	var b strings.Builder
	for _, sys := range []string{"tribecrm", "overplane", "bluerocktel"} {
		if c := res.Systems[sys]; c != nil {
			fmt.Fprintf(&b, "%s pulled %d created %d linked %d updated %d converted %d failed %d; ", sys, c.Pulled, c.Created, c.Linked, c.Updated, c.Converted, c.Failed)
		}
	}
	fmt.Fprintf(&b, "owed %d", len(res.Undelivered))
	if err != nil {
		fmt.Fprintf(&b, "; error: %v", err)
	}
	return b.String()
}

// editProperty makes n random edits in TribeCRM as its users would: a new
// organisation or person, a rename, a contact field, a step forward in the
// funnel. It returns what it did.
func (e *editor) editProperty(n int, seed uint64, step int) string {
	var did []string
	for i := 0; i < n; i++ {
		switch e.rnd.IntN(4) {
		case 0:
			name := fmt.Sprintf("New %d-%d-%d BV", seed%100000, step, i)
			stage := tribeStages[e.rnd.IntN(len(tribeStages))]
			if e.rnd.IntN(3) == 0 {
				e.w.tribeCreatePerson(stage, map[string]any{"FirstName": "Fresh", "LastName": fmt.Sprintf("Person %d-%d-%d", seed%100000, step, i),
					"EmailAddress": fmt.Sprintf("p%d-%d-%d@example.com", seed%100000, step, i)})
				did = append(did, "new person at "+stage)
				continue
			}
			e.w.tribeCreateOrg(stage, map[string]any{"Name": name, "EmailAddress": fmt.Sprintf("n%d-%d-%d@example.com", seed%100000, step, i)})
			did = append(did, "new organisation at "+stage)
		case 1:
			orgs := e.orgs()
			if len(orgs) == 0 {
				continue
			}
			r := orgs[e.rnd.IntN(len(orgs))]
			e.w.tribeEditOrg(r, map[string]any{"Name": fmt.Sprintf("Renamed %d-%d-%d BV", seed%100000, step, i)})
			did = append(did, "rename "+r.ID)
		default:
			e.editTribe(1)
			did = append(did, "field edit or conversion")
		}
	}
	return strings.Join(did, ", ")
}

func (e *editor) orgs() []tribeRel {
	var out []tribeRel
	for _, r := range e.w.tribeAll() {
		if strings.HasPrefix(r.Set, "Relationship_Organization_") {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// tribeCreatePerson creates a person relationship at a stage through the API.
func (w *world) tribeCreatePerson(stage string, person map[string]any) tribeRel {
	w.t.Helper()
	rec, err := w.tribe.Create(w.ctx, connectors.Record{Entity: "Relationship_Person_CommercialRelationship_" + stage, Fields: map[string]any{
		"IsActive": true, "IsClosed": false, "Person": person}})
	if err != nil {
		w.t.Fatalf("create person in TribeCRM: %v", err)
	}
	return tribeRel{ID: rec.ID, Set: rec.Entity, Fields: rec.Fields}
}

// checkProjection compares a target with the source as the mappings project
// it: every source record the target's filter takes is in the target exactly
// once (the pair is found through the golden record's links, and each target
// record may pair with one source record only), the target holds nothing
// else, and every canonical field both mappings carry for the record's kind
// holds the same value on both sides.
func (w *world) checkProjection(source string, tg engine.Target) {
	w.t.Helper()
	views := w.views()
	links, err := w.st.Links(source)
	if err != nil {
		w.t.Fatal(err)
	}
	paired := map[string]string{}
	var problems []string
	for key, sv := range views[source] {
		if !tg.Accepts(sv) {
			continue
		}
		tkey := ""
		if id := links[key]; id != "" {
			if g, err := w.st.Record(id); err == nil && g != nil {
				tkey = g.Links[tg.System]
			}
		}
		tv := views[tg.System][tkey]
		if tv == nil {
			problems = append(problems, fmt.Sprintf("missing: %s %s (%s) has no record in %s", source, key, sv.Str(funnel.FieldName)+sv.Str(funnel.FieldLastName), tg.System))
			continue
		}
		if other, dup := paired[tkey]; dup {
			problems = append(problems, fmt.Sprintf("%s %s stands for both %s and %s", tg.System, tkey, other, key))
		}
		paired[tkey] = key
		for _, f := range funnel.FieldNames() {
			if f == funnel.FieldCreatedAt || f == funnel.FieldUpdatedAt || f == funnel.FieldKind ||
				!carries(w.sys[source].Map, f, sv) || !carries(w.sys[tg.System].Map, f, sv) {
				continue
			}
			if f == funnel.FieldStage && tg.System == "overplane" {
				continue // Overplane has no stage
			}
			a, b := fmt.Sprint(sv.Fields[f]), fmt.Sprint(tv.Fields[f])
			if f == funnel.FieldAddressCountry && tg.System == "bluerocktel" && sv.Fields[f] == nil && b == "France" {
				continue // BlueRockTel fills in France when no country is sent
			}
			if a != b {
				problems = append(problems, fmt.Sprintf("%s %s: %s is %q in %s, %q in %s %s", source, key, f, a, source, b, tg.System, tkey))
			}
		}
	}
	for tkey := range views[tg.System] {
		if _, ok := paired[tkey]; !ok {
			problems = append(problems, fmt.Sprintf("extra: %s %s (%v) stands for no source record (a duplicate?)", tg.System, tkey, views[tg.System][tkey].Fields[funnel.FieldName]))
		}
	}
	sort.Strings(problems)
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("... %d problems in all", len(problems)))
	}
	if len(problems) > 0 {
		w.t.Errorf("%s differs from the source's projection:\n%s", tg.System, strings.Join(problems, "\n"))
	}
}

// A plan lists each change once, though a pass reads a new TribeCRM record
// twice (its funnel set, and the relation step that sees its new
// organisation). Found by the long property run: the second sighting got a
// second canonical id, so the plan showed two creates per target and a dead
// letter for reading the first one's "(new)" record.
func TestPlanListsARecordSeenTwiceOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 6, flows: propertyFlow})
	w.run("tribecrm-to-others")
	w.tribeCreateOrg("HotProspect", map[string]any{"Name": "Seen Twice BV", "EmailAddress": "twice@example.com"})
	plan := w.runFlow(w.flow("tribecrm-to-others"), engine.RunOptions{Mode: engine.ModePlan})
	ops := map[string]int{}
	for _, ch := range plan.Plan {
		if ch.Name == "Seen Twice BV" || ch.Op == "dead-letter" {
			ops[ch.Target+" "+string(ch.Op)]++
		}
	}
	want := map[string]int{"overplane create": 1, "bluerocktel create": 1}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Fatalf("plan for one new record: %v, want %v (all changes: %+v)", ops, want, plan.Plan)
	}
	res := w.run("tribecrm-to-others")
	if c := counts(res, "bluerocktel"); c.Created != 1 {
		t.Fatalf("the sync after the plan: %+v, want 1 create", c)
	}
}
