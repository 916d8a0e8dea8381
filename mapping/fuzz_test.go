package mapping

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, and must
// either compile a mapping or report problems that each carry file:line.
func FuzzParse(f *testing.F) {
	for _, sys := range []string{"tribecrm", "bluerocktel", "overplane"} {
		data, err := os.ReadFile(filepath.Join("..", "examples", "mappings", sys+".yaml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	if data, err := os.ReadFile(filepath.Join("testdata", "features", "mapping.yaml")); err == nil {
		f.Add(data)
	}
	for _, tc := range parseErrorCases {
		f.Add([]byte(tc.yaml))
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("system: a\nrules:\n  - &r {canonical: kind, default: person}\n  - *r\n  - <<: *r\n    native: x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data)
		if err != nil {
			var es *Errors
			if !errors.As(err, &es) || len(*es) == 0 {
				t.Fatalf("error is %T %v, want a non-empty *Errors", err, err)
			}
			for _, e := range *es {
				if e.File != "f.yaml" || e.Line < 1 || e.Msg == "" {
					t.Fatalf("problem without file:line or message: %+v", e)
				}
			}
			if m != nil {
				t.Fatal("mapping returned along with an error")
			}
			return
		}
		// A mapping that compiled must be usable on any record.
		rec, err := m.Inbound(Native{Entity: "x", Fields: map[string]any{"a": "b"}})
		if err == nil {
			_, _ = m.Outbound(rec)
		}
		_, _ = m.Outbound(&funnel.Record{Fields: map[string]any{"kind": "person", "stage": "lead", "name": "x", "active": true}})
		for _, name := range funnel.FieldNames() {
			m.Carries(name)
			m.NativePath(name, funnel.Person)
		}
	})
}

// FuzzInbound feeds arbitrary JSON records to the example mappings: Inbound
// must never panic, must return either a valid record or *Errors, and a
// record it returns must map outbound without panicking.
func FuzzInbound(f *testing.F) {
	maps := []*Mapping{mustLoadExample(f, "tribecrm"), mustLoadExample(f, "bluerocktel"), mustLoadExample(f, "overplane")}
	files, _ := filepath.Glob(filepath.Join("testdata", "*", "native.json"))
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		var nj nativeJSON
		if err := json.Unmarshal(data, &nj); err != nil {
			f.Fatal(err)
		}
		fields, _ := json.Marshal(nj.Fields)
		f.Add(nj.Entity, fields)
	}
	f.Add("Relationship_Person_CommercialRelationship_Lead", []byte(`{"Person": "x", "IsActive": "maybe"}`))
	f.Add("prospects", []byte(`{"prospection_code_id": 1e400, "name": {"a": 1}}`))
	f.Fuzz(func(t *testing.T, entity string, data []byte) {
		var fields map[string]any
		if json.Unmarshal(data, &fields) != nil {
			return
		}
		for _, m := range maps {
			rec, err := m.Inbound(Native{Entity: entity, Fields: fields})
			if err != nil {
				var es *Errors
				if !errors.As(err, &es) || len(*es) == 0 {
					t.Fatalf("%s: error is %T %v, want *Errors", m.System, err, err)
				}
				continue
			}
			if !rec.Kind().Valid() {
				t.Fatalf("%s: record without a valid kind: %v", m.System, rec.Fields)
			}
			for name, v := range rec.Fields {
				if nv, err := funnel.Normalize(name, v); err != nil || nv != v {
					t.Fatalf("%s: field %s = %#v is not normalised (%v)", m.System, name, v, err)
				}
			}
			out, err := m.Outbound(rec)
			if err != nil {
				continue
			}
			if _, err := json.Marshal(out.Fields); err != nil {
				t.Fatalf("%s: outbound payload does not encode: %v", m.System, err)
			}
		}
	})
}
