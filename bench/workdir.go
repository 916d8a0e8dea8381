package bench

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

// workdir is the bench's temporary directory: the example configuration,
// edited for the bench, and its mappings.
type workdir struct {
	dir, config string
	systems     []string // the config's systems (each has an emulator)
	concurrency int      // the flow's write_concurrency
}

// newWorkdir writes the assets to dir and edits config.example.yaml into
// bench.yaml: rate limits off (the emulators are on loopback: the bench
// measures crmsync, not pacing), only the measured flow, only the targets
// asked for, no admin listener.
func newWorkdir(dir string, assets fs.FS, targets []string) (*workdir, error) {
	if err := copyAssets(dir, assets); err != nil {
		return nil, fmt.Errorf("bench: write the assets: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.example.yaml"))
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	w := &workdir{dir: dir, config: filepath.Join(dir, "bench.yaml")}
	out, err := w.edit(data, targets)
	if err != nil {
		return nil, fmt.Errorf("bench: edit config.example.yaml: %w", err)
	}
	return w, os.WriteFile(w.config, out, 0o644)
}

func (w *workdir) edit(data []byte, targets []string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) != 1 {
		return nil, fmt.Errorf("not one YAML document")
	}
	root := doc.Content[0]
	if admin := get(root, "admin"); admin != nil {
		set(admin, "listen", "")
	}
	flows := get(root, "flows")
	if flows == nil {
		return nil, fmt.Errorf("no flows")
	}
	var flow *yaml.Node
	for _, f := range flows.Content {
		if v := get(f, "name"); v != nil && v.Value == Flow {
			flow = f
		}
	}
	if flow == nil {
		return nil, fmt.Errorf("no flow %s", Flow)
	}
	flows.Content = []*yaml.Node{flow}
	if err := w.keepTargets(flow, targets); err != nil {
		return nil, err
	}
	w.concurrency = 4
	if v := get(flow, "write_concurrency"); v != nil {
		if n, err := strconv.Atoi(v.Value); err == nil {
			w.concurrency = n
		}
	}
	systems := get(root, "systems")
	if systems == nil {
		return nil, fmt.Errorf("no systems")
	}
	for i := 0; i+1 < len(systems.Content); i += 2 {
		// Every system's emulator listens on a free port, also those the
		// flow no longer names (crmsync emulate starts them all).
		w.systems = append(w.systems, systems.Content[i].Value)
		set(systems.Content[i+1], "rate_limit", "0")
	}
	return yaml.Marshal(&doc)
}

// keepTargets drops the flow's targets not in targets.
func (w *workdir) keepTargets(flow *yaml.Node, targets []string) error {
	ts := get(flow, "targets")
	if ts == nil {
		return fmt.Errorf("flow %s has no targets", Flow)
	}
	var kept []*yaml.Node
	var have []string
	for _, t := range ts.Content {
		name := ""
		if v := get(t, "system"); v != nil {
			name = v.Value
		}
		have = append(have, name)
		if slices.Contains(targets, name) {
			kept = append(kept, t)
		}
	}
	for _, t := range targets {
		if !slices.Contains(have, t) {
			return fmt.Errorf("target %q is not one of flow %s's (%v)", t, Flow, have)
		}
	}
	ts.Content = kept
	return nil
}

// get returns the value of key in the mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// set sets key in the mapping m to the scalar value.
func set(m *yaml.Node, key, value string) {
	if v := get(m, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "", value, 0
		if value == "" {
			v.Style = yaml.DoubleQuotedStyle
		}
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
}

// copyAssets writes config.example.yaml and examples/mappings/ of assets
// to dir.
func copyAssets(dir string, assets fs.FS) error {
	write := func(p string) error {
		data, err := fs.ReadFile(assets, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	}
	if err := write("config.example.yaml"); err != nil {
		return err
	}
	return fs.WalkDir(assets, "examples/mappings", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return write(p)
	})
}
