package tribecrm

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The emulator is a witness of the vendor, not a library of the client: of
// the client's own code only register.go, which builds the emulator for the
// connector registry, may import it (deps_test.go keeps the emulator from
// importing the client).
func TestOnlyRegisterImportsTheEmulator(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || name == "register.go" {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); strings.HasSuffix(p, "/connectors/tribecrm/emulator") {
				t.Errorf("%s imports the emulator: only register.go may", name)
			}
		}
	}
}
