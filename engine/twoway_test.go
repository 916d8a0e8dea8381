package engine_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/overplane"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/mapping"
)

// meshFlows are the flows of examples/mesh.yaml.
const meshFlows = `
  - name: tribecrm-out
    source: tribecrm
    match: [email, registration_number, vat_number, name]
    targets:
      - system: overplane
        filter:
          kinds: [organization]
          stages: [prospect, customer]
      - system: bluerocktel
  - name: overplane-out
    source: overplane
    match: [email, name]
    targets:
      - system: tribecrm
      - system: bluerocktel
  - name: bluerocktel-out
    source: bluerocktel
    match: [email, registration_number, vat_number, name]
    targets:
      - system: tribecrm
      - system: overplane
        filter:
          kinds: [organization]
          stages: [prospect, customer]
`

// editor makes random edits through the CRMs' APIs, as their users would.
type editor struct {
	w   *world
	rnd *rand.Rand
	seq int
	// noContact leaves e-mail addresses and mobile numbers alone (see
	// TestOverplaneContactReachesAProspectWithoutContactRow).
	noContact bool
}

func (e *editor) value(kind string) string {
	e.seq++
	switch kind {
	case "phone":
		return fmt.Sprintf("+31 20 %03d %04d", e.seq/10000, e.seq%10000)
	case "website":
		return fmt.Sprintf("https://edit-%d.example", e.seq)
	case "email":
		return fmt.Sprintf("edit-%d@example.com", e.seq)
	}
	return fmt.Sprintf("City %d", e.seq)
}

// stages in funnel order, as TribeCRM spells them.
var tribeStages = []string{"Suspect", "Lead", "HotProspect", "Prospect", "Customer"}

// editTribe edits n random TribeCRM relationships: a field of the
// organisation or person, or (one time in five) a step forward in the funnel.
func (e *editor) editTribe(n int) {
	all := e.w.tribeAll()
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	for i := 0; i < n && len(all) > 0; i++ {
		pick := e.rnd.IntN(len(all))
		r := all[pick]
		if e.rnd.IntN(5) == 0 {
			fl, st, _ := parseSet(r.Set)
			if k := indexOf(tribeStages, st); k < len(tribeStages)-1 {
				to := "Relationship_" + fl + "_CommercialRelationship_" + tribeStages[k+1]
				if _, err := e.w.tribe.ConvertStage(e.w.ctx, r.Set, r.ID, to); err != nil {
					e.w.t.Fatalf("convert in TribeCRM: %v", err)
				}
				all[pick].Set = to // a later pick of the same record edits it where it is now
				continue
			}
		}
		nav := "Organization"
		fields := []string{"PhoneNumber", "Website", "EmailAddress"}
		if strings.HasPrefix(r.Set, "Relationship_Person_") {
			nav = "Person"
			fields = []string{"PhoneNumber", "MobilePhoneNumber", "EmailAddress"}
		}
		if e.noContact {
			fields = fields[:2]
			if nav == "Person" {
				fields = fields[:1]
			}
		}
		f := fields[e.rnd.IntN(len(fields))]
		kind := map[string]string{"PhoneNumber": "phone", "MobilePhoneNumber": "phone", "Website": "website", "EmailAddress": "email"}[f]
		if _, err := e.w.tribe.Update(e.w.ctx, r.Set, r.ID, map[string]any{nav: map[string]any{f: e.value(kind)}}); err != nil {
			e.w.t.Fatalf("edit in TribeCRM: %v", err)
		}
	}
}

// editBRT edits n random BlueRockTel records: a field, or (one time in
// five) the prospection code one step forward.
func (e *editor) editBRT(n int) {
	all := e.w.brtAll()
	sort.Slice(all, func(i, j int) bool { return all[i].Entity+all[i].ID < all[j].Entity+all[j].ID })
	for i := 0; i < n && len(all) > 0; i++ {
		r := all[e.rnd.IntN(len(all))]
		if e.rnd.IntN(5) == 0 && r.Entity == bluerocktel.EntityProspects {
			if code, _ := r.Fields["prospection_code_id"].(float64); code >= 1 && code < 4 {
				e.w.brtEdit(r.Entity, r.ID, map[string]any{"prospection_code_id": int(code) + 1})
				continue
			}
		}
		fields := []string{"phone", "website", "main_address_city", "email_address", "mobile_phone"}
		if e.noContact {
			fields = fields[:3]
		}
		f := fields[e.rnd.IntN(len(fields))]
		kind := map[string]string{"phone": "phone", "mobile_phone": "phone", "website": "website", "email_address": "email", "main_address_city": "city"}[f]
		e.w.brtEdit(r.Entity, r.ID, map[string]any{f: e.value(kind)})
	}
}

