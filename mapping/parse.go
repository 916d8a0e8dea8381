package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/crmsync/crmsync/yamlx"
)

// fileYAML is the mapping file's shape: yamlx checks the file against it
// (unknown keys, value types); the rules are read from the node tree.
type fileYAML struct {
	System string     `yaml:"system"`
	Rules  []ruleYAML `yaml:"rules"`
}

// ruleYAML is one rule as decoded from YAML.
type ruleYAML struct {
	Native    string                    `yaml:"native"`
	Canonical string                    `yaml:"canonical"`
	Values    map[string]map[string]any `yaml:"values"`
	When      map[string]any            `yaml:"when"`
	Default   any                       `yaml:"default"`
	Required  bool                      `yaml:"required"`
	Direction string                    `yaml:"direction"`
	Type      string                    `yaml:"type"`
	Transform []string                  `yaml:"transform"`
	Owner     bool                      `yaml:"owner"`
	// Lookup names a file of native: canonical pairs (see lookup.go).
	Lookup string `yaml:"lookup"`
}

var (
	ruleType = reflect.TypeOf(ruleYAML{})
	ruleKeys = yamlx.Keys(ruleType)
)

// schema words yamlx's messages for a mapping file.
var schema = yamlx.Schema{
	Section: func(t reflect.Type) string {
		if t == ruleType {
			return "a rule"
		}
		return ""
	},
	Expect: expectKey,
}

// Load reads the mapping file at path and compiles it (see Parse).
func Load(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Errors{{File: path, Msg: fmt.Sprintf("cannot read the mapping file: %v", err)}}
	}
	return Parse(path, data)
}

// Parse compiles the mapping held in data; file names it in errors. On
// failure the error is a *Errors listing every problem found, each as
// "file:line: what is wrong; what was expected".
//
// Parse reads no file but the lookup files its rules name (relative to
// file's directory); ParseWith reads them with a function of the caller's.
func Parse(file string, data []byte) (m *Mapping, err error) {
	return ParseWith(file, data, os.ReadFile)
}

// ParseWith is Parse with lookup files read by readFile.
func ParseWith(file string, data []byte, readFile func(string) ([]byte, error)) (m *Mapping, err error) {
	c := &errs{file: file, readFile: readFile}
	defer func() {
		// The YAML library has panicked on hostile input in the past;
		// a mapping file must never take the daemon down.
		if p := recover(); p != nil {
			m = nil
			c.add(1, "cannot read the file as YAML: %v", p)
			err = c.err()
		}
	}()
	const expected = "expected a mapping with the keys system and rules"
	if len(bytes.TrimSpace(data)) == 0 {
		c.add(1, "the file is empty; %s", expected)
		return nil, c.err()
	}

	// The YAML layer: syntax, a second document, keys written twice.
	doc, problems := yamlx.Parse(data, "a mapping file")
	c.addYAML(problems)
	if doc == nil {
		if len(problems) == 0 {
			c.add(1, "the file holds only comments; %s", expected)
		}
		return nil, c.err()
	}
	root := doc
	if len(root.Content) > 0 {
		root = resolve(root.Content[0])
	}
	switch {
	case len(doc.Content) == 0 || isNull(root):
		c.add(max(doc.Line, 1), "the file is empty; %s", expected)
		return nil, c.err()
	case root.Kind != yaml.MappingNode:
		c.add(max(root.Line, 1), "the file holds %s; %s", yamlx.Describe(root), expected)
		return nil, c.err()
	}

	// The node tree, for lines, order and presence of keys; then the file
	// against its shape: unknown keys and values of the wrong type.
	tree := walkFile(root, c)
	var f fileYAML
	for _, e := range yamlx.Decode(doc, &f, schema) {
		if e.Type == ruleType && e.Key == "rules" {
			e.Msg = fmt.Sprintf("a rule is %s; expected a mapping with native and canonical (or values)", yamlx.Describe(e.Node))
		}
		c.add(max(e.Line, 1), "%s", e.Msg)
	}

	m = compile(file, tree, c)
	if len(c.list) == 0 {
		// Every skipped rule should have been reported above; make sure no
		// rule is ever ignored in silence.
		for _, rt := range tree.rules {
			if rt.broken {
				c.add(rt.line, "rule %d could not be read; expected a mapping with the keys %s", rt.index+1, strings.Join(ruleKeys, ", "))
			}
		}
		if tree.ruleItems > len(tree.rules) {
			c.add(tree.rulesLine, "some rules could not be read; expected each to be a mapping with the keys %s", strings.Join(ruleKeys, ", "))
		}
	}
	if e := c.err(); e != nil {
		return nil, e
	}
	return m, nil
}

