package emulator

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
)

// queryParam is one decoded query-string parameter, in request order.
type queryParam struct{ key, value string }

// parseRawQuery splits a raw query string. Unlike url.ParseQuery it decodes
// with url.PathUnescape, so a literal '+' stays '+' (Tribe does not read '+'
// as a space; see filter.go).
func parseRawQuery(raw string) ([]queryParam, error) {
	var out []queryParam
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.PathUnescape(k)
		if err != nil {
			return nil, qerr("Malformed query string near '%s'.", k)
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			return nil, qerr("Malformed value for query option '%s'.", dk)
		}
		out = append(out, queryParam{dk, dv})
	}
	return out, nil
}

// escapeQueryValue escapes a query value with %20 for spaces (never '+').
func escapeQueryValue(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// odataQuery holds the parsed system query options of one request.
type odataQuery struct {
	filter  *filterExpr
	orderby []orderItem
	top     int // -1: not given
	skip    int
	count   bool
	sel     map[string]bool // nil: all
	expand  []expandItem
	params  []queryParam
}

// parseODataQuery parses and validates the system query options against t.
// collection says whether collection options ($filter, $top, ...) are allowed.
func parseODataQuery(raw string, t *typeDef, collection bool) (*odataQuery, error) {
	params, err := parseRawQuery(raw)
	if err != nil {
		return nil, err
	}
	q := &odataQuery{top: -1, params: params}
	seen := map[string]bool{}
	for _, p := range params {
		if !strings.HasPrefix(p.key, "$") {
			continue // access_token and custom parameters
		}
		if seen[p.key] {
			return nil, qerr("The system query option '%s' is given more than once.", p.key)
		}
		seen[p.key] = true
		switch p.key {
		case "$filter", "$orderby", "$top", "$skip", "$count":
			if !collection {
				return nil, qerr("The system query option '%s' is not allowed on a single entity.", p.key)
			}
		}
		switch p.key {
		case "$filter":
			if q.filter, err = compileFilter(p.value, t); err != nil {
				return nil, err
			}
		case "$orderby":
			if q.orderby, err = parseOrderBy(p.value, t); err != nil {
				return nil, err
			}
		case "$top", "$skip":
			n, err := strconv.Atoi(p.value)
			if err != nil || n < 0 {
				return nil, qerr("Invalid value '%s' for %s: a non-negative integer is required.", p.value, p.key)
			}
			if p.key == "$top" {
				q.top = n
			} else {
				q.skip = n
			}
		case "$count":
			switch p.value {
			case "true":
				q.count = true
			case "false":
			default:
				return nil, qerr("Invalid value '%s' for $count: true or false is required.", p.value)
			}
		case "$select":
			if q.sel, err = parseSelect(p.value, t); err != nil {
				return nil, err
			}
		case "$expand":
			if q.expand, err = parseExpand(p.value, t); err != nil {
				return nil, err
			}
		case "$skiptoken":
			n, ok := parseSkipToken(p.value)
			if !ok || !collection {
				return nil, qerr("Invalid $skiptoken '%s': use the @odata.nextLink the server sent.", p.value)
			}
			q.skip = n
		case "$format":
			if p.value != "json" && !strings.HasPrefix(p.value, "application/json") {
				return nil, qerr("Unsupported $format '%s'.", p.value)
			}
		default:
			return nil, qerr("The system query option '%s' is not supported.", p.key)
		}
	}
	return q, nil
}

func parseSelect(s string, t *typeDef) (map[string]bool, error) {
	sel := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		switch {
		case item == "*":
			return nil, nil
		case item == "":
			return nil, qerr("Empty item in $select.")
		}
		if _, ok := t.props[item]; ok {
			sel[item] = true
			continue
		}
		if _, ok := t.navs[item]; ok {
			continue // selecting a navigation has no effect without $expand
		}
		return nil, qerr("Could not find a property named '%s' on type '%s'.", item, t.name)
	}
	return sel, nil
}

// splitTop splits s on sep outside parentheses and quotes.
func splitTop(s string, sep byte) []string {
	var out []string
	depth, start, inStr := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			inStr = !inStr
		case inStr:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == sep && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func parseExpand(s string, t *typeDef) ([]expandItem, error) {
	var out []expandItem
	for _, item := range splitTop(s, ',') {
		item = strings.TrimSpace(item)
		name, opts, hasOpts := strings.Cut(item, "(")
		name = strings.TrimSpace(name)
		target, ok := t.navs[name]
		if !ok {
			if _, isProp := t.props[name]; isProp {
				return nil, qerr("The property '%s' is not a navigation property and cannot be expanded.", name)
			}
			return nil, qerr("Could not find a navigation property named '%s' on type '%s'.", name, t.name)
		}
		x := expandItem{nav: name}
		if hasOpts {
			if !strings.HasSuffix(opts, ")") {
				return nil, qerr("Missing ')' in $expand item '%s'.", item)
			}
			opts = strings.TrimSuffix(opts, ")")
			for _, o := range splitTop(opts, ';') {
				k, v, _ := strings.Cut(strings.TrimSpace(o), "=")
				var err error
				switch k {
				case "$select":
					x.sel, err = parseSelect(v, target)
				case "$expand":
					x.expand, err = parseExpand(v, target)
				default:
					err = qerr("The option '%s' is not supported inside $expand.", k)
				}
				if err != nil {
					return nil, err
				}
			}
		}
		out = append(out, x)
	}
	return out, nil
}

// skipToken is the opaque $skiptoken of ServerPaging: the offset, encoded
// so that a client cannot take it for a number.
func skipToken(skip int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("emu:" + strconv.Itoa(skip)))
}

func parseSkipToken(s string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(b), "emu:") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "emu:"))
	return n, err == nil && n >= 0
}
