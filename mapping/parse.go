package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileYAML is the mapping file as decoded (strictly) from YAML.
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
}

var (
	topKeys  = []string{"system", "rules"}
	ruleKeys = []string{"native", "canonical", "values", "when", "default", "required", "direction", "type", "transform", "owner"}
)

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
func Parse(file string, data []byte) (m *Mapping, err error) {
	c := &errs{file: file}
	defer func() {
		// The YAML library has panicked on hostile input in the past;
		// a mapping file must never take the daemon down.
		if p := recover(); p != nil {
			m = nil
			c.add(1, "cannot read the file as YAML: %v", p)
			err = c.err()
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		c.add(1, "the file is empty; expected a mapping with the keys system and rules")
		return nil, c.err()
	}

	// Pass 1: the node tree, for line numbers, order and presence of keys.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if derr := dec.Decode(&doc); derr != nil {
		if errors.Is(derr, io.EOF) {
			c.add(1, "the file holds only comments; expected a mapping with the keys system and rules")
		} else {
			c.addYAMLError(derr, data)
		}
		return nil, c.err()
	}
	var extra yaml.Node
	switch derr := dec.Decode(&extra); {
	case derr == nil:
		c.add(max(extra.Line, 1), "a second YAML document starts here; a mapping file holds exactly one (remove the \"---\" separator)")
	case !errors.Is(derr, io.EOF):
		c.addYAMLError(derr, data)
	}

	idx := &nodeIndex{}
	tree := walkFile(&doc, c, idx)

	// Pass 2: strict decoding into plain structs. It reports unknown keys,
	// wrong types and duplicate keys; nothing is decoded through a custom
	// unmarshaller (yaml.v3 would drop KnownFields there, go-yaml/yaml#460).
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	var f fileYAML
	if derr := strict.Decode(&f); derr != nil && !errors.Is(derr, io.EOF) {
		c.addTypeErrors(derr, idx)
	}

	if tree == nil {
		if len(c.list) == 0 {
			c.add(1, "expected a mapping with the keys system and rules")
		}
		return nil, c.err()
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

// fileTree is the file as seen through the node tree.
type fileTree struct {
	line       int // line of the top-level mapping
	system     string
	systemLine int
	hasSystem  bool
	rulesLine  int
	hasRules   bool
	ruleItems  int // items under rules (-1: rules is not a list)
	rules      []*ruleTree
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

// nodeIndex remembers which key each value node belongs to, to turn the
// YAML library's type errors into messages that name the key.
type nodeIndex struct{ entries []indexed }

type indexed struct {
	line int
	key  string
	node *yaml.Node
}

func (x *nodeIndex) add(key string, n *yaml.Node) {
	x.entries = append(x.entries, indexed{line: n.Line, key: key, node: n})
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

// walkFile reads the node tree: lines, order, empty values and null keys
// (which yaml.v3 drops silently). Type errors are left to the strict pass.
func walkFile(doc *yaml.Node, c *errs, idx *nodeIndex) *fileTree {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			c.add(max(root.Line, 1), "the file is empty; expected a mapping with the keys system and rules")
			return nil
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		c.add(1, "the file is empty; expected a mapping with the keys system and rules")
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return nil // reported by the strict pass
	}
	t := &fileTree{line: root.Line}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := resolve(root.Content[i]), resolve(root.Content[i+1])
		if isNull(k) || k.Value == "" {
			c.add(k.Line, "a key is empty; expected system or rules")
			continue
		}
		idx.add(k.Value, v)
		switch k.Value {
		case "system":
			t.hasSystem, t.systemLine = true, k.Line
			if v.Kind == yaml.ScalarNode && !isNull(v) {
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
					if rt := walkRule(j, item, c, idx); rt != nil {
						t.rules = append(t.rules, rt)
					}
				}
			}
		}
	}
	return t
}

func walkRule(j int, item *yaml.Node, c *errs, idx *nodeIndex) *ruleTree {
	item = resolve(item)
	if isNull(item) {
		c.add(item.Line, "rule %d is empty; expected a mapping with native and canonical (or values)", j+1)
		return nil
	}
	if item.Kind != yaml.MappingNode {
		return nil // reported by the strict pass
	}
	rt := &ruleTree{index: j, line: item.Line, keys: map[string]*yaml.Node{}, vals: map[string]*yaml.Node{}}
	known := map[string]bool{}
	for _, k := range ruleKeys {
		known[k] = true
	}
	// Keys written in the rule come first; keys merged in with "<<: *anchor"
	// fill the gaps (the strict pass checks their names).
	pairs := append([]*yaml.Node(nil), item.Content...)
	for i := 0; i+1 < len(item.Content); i += 2 {
		if k := resolve(item.Content[i]); k.ShortTag() == "!!merge" {
			pairs = append(pairs, mergedPairs(item.Content[i+1])...)
		}
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		k, v := resolve(pairs[i]), resolve(pairs[i+1])
		if k.ShortTag() == "!!merge" {
			continue
		}
		if _, seen := rt.keys[k.Value]; seen && i >= len(item.Content) {
			continue // overridden in the rule itself
		}
		if isNull(k) || k.Value == "" {
			c.add(k.Line, "a key in rule %d is empty; expected one of: %s", j+1, strings.Join(ruleKeys, ", "))
			rt.broken = true
			continue
		}
		if !known[k.Value] {
			rt.broken = true // reported by the strict pass
			continue
		}
		rt.keys[k.Value], rt.vals[k.Value] = k, v
		idx.add(k.Value, v)
		switch k.Value {
		case "values":
			walkValues(rt, v, c, idx)
		case "when":
			rt.when = walkPairs(v, "when", c, idx)
		case "transform":
			if v.Kind == yaml.SequenceNode {
				for _, e := range v.Content {
					e = resolve(e)
					idx.add("transform", e)
					rt.tforms = append(rt.tforms, pairTree{key: e.Value, line: e.Line})
				}
			}
		}
	}
	if err := item.Decode(&rt.r); err != nil {
		rt.broken = true // the strict pass reports the same type error
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

func walkValues(rt *ruleTree, v *yaml.Node, c *errs, idx *nodeIndex) {
	if v.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, e := resolve(v.Content[i]), resolve(v.Content[i+1])
		if k.ShortTag() == "!!merge" {
			continue
		}
		if isNull(k) {
			c.add(k.Line, "a values key is empty (null); write the native value, quoted if needed (an absent native value is handled by default)")
			continue
		}
		idx.add("values", e)
		vt := valueTree{key: k.Value, line: k.Line}
		if isNull(e) {
			vt.assign = nil
		} else {
			vt.assign = walkPairs(e, "values", c, idx)
		}
		rt.values = append(rt.values, vt)
	}
}

func walkPairs(v *yaml.Node, where string, c *errs, idx *nodeIndex) []pairTree {
	if v.Kind != yaml.MappingNode {
		return nil
	}
	var out []pairTree
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, e := resolve(v.Content[i]), resolve(v.Content[i+1])
		if k.ShortTag() == "!!merge" {
			continue
		}
		if isNull(k) || k.Value == "" {
			c.add(k.Line, "a key under %s is empty; expected a canonical field name", where)
			continue
		}
		idx.add(where, e)
		out = append(out, pairTree{key: k.Value, line: k.Line})
	}
	return out
}

var (
	reLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	reSyntax   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	reNotFound = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	reUnmarsh  = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	reDupKey   = regexp.MustCompile(`^mapping key (".*") already defined at line (\d+)$`)
)

// addYAMLError reports a syntax error of the YAML library with its line.
func (c *errs) addYAMLError(err error, data []byte) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := reSyntax.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		// yaml.v3 counts lines from 0 in parser (not scanner) errors, and
		// names the line where the enclosing block began rather than the
		// line at fault: look for the first line that breaks the document.
		if strings.HasPrefix(msg, "did not find expected") {
			line++
			if bad := firstBadLine(data); bad > 0 {
				line = bad
			}
		}
	}
	if strings.Contains(msg, "tab character") {
		// Point at the tab itself rather than where the block began.
		for i, l := range strings.Split(string(data), "\n") {
			if indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]; strings.Contains(indent, "\t") {
				line = i + 1
				msg += " (indent with spaces, not tabs)"
				break
			}
		}
	}
	c.add(line, "invalid YAML: %s", msg)
}

