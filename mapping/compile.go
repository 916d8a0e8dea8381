package mapping

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/crmsync/crmsync/funnel"
)

// EntityField is the pseudo native field that stands for Native.Entity.
const EntityField = "@entity"

// Mapping is a compiled, validated mapping between one system's native
// records and canonical funnel records. It is immutable once compiled and
// safe for concurrent use.
type Mapping struct {
	// System is the system the mapping is for ("tribecrm", ...).
	System string
	// File is the file the mapping was compiled from, as given to Parse.
	File string

	rules     []*rule // file order, used outbound
	inbound   []*rule // rules without when first, then the others; file order within each
	rulesLine int
	// carried is the set of canonical fields some inbound rule sets,
	// computed once (Carries is asked for every field of every record).
	carried sync.Once
	carries map[string]bool
}

type direction int

const (
	dirBoth direction = iota
	dirInbound
	dirOutbound
)

func (d direction) in() bool  { return d != dirOutbound }
func (d direction) out() bool { return d != dirInbound }

// nativeType is the JSON type a rule writes into the native payload.
type nativeType int

const (
	typeString nativeType = iota
	typeInteger
	typeNumber
	typeBoolean
)

var typeNames = []string{"string", "integer", "number", "boolean"}

func (t nativeType) String() string { return typeNames[t] }

type transform int

const (
	tTrim transform = iota
	tLower
	tUpper
	tDigits
)

var transformNames = []string{"trim", "lower", "upper", "digits"}

