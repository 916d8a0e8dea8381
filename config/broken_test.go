package config

import (
	"flag"
	"testing"

	"github.com/crmsync/crmsync/connectors/builtin"
	"github.com/crmsync/crmsync/yamlx/yamltest"
)

var update = flag.Bool("update", false, "rewrite testdata/broken/*.want from what crmsync says now (then read every change)")

// Issue 11: every kind of mistake an admin makes in a configuration file
// gets file:line, what is wrong and what was expected. Each file in
// testdata/broken holds one mistake; its .want holds the exact message.
// m.yaml is the mapping file the configurations point at.
func TestBrokenConfigsExactMessages(t *testing.T) {
	t.Parallel()
	yamltest.Broken(t, "testdata/broken/*.yaml", []string{"m.yaml"}, 50, *update, func(f string, data []byte) error {
		_, err := Parse(f, data, noEnv, builtin.Registry())
		return err
	})
}
