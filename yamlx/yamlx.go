// Package yamlx is the one layer between yaml.v3 and the files admins edit
// (the configuration, its systems' type-specific keys, the mappings): it
// reads a file into a node, decodes the node into a Go struct and turns
// every problem into a line and a sentence an admin can act on.
//
//   - Parse reads exactly one document and reports syntax errors at the line
//     at fault (yaml.v3 names the line where the enclosing block began, and
//     counts from 0 in parser errors), with a hint for tabs in indentation,
//     and keys written twice, once each with both lines.
//   - Check and Decode walk the node against the target type's yaml tags:
//     unknown keys are reported with the keys expected there (the struct
//     itself, never a hand-kept copy) or a did-you-mean, and a value of the
//     wrong type names its key, what was found and what was expected
//     ("timeout: 30 is not a duration (expected a number with a unit, e.g.
//     30s, 5m, 1h)"). The walk decodes each scalar on its own with yaml.v3,
//     so what it accepts is what yaml.v3 accepts (FuzzDecode holds it to
//     that). yaml.v3's messages are read only for the line of a syntax
//     error, and by FromYAML for errors the walk cannot see (those of a
//     type that decodes itself).
//   - Suggest and DidYouMean offer the name an admin probably meant.
package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem at a line of the file (0: the file as a whole).
type Error struct {
	Line int
	Msg  string

	// For a value that does not fit its Go type (Type is set): Key is the
	// key it is the value of ("" at the top of the walk, the list's key for
	// a list item, the section's key for a value in a map), Node the value
	// as written. Callers may word such problems their own way.
	Key  string
	Node *yaml.Node
	Type reflect.Type
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Schema says how to word the problems of one kind of file. Every field may
// be left zero.
type Schema struct {
	// Section names the part of the file a struct type stands for in
	// messages ("a rule", "a flow"). "" uses "top-level" for the type the
	// walk starts at and the lower-cased type name below it.
	Section func(t reflect.Type) string
	// Expect says what the value of key should be when it does not fit t
	// ("true or false", "a list of rules"); "" says it from t alone.
	Expect func(key string, t reflect.Type) string
	// Also are keys the caller took out of the top-level mapping before:
	// they are listed as expected there.
	Also []string
}

// Decode decodes n into v (a pointer) and returns every problem: keys
// written twice (Dedupe), keys v's type has no yaml tag for (at any depth)
// and values of the wrong type (Check). Decoding goes on past problems, so
// v holds everything that fit.
func Decode(n *yaml.Node, v any, s Schema) []Error {
	errs := Dedupe(n)
	found := Check(n, reflect.TypeOf(v), s)
	errs = append(errs, found...)
	if err := Unmarshal(n, v); err != nil && len(found) == 0 {
		// Check agrees with yaml.v3 on what decodes (see the fuzz test);
		// this is what it cannot see, such as excessive aliasing.
		errs = append(errs, FromYAML(err)...)
	}
	slices.SortStableFunc(errs, func(a, b Error) int { return a.Line - b.Line })
	return errs
}

// Unmarshal is n.Decode(v) that never panics: yaml.v3's own panics (a
// merge key beside a key that is a list: it hashes the list) come back as
// an error. Use it for every decode of a file an admin wrote.
func Unmarshal(n *yaml.Node, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot read the file as YAML: %v", p)
		}
	}()
	return n.Decode(v)
}

var (
	unmarshaler  = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	nodeType     = reflect.TypeOf(yaml.Node{})
	durationType = reflect.TypeOf(time.Duration(0))
	timeType     = reflect.TypeOf(time.Time{})
)

// Check returns a problem for every key in n that t (a struct, or a pointer,
// map or slice of one) has no field for, and for every value that does not
// decode into its field's type. It does not decode anything into a value
// the caller keeps, and does not look for keys written twice (Dedupe).
// Types that decode themselves (yaml.Unmarshaler) are decoded on their own
// and report what yaml.v3 reports.
func Check(n *yaml.Node, t reflect.Type, s Schema) []Error {
	w := &walker{s: s, seen: map[visit]bool{}}
	w.walk(n, t, "", true)
	return w.out
}

