package schema_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/schema"
)

var update = flag.Bool("update", false, "rewrite the checked-in schemas in ../schemas")

// The checked-in schemas (what editors read through the example files'
// `# yaml-language-server: $schema=` lines) are what crmsync generates
// today: a key added to the config or the mapping language without
// regenerating them fails here. Regenerate: go test ./schema -update.
func TestCheckedInSchemasAreCurrent(t *testing.T) {
	for name, build := range map[string]func(*connectors.Registry) ([]byte, error){
		"config.schema.json": schema.Config, "mapping.schema.json": schema.Mapping,
	} {
		want, err := build(builtin.Registry())
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		path := filepath.Join("..", "schemas", name)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("schemas/%s is not what crmsync generates (%v); run: go test ./schema -update", name, err)
		}
	}
}

// Every example file points editors at its checked-in schema.
func TestExamplesReferenceTheirSchema(t *testing.T) {
	t.Parallel()
	files := map[string]string{"../config.example.yaml": "schemas/config.schema.json", "../examples/mesh.yaml": "../schemas/config.schema.json"}
	maps, _ := filepath.Glob("../examples/mappings/*.yaml")
	for _, m := range maps {
		files[m] = "../../schemas/mapping.schema.json"
	}
	for f, ref := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		if want := "# yaml-language-server: $schema=" + ref; first != want {
			t.Errorf("%s: first line %q, want %q", f, first, want)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(f), ref)); err != nil {
			t.Errorf("%s: its schema reference does not resolve: %v", f, err)
		}
	}
}
