// Package yamlx is the one layer between yaml.v3 and the files admins edit
// (the configuration, its systems' type-specific keys, the mappings): it
// decodes a node into a Go struct and turns every problem into a line and a
// sentence an admin can act on. Unknown keys are found by walking the node
// against the struct's yaml tags, so the list of expected keys in a message
// is the struct itself, never a hand-kept copy, and type errors get a hint
// of what was expected ("30 is not a duration (expected e.g. 30s, 5m)").
package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem at a line of the file (0: the file as a whole).
type Error struct {
	Line int
	Msg  string
}

func (e Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Namer names the section a struct type stands for in messages ("a
// system", "the top level"); nil, or "" for a type, uses the type's name.
type Namer func(t reflect.Type) string

// Decode decodes n into v (a pointer) and returns every problem: keys the
// target struct has no yaml tag for (at any depth), and values of the wrong
// type. Decoding goes on past problems, so v holds everything that fit.
// Types that decode themselves (yaml.Unmarshaler) are not walked: they
// check their own keys.
func Decode(n *yaml.Node, v any, name Namer) []Error {
	errs := Unknown(n, reflect.TypeOf(v), name)
	if err := n.Decode(v); err != nil {
		errs = append(errs, FromYAML(err)...)
	}
	slices.SortStableFunc(errs, func(a, b Error) int { return a.Line - b.Line })
	return errs
}

var unmarshaler = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// Unknown returns an error for every mapping key in n that t (a struct, or
// a pointer, map, slice of one) has no field for. also are keys the caller
// took out of n before: they are listed as expected at the top level.
func Unknown(n *yaml.Node, t reflect.Type, name Namer, also ...string) []Error {
	var out []Error
	w := walker{name: name, also: also, out: &out}
	w.unknown(n, t)
	return out
}

type walker struct {
	name Namer
	also []string // expected keys of the top-level struct beyond its own
	out  *[]Error
}

func (w walker) unknown(n *yaml.Node, t reflect.Type) {
	inner := walker{name: w.name, out: w.out} // below the top level
	if n == nil {
		return
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			w.unknown(c, t)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if t.Implements(unmarshaler) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshaler)) {
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.unknown(n, t.Elem())
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				inner.unknown(c, t.Elem())
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				inner.unknown(n.Content[i], t.Elem())
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeOf(time.Time{}) {
			return
		}
		fields := fieldsOf(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			f, ok := fields[k.Value]
			if !ok {
				*w.out = append(*w.out, Error{k.Line, fmt.Sprintf("unknown key %q in %s (expected one of: %s)", k.Value, section(t, w.name), strings.Join(append(slices.Clone(w.also), Keys(t)...), ", "))})
				continue
			}
			inner.unknown(n.Content[i+1], f)
		}
	}
}

func section(t reflect.Type, name Namer) string {
	if name != nil {
		if s := name(t); s != "" {
			return s
		}
	}
	return strings.ToLower(t.Name())
}

// fieldsOf maps the yaml keys of struct t to their field types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		k, ok := key(f)
		if !ok {
			continue
		}
		out[k] = f.Type
	}
	return out
}

// key is the yaml key of a field, false when it has none (yaml:"-").
func key(f reflect.StructField) (string, bool) {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	switch {
	case name == "-":
		return "", false
	case name == "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

// Keys lists the yaml keys of struct t (or a pointer to one), in field order.
func Keys(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if k, ok := key(f); ok && f.IsExported() {
			out = append(out, k)
		}
	}
	return out
}

var lineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// FromYAML turns a yaml.v3 error (syntax or *yaml.TypeError) into Errors
// with lines and admin-facing text.
func FromYAML(err error) []Error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		out := make([]Error, 0, len(te.Errors))
		for _, m := range te.Errors {
			out = append(out, lineError(m))
		}
		return out
	}
	return []Error{lineError(err.Error())}
}

func lineError(msg string) Error {
	if m := lineRe.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Error{n, Hint(m[2])}
	}
	return Error{0, strings.TrimPrefix(msg, "yaml: ")}
}

var typeRe = regexp.MustCompile("^cannot unmarshal !!(\\w+) (?:`(.*)` )?into (\\S+)$")

// Hint rewrites one of yaml.v3's Go-flavoured type messages ("cannot
// unmarshal !!int `30` into time.Duration") as what was found and what was
// expected; other messages come back as they are.
func Hint(msg string) string {
	m := typeRe.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	found, val, into := m[1], m[2], m[3]
	what := map[string]string{"map": "a section of keys", "seq": "a list", "str": "text", "int": "a number", "float": "a number", "bool": "true or false", "null": "nothing"}[found]
	if val != "" {
		what = strconv.Quote(val)
		if found == "int" || found == "float" || found == "bool" {
			what = val
		}
	}
	var expected string
	switch {
	case into == "time.Duration":
		return fmt.Sprintf("%s is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)", what)
	case strings.HasPrefix(into, "[]"):
		expected = "a list (one - item per line, or [a, b])"
	case strings.HasPrefix(into, "map["):
		expected = "a section of keys"
	case strings.HasPrefix(into, "int") || strings.HasPrefix(into, "uint"):
		expected = "a whole number"
	case strings.HasPrefix(into, "float"):
		expected = "a number"
	case into == "bool":
		expected = "true or false"
	case into == "string" || strings.HasSuffix(into, "Secret"):
		expected = "a single value (text)"
	default:
		expected = "a section of keys"
	}
	return fmt.Sprintf("found %s where %s was expected", what, expected)
}
