package mapping

import (
	"strings"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

func TestOwnerMarksFieldsThisSystemWins(t *testing.T) {
	t.Parallel()
	m, err := Parse("m.yaml", []byte(`system: tribecrm
rules:
  - canonical: kind
    default: organization
  - native: Name
    canonical: name
  - native: Email
    canonical: email
    owner: true
`))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Owns("email") || m.Owns("name") {
		t.Fatalf("Owns(email)=%v Owns(name)=%v, want true false", m.Owns("email"), m.Owns("name"))
	}
	_, err = Parse("m.yaml", []byte(`system: tribecrm
rules:
  - canonical: kind
    default: organization
  - native: Email
    canonical: email
    direction: outbound
    owner: true
`))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:8: owner needs an inbound rule") {
		t.Fatalf("owner on an outbound-only rule: got %v", err)
	}
}

func TestOutboundValueMapFallsBackToDefault(t *testing.T) {
	t.Parallel()
	m := mustLoadExample(t, "bluerocktel")
	for stage, want := range map[funnel.Stage]string{funnel.Customer: "customers", funnel.Prospect: "prospects", funnel.Suspect: "prospects"} {
		r := funnel.New("x")
		_ = r.Set(funnel.FieldKind, "organization")
		_ = r.Set(funnel.FieldStage, string(stage))
		_ = r.Set(funnel.FieldName, "Acme")
		n, err := m.Outbound(r)
		if err != nil {
			t.Fatal(err)
		}
		if n.Entity != want {
			t.Errorf("stage %s written to %q, want %q", stage, n.Entity, want)
		}
	}
}

func TestNumericSegmentReadsListRows(t *testing.T) {
	t.Parallel()
	m := mustLoadExample(t, "overplane")
	rec, err := m.Inbound(Native{Entity: "prospect", Fields: map[string]any{
		"company_name": "Acme",
		"leads":        []any{map[string]any{"idx": 1.0, "email": "ann@acme.example", "mobile_no": "+31 6 1"}, map[string]any{"email": "second@acme.example"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Str("email") != "ann@acme.example" || rec.Str("mobile") != "+31 6 1" {
		t.Fatalf("first lead row not read: %v", rec.Fields)
	}
	rec, err = m.Inbound(Native{Entity: "prospect", Fields: map[string]any{"company_name": "Acme", "leads": []any{}}})
	if err != nil || rec.Str("email") != "" {
		t.Fatalf("no lead rows: email=%q err=%v, want absent and no error", rec.Str("email"), err)
	}
	if !m.UsesNative("leads") || m.UsesNative("opportunities") {
		t.Fatal("UsesNative wrong for the overplane example")
	}
}
