package mapping

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const lookupMapping = `system: bluerocktel
rules:
  - canonical: kind
    default: organization
  - native: representative_id
    canonical: owner
    type: integer
    lookup: lookups/users.yaml
`

// Issue 9 item 13: a lookup table lets an id cross systems: BlueRockTel's
// representative_id 7 is the owner jan@acme.example both ways, and a value
// the table lacks is an error for that record, never a silent drop.
func TestLookupTranslatesBothWays(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"m.yaml":             lookupMapping,
		"lookups/users.yaml": "# BlueRockTel user id: owner's e-mail\n7: jan@acme.example\n9: Eva@Acme.example\n",
	})
	m, err := Load(filepath.Join(dir, "m.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := m.Inbound(Native{Entity: "prospects", Fields: map[string]any{"representative_id": 7.0}})
	if err != nil || rec.Fields[funnel.FieldOwner] != "jan@acme.example" {
		t.Fatalf("inbound 7: %v %v", rec, err)
	}
	out, err := m.Outbound(&funnel.Record{Fields: map[string]any{"kind": "organization", "owner": "Eva@Acme.example"}})
	if err != nil || out.Fields["representative_id"] != 9.0 {
		t.Fatalf("outbound Eva: %v %v", out, err)
	}
	if _, err := m.Inbound(Native{Entity: "prospects", Fields: map[string]any{"representative_id": 8.0}}); err == nil || !strings.Contains(err.Error(), "8") {
		t.Errorf("an id the table lacks: %v; want an error naming it", err)
	}
	if _, err := m.Outbound(&funnel.Record{Fields: map[string]any{"kind": "organization", "owner": "nobody@acme.example"}}); err == nil {
		t.Error("an owner the table lacks was sent (or dropped) without an error")
	}
}

func TestLookupFileProblemsNameTheFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, table, want string
	}{
		{"missing file", "", "m.yaml:8: lookup: cannot read "},
		{"not pairs", "- 7\n- 9\n", "users.yaml:1: the lookup file holds a list; expected native: canonical pairs"},
		{"key twice", "7: a@x.example\n7: b@x.example\n", `users.yaml:2: key "7" is written twice (first at line 1)`},
		{"not an integer", "seven: a@x.example\n", `users.yaml:1: values key "seven"`},
		{"empty value", "7:\n", `users.yaml:1: lookup key "7" has`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"m.yaml": lookupMapping}
			if tc.table != "" {
				files["lookups/users.yaml"] = tc.table
			}
			dir := writeFiles(t, files)
			_, err := Load(filepath.Join(dir, "m.yaml"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	dir := writeFiles(t, map[string]string{"m.yaml": strings.Replace(lookupMapping, "    canonical: owner\n", "", 1), "lookups/users.yaml": "7: a@x.example\n"})
	if _, err := Load(filepath.Join(dir, "m.yaml")); err == nil || !strings.Contains(err.Error(), "lookup needs native and canonical") {
		t.Errorf("lookup without canonical: %v", err)
	}
}
