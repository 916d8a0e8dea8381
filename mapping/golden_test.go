package mapping

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// nativeJSON is how golden files hold a native record.
type nativeJSON struct {
	Entity string         `json:"entity"`
	Fields map[string]any `json:"fields"`
}

// goldenMapping loads the mapping a golden case names: its own mapping.yaml,
// or the example named in example.txt.
func goldenMapping(t *testing.T, dir string) *Mapping {
	t.Helper()
	path := filepath.Join(dir, "mapping.yaml")
	if ex, err := os.ReadFile(filepath.Join(dir, "example.txt")); err == nil {
		path = filepath.Join("..", "examples", "mappings", strings.TrimSpace(string(ex))+".yaml")
	}
	m, err := Load(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return m
}

func readNative(t *testing.T, path string) Native {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var nj nativeJSON
	if err := json.Unmarshal(data, &nj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return Native{Entity: nj.Entity, Fields: nj.Fields}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// golden compares got with the file, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./mapping -run Golden -update to create it)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("%s differs from what the mapping produced:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGolden maps testdata/<case>/native.json inbound and compares with
// canonical.json, then maps that record outbound and compares with
// native_out.json.
func TestGolden(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob(filepath.Join("testdata", "*", "native.json"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases found: %v", err)
	}
	for _, nf := range dirs {
		dir := filepath.Dir(nf)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := goldenMapping(t, dir)
			rec, err := m.Inbound(readNative(t, nf))
			if err != nil {
				t.Fatalf("inbound: %v", err)
			}
			golden(t, filepath.Join(dir, "canonical.json"), marshal(t, rec))

			// Outbound starts from the golden canonical record, so each half
			// is checked on its own.
			var want funnel.Record
			data, err := os.ReadFile(filepath.Join(dir, "canonical.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			out, err := m.Outbound(&want)
			if err != nil {
				t.Fatalf("outbound: %v", err)
			}
			golden(t, filepath.Join(dir, "native_out.json"), marshal(t, nativeJSON{Entity: out.Entity, Fields: out.Fields}))
		})
	}
}
