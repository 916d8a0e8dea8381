package main

import (
	"go/build"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/crmsync/crmsync"

// layers says which of our packages each package may import (tests aside).
// A key ending in "/*" applies to every package below it that has no key of
// its own. The graph points one way: the model at the bottom, the CLI at the
// top; a connector knows nothing of the engine, and the engine nothing of a
// vendor (issue 8).
var layers = map[string][]string{
	"funnel":              {},
	"yamlx":               {},
	"yamlx/yamltest":      {}, // golden messages for broken files; tests only
	"state":               {"funnel"},
	"mapping":             {"funnel", "yamlx"},
	"connectors":          {"connectors/emukit"},
	"connectors/emukit":   {},
	"connectors/httpx":    {"connectors", "logkey"},
	"connectors/conntest": {"connectors", "connectors/emukit", "connectors/httpx"},
	"connectors/*":        {"connectors", "connectors/emukit", "connectors/httpx", "logkey"},
	"connectors/builtin":  {"connectors", "connectors/*"},
	"engine":              {"connectors", "funnel", "mapping", "state", "logkey"},
	"config":              {"connectors", "connectors/httpx", "engine", "funnel", "state", "webhook", "yamlx"},
	"metrics":             {"buildinfo", "engine"},
	"buildinfo":           {},
	"logkey":              {},
	"schema":              {"config", "connectors", "engine", "funnel", "mapping"},
	"daemon":              {"cluster", "engine", "state", "logkey", "webhook"},
	"cluster":             {"state"},
	"webhook":             {"connectors", "logkey"},
	// Each CRM: an emulator sub-package never imports its client; the
	// client imports its emulator only to register it (register.go, checked
	// by each client's imports_test.go); the facts both share live in api.
	"connectors/tribecrm/api":       {},
	"connectors/tribecrm/emulator":  {"connectors", "connectors/emukit", "connectors/tribecrm/api"},
	"connectors/tribecrm":           {"connectors", "connectors/emukit", "connectors/httpx", "connectors/tribecrm/api", "connectors/tribecrm/emulator", "logkey"},
	"connectors/overplane/api":      {},
	"connectors/overplane":          {"connectors", "connectors/emukit", "connectors/httpx", "connectors/overplane/api", "connectors/overplane/emulator", "logkey"},
	"connectors/overplane/emulator": {"connectors", "connectors/emukit", "connectors/overplane/api"},
	// The wiring layers name no system type: they loop over the registry.
	"emulate":         {"connectors", "connectors/emukit"},
	"emulate/emutest": {"connectors/*", "emulate"}, // tests' typed access to the built-in emulators
	"app":             {"cluster", "config", "connectors", "engine", "mapping", "state", "state/pgstate", "webhook"},
	"bench":           {"app", "config", "connectors", "emulate", "engine", "mapping"},
	"cli":             {"app", "bench", "buildinfo", "cluster", "config", "connectors", "connectors/builtin", "connectors/emukit", "daemon", "emulate", "engine", "funnel", "mapping", "metrics", "schema", "state", "logkey"},
	"":                {"cli", "connectors/builtin"},
	"e2e":             {}, // tests only; its tests may import anything
	// BlueRockTel's emulator is a package of its own that never imports the
	// client; the client imports it only to register it (register.go).
	"connectors/bluerocktel":          {"connectors", "connectors/emukit", "connectors/httpx", "connectors/bluerocktel/api", "connectors/bluerocktel/emulator", "logkey"},
	"connectors/bluerocktel/api":      {},
	"connectors/bluerocktel/emulator": {"connectors", "connectors/emukit", "connectors/bluerocktel/api"},
	// State engines beside bbolt (issue 13): each implements state's
	// methods over its own store; statetest is the contract suite they all
	// pass and pgtest a throwaway PostgreSQL (both tests only).
	"state/pgstate":        {"funnel", "state"},
	"state/pgstate/pgtest": {},
	"state/statetest":      {"funnel", "state"},
}

func allowed(pkg, imp string) bool {
	rules, ok := layers[pkg]
	if !ok {
		rules, ok = layers[path.Dir(pkg)+"/*"]
	}
	if !ok {
		return false
	}
	for _, r := range rules {
		switch {
		case r == "*", r == imp:
			return true
		case strings.HasSuffix(r, "/*") && strings.HasPrefix(imp, strings.TrimSuffix(r, "*")):
			return true
		}
	}
	return false
}

func TestPackageDependenciesPointOneWay(t *testing.T) {
	seen := 0
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); p != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "examples" || name == "docs" || name == "scripts") {
			return filepath.SkipDir
		}
		bp, err := build.ImportDir(p, 0)
		if err != nil {
			return nil // no Go files here
		}
		pkg := filepath.ToSlash(p)
		if pkg == "." {
			pkg = ""
		}
		if _, ok := layers[pkg]; !ok {
			if _, ok := layers[path.Dir(pkg)+"/*"]; !ok {
				t.Errorf("package %q has no layer in deps_test.go: say what it may import", pkg)
				return nil
			}
		}
		seen++
		var bad []string
		for _, imp := range bp.Imports {
			rel, ours := strings.CutPrefix(imp, module+"/")
			if !ours {
				continue
			}
			if !allowed(pkg, rel) {
				bad = append(bad, rel)
			}
		}
		sort.Strings(bad)
		if len(bad) > 0 {
			t.Errorf("package %q imports %s, which its layer does not allow (deps_test.go)", pkg, strings.Join(bad, ", "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 15 {
		t.Fatalf("checked only %d packages; the walk is broken", seen)
	}
}