// firstBadLine returns the smallest n such that the first n lines of data
// are not valid YAML, or 0 when that cannot be told.
func firstBadLine(data []byte) int {
	if len(data) > 1<<20 {
		return 0
	}
	lines := strings.SplitAfter(string(data), "\n")
	fails := func(n int) bool {
		dec := yaml.NewDecoder(strings.NewReader(strings.Join(lines[:n], "")))
		for {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				return false
			}
			if err != nil {
				return true
			}
		}
	}
	lo, hi := 0, len(lines)
	if !fails(hi) {
		return 0
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// addTypeErrors turns the strict decoder's errors into admin-facing
// problems that name the key and what it expects.
func (c *errs) addTypeErrors(err error, idx *nodeIndex) {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		c.addYAMLError(err, nil)
		return
	}
	for _, msg := range te.Errors {
		line, text := 1, msg
		if m := reLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			text = m[2]
		}
		c.add(line, "%s", translate(line, text, idx))
	}
}

func translate(line int, text string, idx *nodeIndex) string {
	if m := reNotFound.FindStringSubmatch(text); m != nil {
		key := m[1]
		switch m[2] {
		case "mapping.fileYAML":
			return fmt.Sprintf("unknown top-level key %q; %s", key, suggest(key, topKeys))
		case "mapping.ruleYAML":
			return fmt.Sprintf("unknown key %q in a rule; %s", key, suggest(key, ruleKeys))
		}
		return fmt.Sprintf("unknown key %q", key)
	}
	if m := reDupKey.FindStringSubmatch(text); m != nil {
		return fmt.Sprintf("key %s is written twice (first at line %s); keep one", m[1], m[2])
	}
	if m := reUnmarsh.FindStringSubmatch(text); m != nil {
		tag, val, into := m[1], m[2], m[3]
		key := ""
		if idx != nil {
			// Several keys may share a line (flow style): prefer the one
			// whose value the library quoted, then any with the same tag.
			var found *indexed
			for i := range idx.entries {
				e := &idx.entries[i]
				if e.line != line || e.node.ShortTag() != tag {
					continue
				}
				if found == nil || (yamlQuoted(e.node.Value) == val && yamlQuoted(found.node.Value) != val) {
					found = e
				}
			}
			if found != nil {
				key, val = found.key, found.node.Value
			}
		}
		got := describeNode(tag, val)
		if key == "" {
			switch into {
			case "mapping.fileYAML":
				return fmt.Sprintf("the file holds %s; expected a mapping with the keys system and rules", got)
			case "mapping.ruleYAML":
				return fmt.Sprintf("a rule is %s; expected a mapping with native and canonical (or values)", got)
			}
			return fmt.Sprintf("found %s; expected %s", got, expectType(into))
		}
		if into == "mapping.ruleYAML" && key == "rules" {
			return fmt.Sprintf("a rule is %s; expected a mapping with native and canonical (or values)", got)
		}
		return fmt.Sprintf("%s: found %s; expected %s", key, got, expectKey(key, into))
	}
	return text
}

