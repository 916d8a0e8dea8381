package connectors

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
)

// This file is the one rule for "does this record hold the wanted values":
// every connector's Find filters what its API returned with MatchesAll, and
// the engine takes the values it will look for with MatchText, so a value
// that finds a record in one system finds it in every other.

// MatchText is the text a native value is compared as: strings as they
// are, numbers in their shortest decimal form (1000000, not 1e+06), booleans
// as true or false, trimmed. A missing value, null, a map or a list has no
// text (false).
func MatchText(v any) (string, bool) {
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		s = strconv.FormatFloat(float64(x), 'f', -1, 32)
	case int:
		s = strconv.Itoa(x)
	case int64:
		s = strconv.FormatInt(x, 10)
	case json.Number:
		s = x.String()
	case bool:
		s = strconv.FormatBool(x)
	default:
		return "", false
	}
	return strings.TrimSpace(s), true
}

// Normalize turns a match value into its comparison form: trimmed,
// lower-case, inner spaces collapsed; loose (names) also without
// punctuation ("Acme B.V.", "ACME BV" and "acme  b.v" match). The legal
// form is kept: "Acme BV" and "Acme Ltd" are different companies.
func Normalize(v string, loose bool) string {
	v = strings.ToLower(strings.Join(strings.Fields(v), " "))
	if !loose {
		return v
	}
	v = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' {
			return r
		}
		if r == '.' {
			return -1
		}
		return ' '
	}, v)
	return strings.Join(strings.Fields(v), " ")
}

// MatchesAll reports whether fields hold every match (AND). A match's Field
// is a dotted path through nested maps; where the path meets a list, any
// item of the list may hold the value (Overplane's child rows), and a
// numeric segment picks one item. Values compare as the Normalize form of
// their MatchText (loose when the match is). A match with an empty value
// never matches: an empty field must not link two unrelated records.
func MatchesAll(fields map[string]any, match []Match) bool {
	for _, m := range match {
		want := Normalize(m.Value, m.Loose)
		if want == "" || !anyMatches(values(fields, strings.Split(m.Field, ".")), want, m.Loose) {
			return false
		}
	}
	return true
}

func anyMatches(vs []any, want string, loose bool) bool {
	for _, v := range vs {
		if s, ok := MatchText(v); ok && Normalize(s, loose) == want {
			return true
		}
	}
	return false
}

// values returns every value at path under v.
func values(v any, path []string) []any {
	if len(path) == 0 {
		return []any{v}
	}
	switch x := v.(type) {
	case map[string]any:
		e, ok := x[path[0]]
		if !ok {
			return nil
		}
		return values(e, path[1:])
	case []any:
		if i, err := strconv.Atoi(path[0]); err == nil {
			if i < 0 || i >= len(x) {
				return nil
			}
			return values(x[i], path[1:])
		}
		var out []any
		for _, e := range x {
			out = append(out, values(e, path)...)
		}
		return out
	}
	return nil
}
