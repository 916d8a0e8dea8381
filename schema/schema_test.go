package schema_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	jsv "github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/schema"
)

// compile builds a validator from a generated schema with an independent
// implementation (santhosh-tekuri/jsonschema), so the schema is checked as
// an editor would use it, not by the code that wrote it.
func compile(t *testing.T, build func(*connectors.Registry) ([]byte, error)) *jsv.Schema {
	t.Helper()
	data, err := build(builtin.Registry())
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsv.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsv.NewCompiler()
	if err := c.AddResource("generated.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("generated.schema.json")
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
	b, err := json.Marshal(stringKeys(v))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jsv.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stringKeys turns YAML maps with non-string keys (a value map's 1: x) into
// the string-keyed objects JSON has, as an editor's YAML server does.
func stringKeys(v any) any {
	switch x := v.(type) {
	case map[any]any:
		out := map[string]any{}
		for k, e := range x {
			out[fmt.Sprint(k)] = stringKeys(e)
		}
		return out
	case map[string]any:
		for k, e := range x {
			x[k] = stringKeys(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = stringKeys(e)
		}
		return x
	}
	return v
}

func TestConfigSchemaAcceptsTheExampleAndRefusesMistakes(t *testing.T) {
	s := compile(t, schema.Config)
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(asJSON(t, string(example))); err != nil {
		t.Fatalf("config.example.yaml is refused: %v", err)
	}
	for _, c := range []struct{ name, from, to string }{
		{"misspelt top-level key", "\nstate:", "\nstat:"},
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

func TestMappingSchemaAcceptsTheExamplesAndRefusesMistakes(t *testing.T) {
	s := compile(t, schema.Mapping)
	var tribe string
	for _, name := range []string{"tribecrm.yaml", "overplane.yaml", "bluerocktel.yaml"} {
		data, err := os.ReadFile("../examples/mappings/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(asJSON(t, string(data))); err != nil {
			t.Errorf("examples/mappings/%s is refused: %v", name, err)
		}
		if name == "tribecrm.yaml" {
			tribe = string(data)
		}
	}
	for _, c := range []struct{ name, from, to string }{
		{"unknown system", "system: tribecrm", "system: hubspot"},
		{"misspelt rule key", "    canonical: active", "    canonicl: active"},
		{"unknown canonical field", "canonical: email", "canonical: e_mail"},
	} {
		text := strings.Replace(tribe, c.from, c.to, 1)
		if text == tribe {
			t.Fatalf("%s: %q not found in the example", c.name, c.from)
		}
		if err := s.Validate(asJSON(t, text)); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}
