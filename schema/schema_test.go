package schema_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	jsv "github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/schema"
)

// compile builds a validator from the generated schema with an independent
// implementation (santhosh-tekuri/jsonschema), so the schema is checked as
// an editor would use it, not by the code that wrote it.
func compile(t *testing.T) *jsv.Schema {
	t.Helper()
	data, err := schema.Config(builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsv.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsv.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatalf("the generated schema does not compile: %v\n%s", err, data)
	}
	return s
}

// asJSON decodes YAML text into the JSON value an editor validates.
func asJSON(t *testing.T, text string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(text), &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsv.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConfigSchemaAcceptsTheExampleAndRefusesMistakes(t *testing.T) {
	s := compile(t)
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(asJSON(t, string(example))); err != nil {
		t.Fatalf("config.example.yaml is refused: %v", err)
	}
	for _, c := range []struct{ name, from, to string }{
		{"misspelt top-level key", "state:", "stat:"},
		{"another type's key", "    type: overplane\n", "    type: overplane\n    naming: snake\n"},
		{"unknown type", "type: overplane", "type: hubspot"},
		{"duration without unit", "retry_after_max: 30s", "retry_after_max: 30"},
		{"bad delete policy", "flows:\n", "flows:\n  - name: x\n    source: tribecrm\n    targets: [{system: overplane}]\n    deletes: {policy: purge}\n"},
	} {
		text := strings.Replace(string(example), c.from, c.to, 1)
		if text == string(example) {
			t.Fatalf("%s: %q not found in the example", c.name, c.from)
		}
		if err := s.Validate(asJSON(t, text)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
