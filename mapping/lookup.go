package mapping

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/crmsync/crmsync/yamlx"
)

// A lookup table translates the values of one native field into the values
// of one canonical field, from a file beside the mapping, so that ids can
// cross systems (a user id into an owner's e-mail, a sector id into an
// industry name):
//
//	- native: representative_id
//	  canonical: owner
//	  type: integer
//	  lookup: lookups/bluerocktel-users.yaml   # 7: jan@acme.example
//
// The file holds native: canonical pairs, one per line. The rule then works
// as a value map over its one canonical field: inbound a native value the
// file lacks is an error for that record, outbound a canonical value the
// file lacks is one too (never a silent drop), and the first pair in file
// order wins when two give the same canonical value. Problems in the file
// are reported with its own name and line.

// compileLookup reads the rule's lookup file into its value map.
func (b *ruleBuild) compileLookup() {
	if !b.rt.has("lookup") {
		return
	}
	line := b.rt.lineOf("lookup")
	switch {
	case b.y.Lookup == "":
		b.bad(line, "lookup is empty; expected the path of a lookup file, e.g. lookups/owners.yaml")
		return
	case !b.hasNative || !b.hasCanon || b.hasValues:
		b.bad(line, "lookup needs native and canonical, and no values: the native value is looked up in the file to give the canonical one")
		return
	}
	path := b.y.Lookup
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(b.c.file), path)
	}
	data, err := b.c.readFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		b.bad(line, "lookup: cannot read %s: %v", path, err)
		return
	}
	lc := &errs{file: path}
	pairs := readLookup(data, lc)
	if len(lc.list) > 0 {
		b.c.list = append(b.c.list, lc.list...)
		b.ok = false
		return
	}
	canon := b.y.Canonical
	b.y.Values = map[string]map[string]any{}
	b.rt.values = nil
	for _, p := range pairs {
		b.y.Values[p.key] = map[string]any{canon: p.value}
		b.rt.values = append(b.rt.values, valueTree{key: p.key, line: p.line, assign: []pairTree{{key: canon, line: p.line, value: p.value}}})
	}
	// From here the rule is a value map setting canonical.
	b.hasCanon, b.hasValues, b.lookup = false, true, lc
	b.r.canonical = "" // its spec stays, for the type checks
}

// readLookup reads native: canonical pairs in file order.
func readLookup(data []byte, c *errs) []pairTree {
	const expected = "expected native: canonical pairs, one per line (e.g. 7: jan@acme.example)"
	doc, problems := yamlx.Parse(data, "a lookup file")
	c.addYAML(problems)
	if doc == nil || len(doc.Content) == 0 {
		if len(problems) == 0 {
			c.add(1, "the lookup file is empty; %s", expected)
		}
		return nil
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode || len(root.Content) == 0 {
		c.add(max(root.Line, 1), "the lookup file holds %s; %s", yamlx.Describe(root), expected)
		return nil
	}
	var out []pairTree
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode || isNull(k) || isNull(v) {
			c.add(k.Line, "%s: %s", describePair(k, v), expected)
			continue
		}
		var val any
		if err := v.Decode(&val); err != nil {
			c.add(v.Line, "lookup value %q: %v", v.Value, err)
			continue
		}
		out = append(out, pairTree{key: k.Value, line: k.Line, value: val})
	}
	return out
}

func describePair(k, v *yaml.Node) string {
	if k.Kind != yaml.ScalarNode || isNull(k) {
		return fmt.Sprintf("a lookup key is %s", yamlx.Describe(k))
	}
	return fmt.Sprintf("lookup key %q has %s as its value", k.Value, yamlx.Describe(v))
}

// compileValueMapFrom compiles the value map, reporting a lookup file's
// entries against that file.
func (b *ruleBuild) compileValueMapFrom() {
	if b.lookup == nil {
		b.compileValueMap()
		return
	}
	main := b.c
	b.c = b.lookup
	b.compileValueMap()
	b.c = main
	main.list = append(main.list, b.lookup.list...)
}