// yamlQuoted shortens a value the way yaml.v3 does in its type errors.
func yamlQuoted(v string) string {
	if len(v) > 10 {
		return v[:7] + "..."
	}
	return v
}

func describeNode(tag, val string) string {
	if len(val) > 40 {
		val = val[:37] + "..."
	}
	switch tag {
	case "!!str":
		return fmt.Sprintf("the text %q", val)
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!int", "!!float":
		return "the number " + val
	case "!!bool":
		return "the boolean " + val
	case "!!null":
		return "nothing"
	}
	return tag + " " + val
}

func expectKey(key, into string) string {
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
		if into == "map[string]interface {}" {
			return "canonical fields with their values, e.g. {kind: organization, stage: lead}"
		}
		return "a mapping from native value to canonical fields, e.g. {\"1\": {stage: suspect}}"
	case "when":
		return "canonical fields with their values, e.g. {kind: person}"
	case "default":
		return "a single value"
	case "required", "owner":
		return "true or false"
	case "direction":
		return "both, inbound or outbound"
	case "type":
		return "string, integer, number or boolean"
	case "transform":
		return "a list of transforms, e.g. [trim, lower]"
	}
	return expectType(into)
}

func expectType(into string) string {
	switch into {
	case "string":
		return "text"
	case "bool":
		return "true or false"
	case "[]string":
		return "a list"
	case "[]mapping.ruleYAML":
		return "a list of rules"
	case "map[string]interface {}", "map[string]map[string]interface {}":
		return "a mapping"
	}
	return into
}