// editOverplane edits n random Overplane prospects' website.
func (e *editor) editOverplane(n int) {
	ids := e.w.srv.Overplane.IDs()
	sort.Strings(ids)
	for i := 0; i < n && len(ids) > 0; i++ {
		id := ids[e.rnd.IntN(len(ids))]
		if _, err := e.w.op.Update(e.w.ctx, overplane.EntityProspect, id, map[string]any{"website": e.value("website")}); err != nil {
			e.w.t.Fatalf("edit in Overplane: %v", err)
		}
	}
}

func parseSet(set string) (flavour, stage string, ok bool) {
	rest, ok := strings.CutPrefix(set, "Relationship_")
	if !ok {
		return "", "", false
	}
	flavour, stage, ok = strings.Cut(rest, "_CommercialRelationship_")
	return flavour, stage, ok
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// views reads every record of the three systems through their APIs and
// maps it to the canonical model, keyed like state's links.
func (w *world) views() map[string]map[string]*funnel.Record {
	w.t.Helper()
	out := map[string]map[string]*funnel.Record{"tribecrm": {}, "bluerocktel": {}, "overplane": {}}
	for _, r := range pullAll(w.t, w.ctx, w.tribe) {
		out["tribecrm"][w.sys["tribecrm"].Key(r)] = w.view("tribecrm", r.Entity, r.Fields)
	}
	for _, r := range pullAll(w.t, w.ctx, w.brt) {
		out["bluerocktel"][w.sys["bluerocktel"].Key(r)] = w.view("bluerocktel", r.Entity, r.Fields)
	}
	for _, r := range pullAll(w.t, w.ctx, w.op) {
		out["overplane"][w.sys["overplane"].Key(r)] = w.view("overplane", r.Entity, r.Fields)
	}
	return out
}

func (w *world) view(system, entity string, fields map[string]any) *funnel.Record {
	rec := funnel.New("")
	rec.Fields = w.canonical(system, entity, fields)
	return rec
}

// checkConverged asserts that every golden record's linked records hold
// equal values for every canonical field both systems' mappings carry, that
// every record of the given systems is linked to exactly one golden record,
// and that no golden record lacks a system its flows should have reached.
func (w *world) checkConverged(systems ...string) {
	w.t.Helper()
	if dls, _ := w.st.DeadLetters(""); len(dls) > 0 {
		for _, d := range dls {
			w.t.Errorf("dead letter %s (%d attempts): %s", d.Key, d.Attempts, d.Error)
		}
	}
	views := w.views()
	ids := map[string]bool{}
	for _, sys := range systems {
		links, err := w.st.Links(sys)
		if err != nil {
			w.t.Fatal(err)
		}
		for key, id := range links {
			ids[id] = true
			if views[sys][key] == nil {
				w.t.Errorf("%s %s is linked but does not exist", sys, key)
			}
		}
		twins := map[string]string{}
		for key := range views[sys] {
			id := links[key]
			if id == "" {
				w.t.Errorf("%s %s is linked to no golden record (a duplicate, or never synced)", sys, key)
				continue
			}
			if other, dup := twins[id]; dup {
				w.t.Errorf("%s holds golden record %s twice: %s and %s", sys, id, other, key)
			}
			twins[id] = key
		}
	}
	mismatches := 0
	for _, id := range sortedKeys(ids) {
		g, err := w.st.Record(id)
		if err != nil || g == nil {
			w.t.Fatalf("golden record %s: %v", id, err)
		}
		for i, a := range systems {
			for _, b := range systems[i+1:] {
				ka, kb := g.Links[a], g.Links[b]
				if ka == "" || kb == "" {
					continue
				}
				va, vb := views[a][ka], views[b][kb]
				if va == nil || vb == nil {
					continue
				}
				for _, f := range funnel.FieldNames() {
					if f == funnel.FieldCreatedAt || f == funnel.FieldUpdatedAt || f == funnel.FieldKind ||
						!carries(w.sys[a].Map, f, va) || !carries(w.sys[b].Map, f, vb) {
						continue
					}
					if f == funnel.FieldStage && (a == "overplane" || b == "overplane") {
						continue // Overplane has no stage: a constant prospect
					}
					x, y := fmt.Sprint(va.Fields[f]), fmt.Sprint(vb.Fields[f])
					if x != y {
						mismatches++
						if mismatches <= 10 {
							w.t.Errorf("golden %s: %s in %s %s is %q, in %s %s %q", id, f, a, ka, x, b, kb, y)
						}
					}
				}
			}
		}
	}
	if mismatches > 10 {
		w.t.Errorf("... %d field mismatches in all", mismatches)
	}
}

// carries reports whether a mapping carries a canonical field for a
// record of that kind (TribeCRM carries mobile only for persons, ...).
func carries(m *mapping.Mapping, field string, rec *funnel.Record) bool {
	if !m.Carries(field) {
		return false
	}
	if _, ok := m.NativePath(field, rec.Kind()); ok {
		return true
	}
	// Fields set by value maps or constants (stage, kind) have no path.
	return field == funnel.FieldStage
}

func TestTwoWayTribeBlueRockTelConvergesUnderRandomEdits(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 30, others: 6, flows: twoWay})
	initial := w.runAll()
	ed := &editor{w: w, rnd: rand.New(rand.NewPCG(20260401, 4))}
	var perRound []int
	for round := 0; round < 20; round++ {
		ed.editTribe(3)
		ed.editBRT(3)
		perRound = append(perRound, w.runAll())
	}
	quiet := w.runAll()
	t.Logf("writes: initial %d; per round with 3+3 random edits %v; round without edits %d", initial, perRound, quiet)
	if quiet != 0 {
		t.Errorf("a round without edits made %d writes (echoes or a loop)", quiet)
	}
	for i, n := range perRound {
		if n > 6*2 {
			t.Errorf("round %d made %d writes for 6 edits", i+1, n)
		}
	}
	if n := w.srv.TribeCRM.Len(); n != 36 {
		t.Errorf("TribeCRM holds %d records, want 36 (30 + 6 from BlueRockTel)", n)
	}
	if n := w.brtTotal(); n != 36 {
		t.Errorf("BlueRockTel holds %d records, want 36 (6 + 30 from TribeCRM)", n)
	}
	w.checkConverged("tribecrm", "bluerocktel")
}

