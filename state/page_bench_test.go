package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
)

// The shapes below are copied from a state file written by `scripts/bench.sh`
// (TribeCRM → Overplane and BlueRockTel, a first sync): one golden record of
// sixteen fields whose values all came from the source, its three links, and
// three fingerprints (the source's read, each target's write).

const pageSize = 100

func realisticGolden(id string, i int, at time.Time) *funnel.Record {
	r := funnel.New(id)
	set := func(name string, v any) {
		r.Fields[name] = v
		r.Sources[name] = funnel.Source{System: "tribecrm", At: at}
	}
	r.Sources = map[string]funnel.Source{}
	set(funnel.FieldKind, "organization")
	set(funnel.FieldStage, "customer")
	set(funnel.FieldName, fmt.Sprintf("Bright River %d BV", i))
	set(funnel.FieldEmail, fmt.Sprintf("info@brightriver%dbv.example", i))
	set(funnel.FieldPhone, fmt.Sprintf("+31 20 000 %04d", i%10000))
	set(funnel.FieldWebsite, fmt.Sprintf("https://www.brightriver%dbv.example", i))
	set(funnel.FieldAddressLine1, "Hauptstraße 2")
	set(funnel.FieldAddressPostalCode, "44000")
	set(funnel.FieldAddressCity, "Nantes")
	set(funnel.FieldAddressCountry, "France")
	set(funnel.FieldActive, true)
	set(funnel.FieldClosed, false)
	set(funnel.FieldRegistrationNumber, fmt.Sprintf("1%07d", i))
	set(funnel.FieldVATNumber, fmt.Sprintf("NL1%08dB01", i))
	set(funnel.FieldCreatedAt, "2026-01-01T00:01:00Z")
	set(funnel.FieldUpdatedAt, "2026-01-01T00:01:00Z")
	return r
}

func realisticSourceFingerprint(g *funnel.Record, at time.Time) Fingerprint {
	p := map[string]any{"IsActive": true, "IsClosed": false, "Organization": map[string]any{
		"ChamberOfCommerceNumber": g.Fields[funnel.FieldRegistrationNumber], "EmailAddress": g.Fields[funnel.FieldEmail],
		"Name": g.Fields[funnel.FieldName], "PhoneNumber": g.Fields[funnel.FieldPhone], "VatNumber": g.Fields[funnel.FieldVATNumber],
		"VisitingAddress": map[string]any{"City": "Nantes", "Country": "France", "Postalcode": "44000", "Street": "Hauptstraße 2"},
		"Website":         g.Fields[funnel.FieldWebsite]}}
	return Fingerprint{Hash: funnel.FingerprintValues(p), Payload: p, Entity: "Relationship_Organization_CommercialRelationship_Customer",
		At: at, Source: FingerprintRead}
}

func realisticTargetPayloads(g *funnel.Record) (overplane, bluerocktel map[string]any) {
	overplane = map[string]any{"company": "Overplane Demo Ltd", "company_name": g.Fields[funnel.FieldName],
		"leads":   map[string]any{"0": map[string]any{"email": g.Fields[funnel.FieldEmail], "lead": "crmsync-contact"}},
		"website": g.Fields[funnel.FieldWebsite]}
	bluerocktel = map[string]any{"active": true, "email_address": g.Fields[funnel.FieldEmail], "main_address_city": "Nantes",
		"main_address_country": "France", "main_address_line1": "Hauptstraße 2", "main_address_postal_code": "44000",
		"name": g.Fields[funnel.FieldName], "phone": g.Fields[funnel.FieldPhone], "prospection_code_id": float64(5),
		"registration_number": g.Fields[funnel.FieldRegistrationNumber], "tax_registration_number": g.Fields[funnel.FieldVATNumber],
		"website": g.Fields[funnel.FieldWebsite]}
	return overplane, bluerocktel
}

// benchPage is one page of a first sync as the engine records it.
type benchPage struct {
	golden []*funnel.Record
	src    []Fingerprint
	opPay  []map[string]any
	brPay  []map[string]any
}

func newBenchPage(page int, at time.Time) *benchPage {
	p := &benchPage{}
	for i := 0; i < pageSize; i++ {
		n := page*pageSize + i
		g := realisticGolden(fmt.Sprintf("%08x-3b4d-4c5e-8f90-%012x", n*2654435761%(1<<32), n), n, at)
		g.Links["tribecrm"] = fmt.Sprintf("%08x-e313-4fb2-ad2e-%012x", n*40503%(1<<32), n)
		op, br := realisticTargetPayloads(g)
		p.golden = append(p.golden, g)
		p.src = append(p.src, realisticSourceFingerprint(g, at))
		p.opPay, p.brPay = append(p.opPay, op), append(p.brPay, br)
	}
	return p
}

