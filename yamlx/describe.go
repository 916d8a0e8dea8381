package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Describe says what a node holds, for "found ..." in a message: "the text
// "maybe"", "the number 30", "a list", "a section of keys", "nothing".
func Describe(n *yaml.Node) string {
	if r := resolve(n); r != nil {
		n = r
	}
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a section of keys"
	case yaml.AliasNode:
		return "an alias (*" + n.Value + ")"
	}
	v := shorten(n.Value, 40)
	switch tag := n.ShortTag(); tag {
	case "!!str":
		return fmt.Sprintf("the text %q", v)
	case "!!int", "!!float":
		return "the number " + v
	case "!!bool":
		return "the boolean " + v
	case "!!null":
		return "nothing"
	case "!!timestamp":
		return "the date " + v
	default:
		return fmt.Sprintf("%q tagged %s", v, tag)
	}
}

// scalarText is a scalar as written: quoted when it is text.
func scalarText(n *yaml.Node) string {
	v := shorten(n.Value, 40)
	if n.ShortTag() == "!!str" {
		return strconv.Quote(v)
	}
	return v
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

// Expected says what a value of Go type t is, for "expected ..." in a
// message.
func Expected(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case durationType:
		return "a duration (a number with a unit, e.g. 30s, 5m, 1h)"
	case timeType:
		return "a date and time (RFC 3339, e.g. 2024-05-01T09:00:00Z)"
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list (one - item per line, or [a, b])"
	case reflect.Map, reflect.Struct:
		return "a section of keys"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a single value (text)"
	}
	return "a " + t.String()
}

var lineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// FromYAML turns an error of yaml.v3's decoding (a *yaml.TypeError, or the
// error of a type that decodes itself) into Errors with lines. Check finds
// the same problems with their keys; this is for what it cannot see.
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
		return Error{Line: n, Msg: hint(m[2])}
	}
	return Error{Msg: hint(strings.TrimPrefix(msg, "yaml: "))}
}

var typeRe = regexp.MustCompile("^cannot unmarshal !!(\\w+) (?:`(.*)` )?into (\\S+)$")

// hint rewrites one of yaml.v3's Go-flavoured type messages ("cannot
// unmarshal !!int `30` into time.Duration") as what was found and what was
// expected; other messages come back as they are.
func hint(msg string) string {
	m := typeRe.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	found, val, into := m[1], m[2], m[3]
	what := map[string]string{"map": "a section of keys", "seq": "a list", "str": "text", "int": "a number", "float": "a number", "bool": "true or false", "null": "nothing"}[found]
	if what == "" {
		what = "!!" + found
	}
	durationWhat := what
	if val != "" {
		durationWhat = val
		switch found {
		case "str":
			what, durationWhat = "the text "+strconv.Quote(val), strconv.Quote(val)
		case "int", "float":
			what = "the number " + val
		case "bool":
			what = "the boolean " + val
		default:
			what = strconv.Quote(val)
		}
	}
	var expected string
	switch {
	case into == "time.Duration":
		return fmt.Sprintf("%s is not a duration (expected a number with a unit, e.g. 30s, 5m, 1h)", durationWhat)
	case strings.HasPrefix(into, "[]"):
		expected = "a list (one - item per line, or [a, b])"
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
	return fmt.Sprintf("found %s; expected %s", what, expected)
}