type walker struct {
	s    Schema
	out  []Error
	seen map[visit]bool // an anchored node is checked once per use as a type
}

type visit struct {
	n   *yaml.Node
	t   reflect.Type
	key string
}

// resolve follows aliases (nil for a dangling or looping one).
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// isMerge is yaml.v3's test for a "<<" merge key.
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "" || k.Tag == "!" || k.ShortTag() == "!!merge")
}

func decodesItself(t reflect.Type) bool {
	return t.Implements(unmarshaler) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshaler))
}

// walk checks n against t; key is the key n is (below) the value of, top
// whether t is the type the walk started at.
func (w *walker) walk(n *yaml.Node, t reflect.Type, key string, top bool) {
	if n != nil && n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			w.walk(c, t, key, top)
		}
		return
	}
	if n = resolve(n); isNull(n) || t == nil {
		return // null decodes into anything (as its zero value)
	}
	v := visit{n, t, key}
	if w.seen[v] {
		return
	}
	w.seen[v] = true
	if t == nodeType || t == reflect.PointerTo(nodeType) {
		return
	}
	if decodesItself(t) {
		if err := Unmarshal(n, reflect.New(t).Interface()); err != nil {
			for _, e := range FromYAML(err) {
				if key != "" && e.Line == n.Line {
					e.Msg = key + ": " + e.Msg
				}
				e.Line = max(e.Line, n.Line)
				e.Key, e.Node, e.Type = key, n, t
				w.out = append(w.out, e)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.walk(n, t.Elem(), key, top)
	case reflect.Interface:
		// Anything decodes into an interface.
	case reflect.Struct:
		if t == timeType {
			w.leaf(n, t, key)
			return
		}
		if n.Kind != yaml.MappingNode {
			w.wrongType(n, t, key)
			return
		}
		w.structPairs(n, t, key, top)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.wrongType(n, t, key)
			return
		}
		w.mapPairs(n, t, key)
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			w.wrongType(n, t, key)
			return
		}
		for _, c := range n.Content {
			w.walk(c, t.Elem(), key, false)
		}
	default:
		w.leaf(n, t, key)
	}
}

func (w *walker) structPairs(n *yaml.Node, t reflect.Type, key string, top bool) {
	fields, rest := fieldsOf(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case k == nil:
			continue
		case isMerge(k):
			w.merge(v, t, key, top)
		case k.Kind != yaml.ScalarNode:
			w.badKey(k, t, top)
		default:
			if f, ok := fields[k.Value]; ok {
				w.walk(v, f, k.Value, false)
			} else if rest != nil {
				w.walk(v, rest.Elem(), k.Value, false)
			} else {
				w.unknown(k, t, top)
			}
		}
	}
}

func (w *walker) mapPairs(n *yaml.Node, t reflect.Type, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		switch {
		case k == nil:
			continue
		case isMerge(k):
			w.merge(v, t, key, false)
			continue
		case k.Kind != yaml.ScalarNode:
			if t.Key().Kind() != reflect.Interface {
				w.badKey(k, t, false)
				continue
			}
		case !isNull(k):
			w.leaf(k, t.Key(), key)
		}
		w.walk(v, t.Elem(), key, false)
	}
}

// merge checks the value of a "<<" key: one mapping or a list of them (as
// yaml.v3 takes it), each merged into t.
func (w *walker) merge(v *yaml.Node, t reflect.Type, key string, top bool) {
	var parts []*yaml.Node
	switch v.Kind {
	case yaml.MappingNode, yaml.AliasNode:
		parts = []*yaml.Node{v}
	case yaml.SequenceNode:
		parts = v.Content
	default:
		parts = []*yaml.Node{v}
	}
	for _, p := range parts {
		if r := resolve(p); r == nil || r.Kind != yaml.MappingNode {
			w.out = append(w.out, Error{Line: p.Line, Msg: fmt.Sprintf("<<: found %s; expected a section of keys to merge in (<<: *name) or a list of them", Describe(p)), Key: "<<", Node: p, Type: t})
			return
		}
	}
	for _, p := range parts {
		w.walk(p, t, key, top)
	}
}