// commitCreates records a page of creates the way the engine does: the
// write-ahead (golden records and create intents), then, once the creates
// are answered, the page commit (links, fingerprints, intents deleted,
// cursor).
func commitCreates(tb testing.TB, s *Store, p *benchPage, page int, at time.Time) {
	var intents []Intent
	var pre Batch
	for i, g := range p.golden {
		pre.PutRecord(g)
		intents = append(intents,
			Intent{ID: g.ID, System: "overplane", Entity: "prospect", Match: map[string]string{"email": g.Str(funnel.FieldEmail)},
				Payload: p.opPay[i], Flow: "tribecrm-to-others", At: at},
			Intent{ID: g.ID, System: "bluerocktel", Entity: "customers", Match: map[string]string{"email": g.Str(funnel.FieldEmail)},
				Payload: p.brPay[i], Flow: "tribecrm-to-others", At: at})
	}
	writeAheadForBench(tb, s, &pre, intents)
	var b Batch
	for i, g := range p.golden {
		n := page*pageSize + i
		b.DeleteDeadLetter(DeadLetterKey(DeadLetter{Flow: "tribecrm-to-others", System: "tribecrm", SourceSystem: "tribecrm", SourceID: g.Links["tribecrm"]}))
		op, br := fmt.Sprintf("prospect_%016x", n), fmt.Sprintf("customers:%d", n)
		g.Links["overplane"], g.Links["bluerocktel"] = op, br
		for _, w := range []struct {
			sys, ext, entity string
			payload          map[string]any
		}{{"overplane", op, "prospect", p.opPay[i]}, {"bluerocktel", br, "customers", p.brPay[i]}} {
			b.Link(w.sys, w.ext, g.ID)
			b.PutFingerprint(w.sys, w.ext, Fingerprint{Hash: funnel.FingerprintValues(w.payload), Payload: w.payload, Entity: w.entity, At: at, Source: FingerprintWrite})
			b.DeleteDeadLetter(DeadLetterKey(DeadLetter{Flow: "tribecrm-to-others", System: w.sys, CanonicalID: g.ID}))
			b.DeleteIntent(w.sys, g.ID)
		}
		b.PutFingerprint("tribecrm", g.Links["tribecrm"], p.src[i])
		b.PutRecord(g)
	}
	b.SetCursor("flow/tribecrm-to-others/tribecrm", []byte(fmt.Sprintf(`{"v":1,"pos":{"t":"2026-01-02T00:20:00.000Z","page":%d}}`, page)))
	if err := s.Commit(&b); err != nil {
		tb.Fatal(err)
	}
}

// readForUpdate does the reads the engine does for a record it has seen
// before: link, golden record, source fingerprint, the two targets'
// delivery entries and fingerprints.
func readForUpdate(tb testing.TB, s *Store, p *benchPage) {
	for _, g := range p.golden {
		id, err := s.Link("tribecrm", g.Links["tribecrm"])
		if err != nil || id != g.ID {
			tb.Fatalf("link %q, %v", id, err)
		}
		if r, err := s.Record(id); err != nil || r == nil {
			tb.Fatalf("record %v, %v", r, err)
		}
		for _, sys := range []string{"tribecrm", "overplane", "bluerocktel"} {
			if f, err := s.Fingerprint(sys, g.Links[sys]); err != nil || f == nil {
				tb.Fatalf("fingerprint %s: %v, %v", sys, f, err)
			}
		}
		for _, sys := range []string{"overplane", "bluerocktel"} {
			if _, err := s.DeadLetter(DeadLetterKey(DeadLetter{Flow: "tribecrm-to-others", System: sys, CanonicalID: g.ID})); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// BenchmarkEnginePage measures the state work of one page of 100 realistic
// records (see newBenchPage) as the engine does it. "first-sync" is a
// backfill into two empty targets: write-ahead, then the page commit. One op
// is one page; besides ns/op, B/op and allocs/op it reports the state file
// per record: "file-B/record" (the file's length) and "used-B/record"
// (bbolt's high-water mark), both after every page of the run. "re-read" is
// the reads of an unchanged re-run of one page.
func BenchmarkEnginePage(b *testing.B) {
	at := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	b.Run("first-sync", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "bench.db")
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		pages := make([]*benchPage, b.N)
		for n := range pages {
			pages[n] = newBenchPage(n, at)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			commitCreates(b, s, pages[n], n, at)
		}
		b.StopTimer()
		reportSize(b, s, path, b.N*pageSize)
	})
	b.Run("re-read", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "bench.db")
		s, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		const stored = 20
		pages := make([]*benchPage, stored)
		for n := range pages {
			pages[n] = newBenchPage(n, at)
			commitCreates(b, s, pages[n], n, at)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			readForUpdate(b, s, pages[n%stored])
		}
	})
}

func reportSize(b *testing.B, s *Store, path string, records int) {
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	var used int64
	if err := s.view(func(tx *bboltTx) error { used = tx.Size(); return nil }); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/float64(records), "file-B/record")
	b.ReportMetric(float64(used)/float64(records), "used-B/record")
}