// addYAML reports problems of the YAML layer (0: line 1).
func (c *errs) addYAML(problems []yamlx.Error) {
	for _, e := range problems {
		c.add(max(e.Line, 1), "%s", e.Msg)
	}
}

// fileTree is the file as seen through the node tree.
type fileTree struct {
	line       int // line of the top-level mapping
	system     string
	systemLine int
	hasSystem  bool
	systemBad  bool // not text: reported by yamlx
	rulesLine  int
	hasRules   bool
	ruleItems  int // items under rules (-1: rules is not a list)
	rules      []*ruleTree
	// misspelt holds system and rules when a top-level key looks like a
	// misspelling of them: its "did you mean" says it, so "the key is
	// missing" would be a second, false problem.
	misspelt map[string]bool
}

// ruleTree is one rule: its decoded content plus the lines of its keys.
type ruleTree struct {
	index  int // 0-based position in rules
	line   int
	r      ruleYAML
	broken bool // could not be decoded; the reason is already reported
	keys   map[string]*yaml.Node
	vals   map[string]*yaml.Node
	values []valueTree // in file order
	when   []pairTree  // in file order
	tforms []pairTree  // transform names with their lines
}

type valueTree struct {
	key    string
	line   int
	assign []pairTree
}

type pairTree struct {
	key   string
	line  int
	value any
}

func (rt *ruleTree) has(key string) bool { _, ok := rt.keys[key]; return ok }

// lineOf returns the line of key's value in the rule, or the rule's line.
func (rt *ruleTree) lineOf(key string) int {
	if n, ok := rt.vals[key]; ok && n.Line > 0 {
		return n.Line
	}
	if n, ok := rt.keys[key]; ok && n.Line > 0 {
		return n.Line
	}
	return rt.line
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// walkFile reads the top-level mapping: lines, order, empty values and
// null keys (which yaml.v3 drops silently). Unknown keys and wrong types
// are yamlx's (Parse).
func walkFile(root *yaml.Node, c *errs) *fileTree {
	t := &fileTree{line: root.Line}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if k == nil || v == nil {
			continue
		}
		switch k.Value {
		case "system":
			t.hasSystem, t.systemLine = true, k.Line
			switch {
			case v.Kind != yaml.ScalarNode:
				t.systemBad = true
			case !isNull(v):
				t.system = v.Value
			}
		case "rules":
			t.hasRules, t.rulesLine = true, k.Line
			switch {
			case isNull(v):
				t.ruleItems = 0
			case v.Kind != yaml.SequenceNode:
				t.ruleItems = -1
			}
			if v.Kind == yaml.SequenceNode {
				t.ruleItems = len(v.Content)
				for j, item := range v.Content {
					if rt := walkRule(j, item, c); rt != nil {
						t.rules = append(t.rules, rt)
					}
				}
			}
		default:
			for _, want := range []string{"system", "rules"} {
				if yamlx.DidYouMean(k.Value, []string{want}) != "" {
					t.misspelt = map[string]bool{want: true}
				}
			}
		}
	}
	return t
}