func TestMeshOfThreeConvergesUnderRandomEdits(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{tribe: 20, others: 4, flows: meshFlows})
	initial := w.runAll()
	ed := &editor{w: w, rnd: rand.New(rand.NewPCG(20260402, 9))}
	var perRound []int
	for round := 0; round < 20; round++ {
		ed.editTribe(2)
		ed.editBRT(2)
		ed.editOverplane(1)
		perRound = append(perRound, w.runAll())
	}
	quiet := w.runAll()
	t.Logf("mesh writes: initial %d; per round with 2+2+1 random edits %v; round without edits %d", initial, perRound, quiet)
	if quiet != 0 {
		t.Errorf("a round without edits made %d writes (echoes or a loop)", quiet)
	}
	if n := w.srv.TribeCRM.Len(); n != 28 {
		t.Errorf("TribeCRM holds %d records, want 28 (20 + 4 + 4)", n)
	}
	if n := w.brtTotal(); n != 28 {
		t.Errorf("BlueRockTel holds %d records, want 28", n)
	}
	w.checkConverged("tribecrm", "bluerocktel", "overplane")
}

func TestOverplaneContactReachesAProspectWithoutContactRow(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{flows: `
  - name: o2b
    source: overplane
    targets:
      - system: bluerocktel
  - name: b2o
    source: bluerocktel
    targets:
      - system: overplane
`})
	p, err := w.op.Create(w.ctx, connectors.Record{Entity: overplane.EntityProspect, Fields: map[string]any{
		"company_name": "No Contact Ltd", "company": "Overplane Demo Ltd", "website": "https://nocontact.example"}})
	if err != nil {
		t.Fatal(err)
	}
	w.runAll()
	key := w.linkOf("overplane", p.ID, "bluerocktel")
	bid, ok := strings.CutPrefix(key, "prospects:")
	if !ok {
		t.Fatalf("not in BlueRockTel: %q", key)
	}
	w.brtEdit("prospects", bid, map[string]any{"mobile_phone": "+31 6 1234 5678"})
	w.runAll()
	w.runAll()
	got, err := w.op.Get(w.ctx, overplane.EntityProspect, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	mobile := w.canonical("overplane", got.Entity, got.Fields)["mobile"]
	if mobile != "+31 6 1234 5678" {
		dls, _ := w.st.DeadLetters("b2o")
		msg := ""
		if len(dls) > 0 {
			msg = dls[0].Error
		}
		t.Errorf("a mobile number edited in BlueRockTel never reaches an Overplane prospect that has no contact row: Overplane mobile %v, "+
			"%d dead letter(s): %s. The engine's last-known payload for a record it read is Outbound(view), which includes the constant "+
			"leads.0.lead although the prospect has no lead row, so the diff omits it and Overplane refuses the new row (lead is required); see report", mobile, len(dls), msg)
	}
}
