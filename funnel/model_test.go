package funnel

import "testing"

func TestStagesAreOrdered(t *testing.T) {
	st := Stages()
	for i := 1; i < len(st); i++ {
		if !st[i-1].Before(st[i]) || st[i].Before(st[i-1]) {
			t.Fatalf("%s should come before %s", st[i-1], st[i])
		}
	}
	if Stage("hotprospect").Valid() || !HotProspect.Valid() {
		t.Fatal("stage validity wrong")
	}
}

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		field string
		in    any
		want  any
	}{
		{FieldName, "  Acme  ", "Acme"},
		{FieldActive, "true", true},
		{FieldActive, 0.0, false},
		{FieldPhone, 31.0, "31"},
		{FieldUpdatedAt, "2026-01-02T03:04:05.5+02:00", "2026-01-02T01:04:05.5Z"},
		{FieldUpdatedAt, "2026-01-02 03:04:05", "2026-01-02T03:04:05Z"},
		{FieldStage, "prospect", "prospect"},
	} {
		got, err := Normalize(tc.field, tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Normalize(%s, %v) = %v, %v; want %v", tc.field, tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []struct {
		field string
		in    any
	}{{FieldStage, "hot prospect"}, {FieldKind, "company"}, {FieldActive, "maybe"}, {"emial", "x"}, {FieldCreatedAt, "yesterday"}} {
		if _, err := Normalize(bad.field, bad.in); err == nil {
			t.Errorf("Normalize(%s, %v) should fail", bad.field, bad.in)
		}
	}
}

func TestFingerprintIgnoresTimestampsAndIdentity(t *testing.T) {
	a, b := New("a"), New("b")
	for _, r := range []*Record{a, b} {
		_ = r.Set(FieldKind, "organization")
		_ = r.Set(FieldName, "Acme")
	}
	_ = a.Set(FieldUpdatedAt, "2026-01-01T00:00:00Z")
	b.Links["tribecrm"] = "x"
	if a.Fingerprint() != b.Fingerprint() {
		t.Fatal("same content, different fingerprints")
	}
	_ = b.Set(FieldName, "Acme BV")
	if a.Fingerprint() == b.Fingerprint() {
		t.Fatal("different content, same fingerprint")
	}
}

func TestPersonNameIsDerived(t *testing.T) {
	r := New("p")
	_ = r.Set(FieldKind, "person")
	_ = r.Set(FieldFirstName, "Anna")
	_ = r.Set(FieldLastName, "de Vries")
	r.Complete()
	if r.Str(FieldName) != "Anna de Vries" {
		t.Fatalf("name = %q", r.Str(FieldName))
	}
}

func TestNumberFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   any
		want any
		bad  bool
	}{
		{2500000.0, 2500000.0, false}, {"1250000.50", 1250000.5, false}, {12, 12.0, false},
		{int64(7), 7.0, false}, {" 42 ", 42.0, false}, {"1,5", nil, true}, {"lots", nil, true}, {true, nil, true},
	} {
		got, err := Normalize(FieldRevenue, tc.in)
		if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
			t.Errorf("Normalize(revenue, %#v) = %#v, %v; want %#v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