func walkRule(j int, item *yaml.Node, c *errs) *ruleTree {
	item = resolve(item)
	if item == nil {
		return nil
	}
	if isNull(item) {
		c.add(item.Line, "rule %d is empty; expected a mapping with native and canonical (or values)", j+1)
		return nil
	}
	if item.Kind != yaml.MappingNode {
		return nil // reported by yamlx
	}
	rt := &ruleTree{index: j, line: item.Line, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	known := map[string]bool{}
	for _, k := range ruleKeys {
		known[k] = true
	}
	// Keys written in the rule come first; keys merged in with "<<: *anchor"
	// fill the gaps (yamlx checks their names).
	pairs := append([]*yaml.Node(nil), item.Content...)
	for i := 0; i+1 < len(item.Content); i += 2 {
		if k := resolve(item.Content[i]); k != nil && k.ShortTag() == "!!merge" {
			pairs = append(pairs, mergedPairs(item.Content[i+1])...)
		}
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		k, v := resolve(pairs[i]), resolve(pairs[i+1])
		if k == nil || v == nil {
			rt.broken = true // a dangling alias: yaml.v3 refuses the file
			continue
		}
		if k.ShortTag() == "!!merge" {
			continue
		}
		if _, seen := rt.keys[k.Value]; seen && i >= len(item.Content) {
			continue // overridden in the rule itself
		}
		if !known[k.Value] {
			rt.broken = true // an unknown or empty key: reported by yamlx
			continue
		}
		rt.keys[k.Value], rt.vals[k.Value] = k, v
		switch k.Value {
		case "values":
			walkValues(rt, v, c)
		case "when":
			rt.when = walkPairs(v, "when", c)
		case "transform":
			if v.Kind == yaml.SequenceNode {
				for _, e := range v.Content {
					if e = resolve(e); e != nil {
						rt.tforms = append(rt.tforms, pairTree{key: e.Value, line: e.Line})
					}
				}
			}
		}
	}
	if err := yamlx.Unmarshal(item, &rt.r); err != nil {
		rt.broken = true // yamlx reports the same type error
	}
	return rt
}

// mergedPairs returns the key/value nodes a merge key brings in: from one
// mapping, or from a list of them (earlier ones win, as in YAML).
func mergedPairs(v *yaml.Node) []*yaml.Node {
	v = resolve(v)
	switch {
	case v == nil:
		return nil
	case v.Kind == yaml.MappingNode:
		return v.Content
	case v.Kind == yaml.SequenceNode:
		var out []*yaml.Node
		for _, e := range v.Content {
			if e = resolve(e); e != nil && e.Kind == yaml.MappingNode {
				out = append(out, e.Content...)
			}
		}
		return out
	}
	return nil
}

func walkValues(rt *ruleTree, v *yaml.Node, c *errs) {
	if v.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, e := resolve(v.Content[i]), resolve(v.Content[i+1])
		if k == nil || e == nil || k.ShortTag() == "!!merge" {
			continue
		}
		if isNull(k) {
			c.add(k.Line, "a values key is empty (null); write the native value, quoted if needed (an absent native value is handled by default)")
			continue
		}
		vt := valueTree{key: k.Value, line: k.Line}
		if isNull(e) {
			vt.assign = nil
		} else {
			vt.assign = walkPairs(e, "values", c)
		}
		rt.values = append(rt.values, vt)
	}
}

func walkPairs(v *yaml.Node, where string, c *errs) []pairTree {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	var out []pairTree
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, e := resolve(v.Content[i]), resolve(v.Content[i+1])
		if k == nil || e == nil || k.ShortTag() == "!!merge" {
			continue
		}
		if isNull(k) || k.Value == "" {
			c.add(k.Line, "a key under %s is empty; expected a canonical field name", where)
			continue
		}
		out = append(out, pairTree{key: k.Value, line: k.Line})
	}
	return out
}

// expectKey says what the value of a rule's key (or the file's) should be,
// for yamlx's "found ...; expected ..." ("" lets yamlx say it from t).
func expectKey(key string, t reflect.Type) string {
	switch key {
	case "system":
		return "the system name as text, e.g. tribecrm"
	case "rules":
		return "a list of rules (each starting with \"- \")"
	case "native":
		return "a native field path as text, e.g. Organization.Name, or @entity"
	case "canonical":
		return "a canonical field name as text, e.g. email"
	case "values":
		if t == reflect.TypeOf(map[string]any{}) {
			return "canonical fields with their values, e.g. {kind: organization, stage: lead}"
		}
		return "a mapping from native value to canonical fields, e.g. {\"1\": {stage: suspect}}"
	case "when":
		return "canonical fields with their values, e.g. {kind: person}"
	case "default":
		return "a single value"
	case "required", "owner":
		return "true or false"
	case "lookup":
		return "the path of a lookup file (native: canonical pairs), e.g. lookups/owners.yaml"
	case "direction":
		return "both, inbound or outbound"
	case "type":
		return "string, integer, number or boolean"
	case "transform":
		return "a list of transforms, e.g. [trim, lower]"
	}
	return ""
}

// FileShape returns the struct a mapping file decodes into (for JSON
// Schema reflection, package schema), and the values its enumerated keys
// take: direction, type and transform.
func FileShape() (shape any, directions, types, transforms []string) {
	return &fileYAML{}, []string{"both", "inbound", "outbound"}, slices.Clone(typeNames), slices.Clone(transformNames)
}