func (t transform) apply(s string) string {
	switch t {
	case tTrim:
		return strings.TrimSpace(s)
	case tLower:
		return strings.ToLower(s)
	case tUpper:
		return strings.ToUpper(s)
	case tDigits:
		var b strings.Builder
		for i, r := range strings.TrimSpace(s) {
			if (r >= '0' && r <= '9') || (r == '+' && i == 0) {
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	return s
}

// cond is one canonical field = value test (a when entry, or a value-map
// assignment). Values are normalised: a string or a bool.
type cond struct {
	field string
	value any
}

type valueEntry struct {
	raw  string // the key as written
	key  string // the key to match native values against
	out  any    // the native value written outbound
	set  []cond // canonical fields it sets, in file order
	line int
}

// rule is one compiled rule.
type rule struct {
	line       int
	native     string   // native path, EntityField, or ""
	path       []string // native split on dots
	canonical  string   // canonical field, or ""
	spec       funnel.FieldSpec
	values     []valueEntry
	when       []cond
	hasDefault bool
	inDefault  any // canonical value (canonical rules) or value-map key (values rules)
	outDefault any // native value
	owner      bool
	required   bool
	dir        direction
	typ        nativeType
	transforms []transform
}

func (r *rule) isValues() bool     { return r.values != nil }
func (r *rule) writesNative() bool { return r.native != "" && r.dir.out() }

// canonicalWrites lists the canonical fields a rule can set inbound.
func (r *rule) canonicalWrites() []string {
	if r.canonical != "" {
		return []string{r.canonical}
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range r.values {
		for _, s := range e.set {
			if !seen[s.field] {
				seen[s.field] = true
				out = append(out, s.field)
			}
		}
	}
	return out
}

var reSystem = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

func compile(file string, t *fileTree, c *errs) *Mapping {
	m := &Mapping{System: t.system, File: file, rulesLine: max(t.rulesLine, 1)}
	switch {
	case !t.hasSystem:
		c.add(max(t.line, 1), "the key system is missing; expected the system name, e.g. system: tribecrm")
	case t.system == "":
		c.add(t.systemLine, "system is empty; expected the system name, e.g. system: tribecrm")
	case !reSystem.MatchString(t.system):
		c.add(t.systemLine, "system %q is not a valid system name; expected lower-case letters, digits, - or _, as the connector names it (e.g. tribecrm)", t.system)
	}
	if !t.hasRules {
		c.add(max(t.line, 1), "the key rules is missing; expected a list of rules")
	} else if t.ruleItems == 0 {
		c.add(t.rulesLine, "rules is empty; expected at least one rule")
	}

	allGood := t.ruleItems == len(t.rules)
	for _, rt := range t.rules {
		if rt.broken {
			allGood = false
			continue
		}
		r, ok := compileRule(rt, c)
		if !ok {
			allGood = false
			continue
		}
		m.rules = append(m.rules, r)
	}
	checkConflicts(m.rules, c)

	if allGood && len(m.rules) > 0 {
		setsKind := false
		for _, r := range m.rules {
			if r.dir.in() {
				for _, f := range r.canonicalWrites() {
					setsKind = setsKind || f == funnel.FieldKind
				}
			}
		}
		if !setsKind {
			c.add(m.rulesLine, "no rule sets the canonical field kind inbound, but every record needs one; add a constant such as {canonical: kind, default: organization}, or a values map that sets kind")
		}
	}
	for _, r := range m.rules {
		if len(r.when) == 0 {
			m.inbound = append(m.inbound, r)
		}
	}
	for _, r := range m.rules {
		if len(r.when) > 0 {
			m.inbound = append(m.inbound, r)
		}
	}
	return m
}

func compileRule(rt *ruleTree, c *errs) (*rule, bool) {
	y := rt.r
	r := &rule{line: rt.line, required: y.Required, owner: y.Owner}
	ok := true
	bad := func(line int, format string, args ...any) {
		c.add(line, format, args...)
		ok = false
	}
	hasNative, hasCanon, hasValues := rt.has("native"), rt.has("canonical"), rt.has("values")
	constIn := hasCanon && !hasNative
	constOut := hasNative && !hasCanon && !hasValues

	// direction
	switch y.Direction {
	case "both":
	case "inbound":
		r.dir = dirInbound
	case "outbound":
		r.dir = dirOutbound
	case "":
		if rt.has("direction") {
			bad(rt.lineOf("direction"), "direction is empty; expected both, inbound or outbound")
		}
	default:
		bad(rt.lineOf("direction"), "direction %q is not known; %s", y.Direction, suggest(y.Direction, []string{"both", "inbound", "outbound"}))
	}

	// native
	if hasNative {
		r.native = y.Native
		switch {
		case strings.TrimSpace(y.Native) == "":
			bad(rt.lineOf("native"), "native is empty; expected a native field path such as Organization.Name, or @entity")
		case strings.HasPrefix(y.Native, "@"):
			if y.Native != EntityField {
				bad(rt.lineOf("native"), "unknown pseudo-field %q; the only pseudo-field is @entity (the record's entity or collection)", y.Native)
			}
			r.path = []string{y.Native}
		case strings.ContainsAny(y.Native, " \t\r\n"):
			bad(rt.lineOf("native"), "native field path %q contains spaces; expected names separated by dots, e.g. Organization.Name", y.Native)
		default:
			r.path = strings.Split(y.Native, ".")
			for _, p := range r.path {
				if p == "" {
					bad(rt.lineOf("native"), "native field path %q has an empty part; expected names separated by single dots, e.g. Organization.Name", y.Native)
					break
				}
			}
		}
	}

	// canonical
	if hasCanon {
		r.canonical = y.Canonical
		if y.Canonical == "" {
			bad(rt.lineOf("canonical"), "canonical is empty; expected a canonical field name (%s)", strings.Join(funnel.FieldNames(), ", "))
		} else if spec, found := funnel.Lookup(y.Canonical); !found {
			bad(rt.lineOf("canonical"), "unknown canonical field %q; %s", y.Canonical, suggest(y.Canonical, funnel.FieldNames()))
		} else {
			r.spec = spec
		}
	}

	// shape
	switch {
	case hasValues && hasCanon:
		bad(rt.lineOf("values"), "a rule has canonical or values, not both: values sets canonical fields itself (remove canonical, or remove values)")
	case hasValues && !hasNative:
		bad(rt.lineOf("values"), "values needs native: the native field whose value is looked up in the map")
	case !hasNative && !hasCanon && !hasValues:
		bad(rt.line, "the rule maps nothing; expected native with canonical (or values), canonical with default (a constant set inbound), or native with default (a constant sent outbound)")
	case hasNative && !hasCanon && !hasValues && !rt.has("default"):
		bad(rt.line, "native field %s is mapped to nothing; add canonical (or values), or a default to send as a constant", y.Native)
	case hasCanon && !hasNative && !rt.has("default"):
		bad(rt.line, "canonical field %s has no native field; add native, or a default to set it as a constant", y.Canonical)
	}
	if hasValues && len(rt.values) == 0 && len(y.Values) == 0 {
		bad(rt.lineOf("values"), "values is empty; expected native values with the canonical fields they set, e.g. {\"1\": {stage: suspect}}")
	}

	// default, required
	r.hasDefault = rt.has("default")
	if r.hasDefault {
		switch y.Default.(type) {
		case nil:
			bad(rt.lineOf("default"), "default is empty; expected a value (quote it if it is text)")
			r.hasDefault = false
		case string, bool, int, int64, uint64, float64:
		default:
			bad(rt.lineOf("default"), "default must be a single value, not %s", show(y.Default))
			r.hasDefault = false
		}
	}
	if y.Owner && (!r.dir.in() || !hasNative) {
		bad(rt.lineOf("owner"), "owner needs an inbound rule with native: it says this system's value for the canonical field always wins")
	}
	if y.Required {
		if r.hasDefault {
			bad(rt.lineOf("required"), "required and default exclude each other: with a default the value is never missing (remove one)")
		}
		if !hasNative {
			bad(rt.lineOf("required"), "required needs native: it says the native field must hold a value")
		}
	}
	if hasCanon && !hasNative && r.dir == dirOutbound {
		bad(rt.lineOf("direction"), "a rule without native has nothing to send outbound; it sets a canonical constant inbound (use direction: inbound or remove direction)")
	}
	if hasNative && !hasCanon && !hasValues && r.dir == dirInbound {
		bad(rt.lineOf("direction"), "a rule without canonical or values has nothing to read inbound; it sends a native constant outbound (use direction: outbound or remove direction)")
	}

	// type
	typeGiven := y.Type != ""
	switch y.Type {
	case "", "string":
		r.typ = typeString
	case "integer":
		r.typ = typeInteger
	case "number":
		r.typ = typeNumber
	case "boolean":
		r.typ = typeBoolean
	default:
		bad(rt.lineOf("type"), "type %q is not known; %s", y.Type, suggest(y.Type, typeNames))
	}
	if rt.has("type") && y.Type == "" {
		bad(rt.lineOf("type"), "type is empty; expected string, integer, number or boolean")
	}
	if !typeGiven {
		switch {
		case r.spec.Name != "" && r.spec.Type == funnel.Bool:
			r.typ = typeBoolean
		case constOut:
			r.typ = inferType(y.Default)
		}
	}
	if typeGiven && r.typ != typeString && r.native == EntityField {
		bad(rt.lineOf("type"), "@entity is the entity name, always text; remove type")
	}
	if typeGiven && r.spec.Name != "" {
		allowed := allowedTypes(r.spec.Type)
		okType := false
		for _, a := range allowed {
			okType = okType || a == r.typ
		}
		if !okType {
			names := make([]string, len(allowed))
			for i, a := range allowed {
				names[i] = a.String()
			}
			bad(rt.lineOf("type"), "type %s does not fit canonical field %s, which is a %s; expected %s", r.typ, r.spec.Name, r.spec.Type, strings.Join(names, " or "))
		}
	}

	// transforms
	for i, tf := range y.Transform {
		line := rt.lineOf("transform")
		if i < len(rt.tforms) {
			line = rt.tforms[i].line
		}
		found := false
		for k, n := range transformNames {
			if n == tf {
				r.transforms = append(r.transforms, transform(k))
				found = true
			}
		}
		if !found {
			bad(line, "unknown transform %q; %s", tf, suggest(tf, transformNames))
		}
	}
	if len(y.Transform) > 0 {
		switch {
		case constOut || constIn:
			bad(rt.lineOf("transform"), "transform has no effect on a constant; write the default as it should be")
		case r.spec.Name != "" && r.spec.Type != funnel.String:
			bad(rt.lineOf("transform"), "transforms change text, but canonical field %s is a %s; remove transform", r.spec.Name, r.spec.Type)
		case hasValues && r.typ != typeString:
			bad(rt.lineOf("transform"), "transforms change text, but this value map matches %s values; remove transform", r.typ)
		}
	}

	// when
	r.when = compileConds(y.When, rt.when, rt.lineOf("when"), "when", c, &ok)

	if !ok {
		return nil, false
	}

	// values
	if hasValues {
		r.values = []valueEntry{}
		seen := map[string]int{}
		for _, vt := range orderedValues(rt, y.Values) {
			e := valueEntry{raw: vt.key, line: vt.line}
			key, err := r.matchKey(vt.key)
			if err != nil {
				bad(vt.line, "values key %q: %v", vt.key, err)
				continue
			}
			e.key = key
			e.out = r.keyOut(key, vt.key)
			if first, dup := seen[key]; dup {
				bad(vt.line, "values key %q matches the same native value as the key at line %d; keep one", vt.key, first)
				continue
			}
			seen[key] = vt.line
			if len(y.Values[vt.key]) == 0 {
				bad(vt.line, "values key %q sets no canonical field; expected e.g. {stage: lead}", vt.key)
				continue
			}
			e.set = compileConds(y.Values[vt.key], vt.assign, vt.line, fmt.Sprintf("values key %q", vt.key), c, &ok)
			r.values = append(r.values, e)
		}
		if !ok {
			return nil, false
		}
	}

	// defaults
	if r.hasDefault {
		dl := rt.lineOf("default")
		switch {
		case r.isValues():
			key, err := r.matchKey(scalarString(y.Default))
			if err != nil {
				bad(dl, "default %s: %v", show(y.Default), err)
				break
			}
			var hit *valueEntry
			for i := range r.values {
				if r.values[i].key == key {
					hit = &r.values[i]
				}
			}
			if hit == nil && !r.dir.in() {
				// An outbound-only value map may fall back to any native
				// value: it is what is written when no entry matches.
				r.outDefault = scalarString(y.Default)
				break
			}
			if hit == nil {
				keys := make([]string, len(r.values))
				for i, e := range r.values {
					keys[i] = e.raw
				}
				bad(dl, "default %s is not one of the values keys; expected one of: %s", show(y.Default), strings.Join(keys, ", "))
				break
			}
			r.inDefault, r.outDefault = hit.key, hit.out
		case r.canonical != "":
			v, err := r.toCanonical(y.Default)
			if err != nil {
				bad(dl, "default: %v", err)
				break
			}
			if s, isStr := v.(string); isStr && s == "" {
				bad(dl, "default is empty; expected a value")
				break
			}
			r.inDefault = v
			if r.native != "" {
				if r.outDefault, err = r.toNative(v); err != nil {
					bad(dl, "default: %v", err)
				}
			}
		default:
			v, err := nativeConst(y.Default, r.typ)
			if err != nil {
				bad(dl, "default: %v", err)
				break
			}
			if s, isStr := v.(string); isStr && strings.TrimSpace(s) == "" {
				bad(dl, "default is empty; expected a value")
				break
			}
			if r.native == EntityField {
				if _, isStr := v.(string); !isStr {
					bad(dl, "default for @entity must be an entity name (text), not %s", show(y.Default))
				}
			}
			r.outDefault = v
		}
	}
	return r, ok
}

// orderedValues returns the value-map entries in file order, plus any the
// node walk could not place (merged from an anchor), sorted.
func orderedValues(rt *ruleTree, decoded map[string]map[string]any) []valueTree {
	var out []valueTree
	seen := map[string]bool{}
	for _, vt := range rt.values {
		if _, ok := decoded[vt.key]; ok && !seen[vt.key] {
			seen[vt.key] = true
			out = append(out, vt)
		}
	}
	var rest []string
	for k := range decoded {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		out = append(out, valueTree{key: k, line: rt.lineOf("values")})
	}
	return out
}

// compileConds checks canonical field = value pairs (when, or one value-map
// entry) and returns them normalised, in file order.
func compileConds(decoded map[string]any, pairs []pairTree, fallback int, where string, c *errs, ok *bool) []cond {
	lines := map[string]int{}
	var order []string
	for _, p := range pairs {
		if _, in := decoded[p.key]; in {
			if _, dup := lines[p.key]; !dup {
				order = append(order, p.key)
			}
			lines[p.key] = p.line
		}
	}
	var rest []string
	for k := range decoded {
		if _, in := lines[k]; !in {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		lines[k] = fallback
		order = append(order, k)
	}
	var out []cond
	for _, f := range order {
		line, v := lines[f], decoded[f]
		if _, known := funnel.Lookup(f); !known {
			c.add(line, "%s: unknown canonical field %q; %s", where, f, suggest(f, funnel.FieldNames()))
			*ok = false
			continue
		}
		if v == nil {
			c.add(line, "%s: canonical field %s has no value; expected a value", where, f)
			*ok = false
			continue
		}
		nv, err := normalizeConst(f, v)
		if err != nil {
			c.add(line, "%s: %v", where, err)
			*ok = false
			continue
		}
		out = append(out, cond{field: f, value: nv})
	}
	return out
}

// normalizeConst normalises a value written in the mapping for canonical
// field f, with a suggestion for misspelt kinds and stages.
func normalizeConst(f string, v any) (any, error) {
	switch v.(type) {
	case string, bool, int, int64, uint64, float64:
	default:
		return nil, fmt.Errorf("canonical field %s needs a single value, not %s", f, show(v))
	}
	if u, isU := v.(uint64); isU {
		v = float64(u)
	}
	nv, err := funnel.Normalize(f, v)
	if err != nil {
		spec, _ := funnel.Lookup(f)
		var valid []string
		switch spec.Type {
		case funnel.KindType:
			valid = []string{string(funnel.Organization), string(funnel.Person)}
		case funnel.StageType:
			for _, s := range funnel.Stages() {
				valid = append(valid, string(s))
			}
		}
		if s, isStr := v.(string); isStr && valid != nil {
			if near := nearest(s, valid); len(near) > 0 {
				return nil, fmt.Errorf("%v (did you mean %s?)", err, quoteList(near, " or "))
			}
		}
		return nil, err
	}
	if s, isStr := nv.(string); isStr && s == "" {
		return nil, fmt.Errorf("canonical field %s: the value is empty; expected a value", f)
	}
	return nv, nil
}

func allowedTypes(t funnel.Type) []nativeType {
	switch t {
	case funnel.String:
		return []nativeType{typeString, typeInteger, typeNumber}
	case funnel.Bool:
		return []nativeType{typeBoolean, typeString, typeInteger}
	}
	return []nativeType{typeString}
}

func inferType(v any) nativeType {
	switch v.(type) {
	case bool:
		return typeBoolean
	case int, int64, uint64:
		return typeInteger
	case float64:
		return typeNumber
	}
	return typeString
}

// checkConflicts reports rules that would write the same canonical field
// inbound, or the same native field outbound, for the same records.
func checkConflicts(rules []*rule, c *errs) {
	for j, b := range rules {
		for _, a := range rules[:j] {
			if !overlap(a.when, b.when) {
				continue
			}
			if a.dir.in() && b.dir.in() {
				var shared []string
				bw := b.canonicalWrites()
				for _, fa := range a.canonicalWrites() {
					for _, fb := range bw {
						if fa == fb {
							shared = append(shared, fa)
						}
					}
				}
				if len(shared) > 0 {
					c.add(b.line, "canonical field %s is also set inbound by the rule at line %d; two rules may set the same canonical field only under different when conditions (or make one of them direction: outbound)", strings.Join(shared, ", "), a.line)
				}
			}
			if a.writesNative() && b.writesNative() {
				switch {
				case a.native == b.native:
					c.add(b.line, "native field %s is also written outbound by the rule at line %d; give them different when conditions, or make one of them direction: inbound", b.native, a.line)
				case pathInside(b.path, a.path):
					c.add(b.line, "native field %s lies inside %s, which the rule at line %d writes outbound as a whole; give them different when conditions, or make one of them direction: inbound", b.native, a.native, a.line)
				case pathInside(a.path, b.path):
					c.add(b.line, "native field %s would replace %s, which the rule at line %d writes outbound; give them different when conditions, or make one of them direction: inbound", b.native, a.native, a.line)
				}
			}
		}
	}
}

// pathInside reports whether inner is a strict descendant of outer.
func pathInside(inner, outer []string) bool {
	if len(inner) <= len(outer) {
		return false
	}
	for i := range outer {
		if inner[i] != outer[i] {
			return false
		}
	}
	return true
}

// overlap reports whether some record can satisfy both when lists.
func overlap(a, b []cond) bool {
	for _, x := range a {
		for _, y := range b {
			if x.field == y.field && x.value != y.value {
				return false
			}
		}
	}
	return true
}

// matchKey turns a native value (as text) into the key a value map is
// matched on, per the rule's type and transforms.
func (r *rule) matchKey(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch r.typ {
	case typeInteger:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f != math.Trunc(f) || math.IsInf(f, 0) {
			return "", fmt.Errorf("%q is not an integer, but the rule has type integer", s)
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	case typeNumber:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", fmt.Errorf("%q is not a number, but the rule has type number", s)
		}
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	case typeBoolean:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return "", fmt.Errorf("%q is not true or false, but the rule has type boolean", s)
		}
		return strconv.FormatBool(b), nil
	}
	for _, t := range r.transforms {
		s = t.apply(s)
	}
	return s, nil
}

// keyOut is the native value written outbound for a value-map key.
func (r *rule) keyOut(key, raw string) any {
	switch r.typ {
	case typeInteger, typeNumber:
		f, _ := strconv.ParseFloat(key, 64)
		return f
	case typeBoolean:
		b, _ := strconv.ParseBool(key)
		return b
	}
	return strings.TrimSpace(raw)
}

// nativeConst converts a constant written in the mapping to native type t.
func nativeConst(v any, t nativeType) (any, error) {
	s := scalarString(v)
	switch t {
	case typeString:
		return s, nil
	case typeInteger:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || f != math.Trunc(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%s is not an integer, but the rule has type integer", show(v))
		}
		return f, nil
	case typeNumber:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%s is not a number, but the rule has type number", show(v))
		}
		return f, nil
	case typeBoolean:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s is not true or false, but the rule has type boolean", show(v))
		}
		return b, nil
	}
	return v, nil
}

// scalarString renders a scalar as text ("" for anything else).
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case fmt.Stringer:
		return x.String()
	}
	return ""
}