// leaf decodes a scalar on its own into t, as yaml.v3 does in place.
func (w *walker) leaf(n *yaml.Node, t reflect.Type, key string) {
	if n.Kind != yaml.ScalarNode {
		w.wrongType(n, t, key)
		return
	}
	err := Unmarshal(n, reflect.New(t).Interface())
	if err == nil {
		return
	}
	var te *yaml.TypeError
	if errors.As(err, &te) || t == timeType {
		w.wrongType(n, t, key)
		return
	}
	// An encoding.TextUnmarshaler's own error.
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if key != "" {
		msg = key + ": " + msg
	}
	w.out = append(w.out, Error{Line: n.Line, Msg: msg, Key: key, Node: n, Type: t})
}

func (w *walker) wrongType(n *yaml.Node, t reflect.Type, key string) {
	var msg string
	exp := ""
	if w.s.Expect != nil {
		exp = w.s.Expect(key, t)
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case exp == "" && t == durationType && n.Kind == yaml.ScalarNode:
		msg = fmt.Sprintf("%s is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)", scalarText(n))
	case exp == "":
		msg = fmt.Sprintf("found %s; expected %s", Describe(n), Expected(t))
	default:
		msg = fmt.Sprintf("found %s; expected %s", Describe(n), exp)
	}
	if key != "" {
		msg = key + ": " + msg
	}
	w.out = append(w.out, Error{Line: n.Line, Msg: msg, Key: key, Node: n, Type: t})
}

func (w *walker) badKey(k *yaml.Node, t reflect.Type, top bool) {
	msg := fmt.Sprintf("a key is %s; expected a single value (text)", Describe(k))
	if t.Kind() == reflect.Struct {
		msg = fmt.Sprintf("a key in %s is %s; expected one of: %s", w.section(t, top), Describe(k), strings.Join(Keys(t), ", "))
	}
	w.out = append(w.out, Error{Line: k.Line, Msg: msg, Node: k, Type: reflect.TypeOf("")})
}

func (w *walker) unknown(k *yaml.Node, t reflect.Type, top bool) {
	valid := Keys(t)
	if top {
		valid = append(slices.Clone(w.s.Also), valid...)
	}
	where := w.section(t, top)
	if isNull(k) || k.Value == "" {
		w.out = append(w.out, Error{Line: k.Line, Msg: fmt.Sprintf("a key in %s is empty; expected one of: %s", where, strings.Join(valid, ", "))})
		return
	}
	msg := fmt.Sprintf("unknown key %q in %s", k.Value, where)
	if where == topLevel {
		msg = fmt.Sprintf("unknown top-level key %q", k.Value)
	}
	w.out = append(w.out, Error{Line: k.Line, Msg: msg + "; " + Suggest(k.Value, valid)})
}

const topLevel = "the top level"

func (w *walker) section(t reflect.Type, top bool) string {
	if w.s.Section != nil {
		if s := w.s.Section(t); s != "" {
			return s
		}
	}
	if top {
		return topLevel
	}
	return strings.ToLower(t.Name())
}

// fieldsOf maps the yaml keys of struct t to their field types, with the
// fields of inlined structs; rest is an inlined map's type, which takes
// every other key.
func fieldsOf(t reflect.Type) (fields map[string]reflect.Type, rest reflect.Type) {
	fields = map[string]reflect.Type{}
	eachField(t, func(k string, f reflect.Type) { fields[k] = f }, func(m reflect.Type) { rest = m })
	return fields, rest
}

// eachField calls key for every yaml key of struct t in field order (the
// fields of ",inline" structs in place), and inlineMap for an inlined map.
func eachField(t reflect.Type, key func(string, reflect.Type), inlineMap func(reflect.Type)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Map {
				if inlineMap != nil {
					inlineMap(ft)
				}
			} else {
				eachField(ft, key, inlineMap)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		key(name, f.Type)
	}
}

// Keys lists the yaml keys of struct t (or a pointer to one), in field order.
func Keys(t reflect.Type) []string {
	var out []string
	eachField(t, func(k string, _ reflect.Type) { out = append(out, k) }, nil)
	return out
}
