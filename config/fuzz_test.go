package config

import (
	"testing"

	"github.com/crmsync/crmsync/connectors/builtin"
)

// FuzzParse: whatever an admin types, Parse returns a config or errors,
// never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("systems: {a: {type: tribecrm}}\nflows: [{name: x, source: a, targets: [{system: a}]}]"))
	f.Add([]byte("state: ${X:-y}\nlog: {level: 3}"))
	f.Add([]byte("log: {<<, [0]}\nstate: a\nstate: b\nsystems: {a: {type: tribecrm, oauth: {client_id: x, client_id: y}}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data, func(string) (string, bool) { return "", false }, builtin.Registry())
		if err == nil && cfg == nil {
			t.Fatal("nil config without an error")
		}
	})
}
