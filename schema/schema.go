// Package schema writes JSON Schemas (draft 2020-12) of the files admins
// edit, for editors that check YAML as it is typed (the YAML language
// server reads `# yaml-language-server: $schema=crmsync.schema.json`). The
// schemas are reflected from the same structs the files are decoded into
// (with github.com/invopop/jsonschema, the maintained reflector for Go
// types), so they cannot drift from what crmsync accepts; the keys of each
// system type come from the connector registry.
package schema

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"github.com/invopop/jsonschema"

	"github.com/crmsync/crmsync/config"
	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/engine"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/mapping"
)

// durationPattern is Go's duration syntax (time.ParseDuration).
const durationPattern = `^-?(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

func reflector() *jsonschema.Reflector {
	return &jsonschema.Reflector{
		FieldNameTag:               "yaml",
		RequiredFromJSONSchemaTags: true,
		DoNotReference:             true,
		ExpandedStruct:             true,
		Anonymous:                  true,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			switch t {
			case reflect.TypeOf(time.Duration(0)):
				return &jsonschema.Schema{Type: "string", Pattern: durationPattern, Description: "a duration: 500ms, 30s, 5m, 24h"}
			case reflect.TypeOf(connectors.Secret("")):
				return &jsonschema.Schema{Type: "string", Description: "a secret; write ${VAR} to keep it out of the file"}
			case reflect.TypeOf(funnel.Kind("")):
				return &jsonschema.Schema{Type: "string", Enum: []any{string(funnel.Organization), string(funnel.Person)}}
			case reflect.TypeOf(funnel.Stage("")):
				return &jsonschema.Schema{Type: "string", Enum: anys(funnel.Stages())}
			case reflect.TypeOf(engine.DeleteMode("")):
				return &jsonschema.Schema{Type: "string", Enum: anys(engine.DeleteModes())}
			}
			return nil
		},
	}
}

func anys[S ~string](vs []S) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// Config returns the JSON Schema of a configuration file whose systems are
// of the registered types.
func Config(types *connectors.Registry) ([]byte, error) {
	r := reflector()
	root := r.Reflect(&config.Config{})
	root.Title = "crmsync configuration"
	systems, ok := root.Properties.Get("systems")
	if !ok || systems.AdditionalProperties == nil {
		return nil, fmt.Errorf("schema: config has no systems map")
	}
	common := systems.AdditionalProperties
	common.AdditionalProperties = nil // the type's branch below closes the object
	if t, ok := common.Properties.Get("type"); ok {
		t.Enum = anys(types.Names())
	}
	common.Required = []string{"type", "base_url", "mapping"}
	for _, t := range types.Types() {
		own := r.Reflect(t.NewOptions())
		branch := &jsonschema.Schema{Properties: jsonschema.NewProperties(), AdditionalProperties: jsonschema.FalseSchema}
		for p := common.Properties.Oldest(); p != nil; p = p.Next() {
			branch.Properties.Set(p.Key, p.Value)
		}
		for p := own.Properties.Oldest(); p != nil; p = p.Next() {
			branch.Properties.Set(p.Key, p.Value)
		}
		common.AllOf = append(common.AllOf, &jsonschema.Schema{
			If:   withRequired(props("type", &jsonschema.Schema{Const: t.Name}), "type"),
			Then: branch,
		})
	}
	return json.MarshalIndent(root, "", "  ")
}

// Mapping returns the JSON Schema of a mapping file for the system types
// of types.
func Mapping(types *connectors.Registry) ([]byte, error) {
	shape, directions, typeNames, transforms := mapping.FileShape()
	r := reflector()
	root := r.Reflect(shape)
	root.Title = "crmsync mapping"
	root.Required = []string{"system", "rules"}
	if sys, ok := root.Properties.Get("system"); ok {
		sys.Enum = anys(types.Names())
	}
	rules, ok := root.Properties.Get("rules")
	if !ok || rules.Items == nil {
		return nil, fmt.Errorf("schema: mapping has no rules list")
	}
	rule := rules.Items
	set := func(key string, f func(*jsonschema.Schema)) {
		if p, ok := rule.Properties.Get(key); ok {
			f(p)
		}
	}
	set("canonical", func(p *jsonschema.Schema) { p.Enum = anys(funnel.FieldNames()) })
	set("direction", func(p *jsonschema.Schema) { p.Enum = anys(directions) })
	set("type", func(p *jsonschema.Schema) { p.Enum = anys(typeNames) })
	set("transform", func(p *jsonschema.Schema) { p.Items.Enum = anys(transforms) })
	return json.MarshalIndent(root, "", "  ")
}

func withRequired(s *jsonschema.Schema, keys ...string) *jsonschema.Schema {
	s.Required = keys
	return s
}

func props(key string, s *jsonschema.Schema) *jsonschema.Schema {
	p := jsonschema.NewProperties()
	p.Set(key, s)
	return &jsonschema.Schema{Properties: p}
}
