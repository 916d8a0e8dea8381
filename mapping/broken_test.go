package mapping

import (
	"testing"

	"github.com/crmsync/crmsync/yamlx/yamltest"
)

// Issue 11: every kind of mistake an admin makes in a mapping file gets
// file:line, what is wrong and what was expected, or a clear error for the
// whole file. Each file in testdata/broken holds one mistake; its .want
// holds the exact message (go test ./mapping -run TestBrokenMappings -update
// rewrites them: read every change).
func TestBrokenMappingsExactMessages(t *testing.T) {
	t.Parallel()
	yamltest.Broken(t, "testdata/broken/*.yaml", nil, 20, *update, func(f string, data []byte) error {
		_, err := Parse(f, data)
		return err
	})
}
