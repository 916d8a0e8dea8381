package mapping

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the package's dependencies to the standard library,
// yaml.v3, yamlx (the YAML layer) and funnel: mapping knows nothing of HTTP,
// connectors, state or logging.
func TestImports(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"gopkg.in/yaml.v3": true, "github.com/crmsync/crmsync/yamlx": true, "github.com/crmsync/crmsync/funnel": true}
	banned := map[string]bool{"net/http": true, "log": true, "log/slog": true}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pf.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			std := !strings.Contains(strings.Split(path, "/")[0], ".")
			if (!std && !allowed[path]) || banned[path] {
				t.Errorf("%s imports %s; mapping may import only the standard library, yaml.v3, yamlx and funnel", f, path)
			}
		}
	}
}
