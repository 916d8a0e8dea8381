package mapping

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/yamlx"
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
	case !t.hasSystem && !t.misspelt["system"]:
		c.add(max(t.line, 1), "the key system is missing; expected the system name, e.g. system: tribecrm")
	case t.systemBad:
		// Not text: reported by yamlx.
	case t.system == "":
		c.add(t.systemLine, "system is empty; expected the system name, e.g. system: tribecrm")
	case !reSystem.MatchString(t.system):
		c.add(t.systemLine, "system %q is not a valid system name; expected lower-case letters, digits, - or _, as the connector names it (e.g. tribecrm)", t.system)
	}
	switch {
	case t.misspelt["rules"] && !t.hasRules:
		// The misspelt key's "did you mean" says it.
	case !t.hasRules:
		c.add(max(t.line, 1), "the key rules is missing; expected a list of rules")
	case t.ruleItems == 0:
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

// ruleBuild is one rule being compiled: the tree it is read from, the rule
// built so far, and whether it is still sound. Each step below checks one
// part of the rule and reports what is wrong to c; compileRule runs them in
// a fixed order, which is the order problems on one line are reported in.
type ruleBuild struct {
	rt *ruleTree
	y  *ruleYAML
	r  *rule
	c  *errs
	ok bool
	// The keys that decide what the rule maps.
	hasNative, hasCanon, hasValues bool
	// typeGiven: the rule names a type (otherwise it is inferred).
	typeGiven bool
	// lookup is the lookup file's problems, when the rule's value map
	// comes from one.
	lookup *errs
}

// bad reports a problem with the rule and marks it as not compiled.
func (b *ruleBuild) bad(line int, format string, args ...any) {
	b.c.add(line, format, args...)
	b.ok = false
}

// constIn: the rule sets a canonical constant inbound (canonical, no native).
func (b *ruleBuild) constIn() bool { return b.hasCanon && !b.hasNative }

// constOut: the rule sends a native constant outbound (native alone).
func (b *ruleBuild) constOut() bool { return b.hasNative && !b.hasCanon && !b.hasValues }

// compileRule checks one rule and compiles it. It reports every problem it
// finds to c; the rule is usable only when ok is true.
func compileRule(rt *ruleTree, c *errs) (*rule, bool) {
	b := &ruleBuild{
		rt: rt, y: &rt.r, c: c, ok: true,
		r:         &rule{line: rt.line, required: rt.r.Required, owner: rt.r.Owner},
		hasNative: rt.has("native"), hasCanon: rt.has("canonical"), hasValues: rt.has("values"),
	}
	b.compileDirection()
	b.compileNative()
	b.compileCanonical()
	b.compileLookup()
	b.checkShape()
	b.checkDefaultIsScalar()
	b.checkOwnerAndRequired()
	b.checkConstantDirection()
	b.compileType()
	b.checkTypeFits()
	b.compileTransforms()
	b.checkTransformsApply()
	b.r.when = compileConds(b.y.When, rt.when, rt.lineOf("when"), "when", c, &b.ok)
	if !b.ok {
		return nil, false
	}
	// The value map and the default are read through the rule's type and
	// transforms, so they are compiled only once those are sound.
	if b.hasValues {
		b.compileValueMapFrom()
		if !b.ok {
			return nil, false
		}
	}
	if b.r.hasDefault {
		b.compileDefault()
	}
	return b.r, b.ok
}

// compileDirection reads direction: both (the default), inbound or outbound.
func (b *ruleBuild) compileDirection() {
	switch b.y.Direction {
	case "both":
	case "inbound":
		b.r.dir = dirInbound
	case "outbound":
		b.r.dir = dirOutbound
	case "":
		if b.rt.has("direction") {
			b.bad(b.rt.lineOf("direction"), "direction is empty; expected both, inbound or outbound")
		}
	default:
		b.bad(b.rt.lineOf("direction"), "direction %q is not known; %s", b.y.Direction, yamlx.Suggest(b.y.Direction, []string{"both", "inbound", "outbound"}))
	}
}

// compileNative checks the native field path (names joined by dots, or
// @entity) and splits it.
func (b *ruleBuild) compileNative() {
	if !b.hasNative {
		return
	}
	native, line := b.y.Native, b.rt.lineOf("native")
	b.r.native = native
	switch {
	case strings.TrimSpace(native) == "":
		b.bad(line, "native is empty; expected a native field path such as Organization.Name, or @entity")
	case strings.HasPrefix(native, "@"):
		if native != EntityField {
			b.bad(line, "unknown pseudo-field %q; the only pseudo-field is @entity (the record's entity or collection)", native)
		}
		b.r.path = []string{native}
	case strings.ContainsAny(native, " \t\r\n"):
		b.bad(line, "native field path %q contains spaces; expected names separated by dots, e.g. Organization.Name", native)
	default:
		b.r.path = strings.Split(native, ".")
		if slices.Contains(b.r.path, "") {
			b.bad(line, "native field path %q has an empty part; expected names separated by single dots, e.g. Organization.Name", native)
		}
	}
}

// compileCanonical checks that canonical names a known canonical field.
func (b *ruleBuild) compileCanonical() {
	if !b.hasCanon {
		return
	}
	canon, line := b.y.Canonical, b.rt.lineOf("canonical")
	b.r.canonical = canon
	if canon == "" {
		b.bad(line, "canonical is empty; expected a canonical field name (%s)", strings.Join(funnel.FieldNames(), ", "))
	} else if spec, found := funnel.Lookup(canon); !found {
		b.bad(line, "unknown canonical field %q; %s", canon, yamlx.Suggest(canon, funnel.FieldNames()))
	} else {
		b.r.spec = spec
	}
}

// checkShape checks that native, canonical, values and default combine into
// something a rule can map: native with canonical or values, or a constant.
func (b *ruleBuild) checkShape() {
	rt, hasDefault := b.rt, b.rt.has("default")
	switch {
	case b.hasValues && b.hasCanon:
		b.bad(rt.lineOf("values"), "a rule has canonical or values, not both: values sets canonical fields itself (remove canonical, or remove values)")
	case b.hasValues && !b.hasNative:
		b.bad(rt.lineOf("values"), "values needs native: the native field whose value is looked up in the map")
	case !b.hasNative && !b.hasCanon && !b.hasValues:
		b.bad(rt.line, "the rule maps nothing; expected native with canonical (or values), canonical with default (a constant set inbound), or native with default (a constant sent outbound)")
	case b.constOut() && !hasDefault:
		b.bad(rt.line, "native field %s is mapped to nothing; add canonical (or values), or a default to send as a constant", b.y.Native)
	case b.constIn() && !hasDefault:
		b.bad(rt.line, "canonical field %s has no native field; add native, or a default to set it as a constant", b.y.Canonical)
	}
	if b.hasValues && len(rt.values) == 0 && len(b.y.Values) == 0 {
		b.bad(rt.lineOf("values"), "values is empty; expected native values with the canonical fields they set, e.g. {\"1\": {stage: suspect}}")
	}
}

// checkDefaultIsScalar checks that a default is one value; only then does
// the rule have a default.
func (b *ruleBuild) checkDefaultIsScalar() {
	b.r.hasDefault = b.rt.has("default")
	if !b.r.hasDefault {
		return
	}
	switch b.y.Default.(type) {
	case nil:
		b.bad(b.rt.lineOf("default"), "default is empty; expected a value (quote it if it is text)")
		b.r.hasDefault = false
	case string, bool, int, int64, uint64, float64:
	default:
		b.bad(b.rt.lineOf("default"), "default must be a single value, not %s", show(b.y.Default))
		b.r.hasDefault = false
	}
}

// checkOwnerAndRequired checks that owner and required are given only where
// they mean something.
func (b *ruleBuild) checkOwnerAndRequired() {
	if b.y.Owner && (!b.r.dir.in() || !b.hasNative) {
		b.bad(b.rt.lineOf("owner"), "owner needs an inbound rule with native: it says this system's value for the canonical field always wins")
	}
	if !b.y.Required {
		return
	}
	if b.r.hasDefault {
		b.bad(b.rt.lineOf("required"), "required and default exclude each other: with a default the value is never missing (remove one)")
	}
	if !b.hasNative && (b.hasCanon || b.hasValues) { // else the rule maps nothing, reported
		b.bad(b.rt.lineOf("required"), "required needs native: it says the native field must hold a value")
	}
}

// checkConstantDirection checks that a constant rule is not limited to the
// one direction it does nothing in.
func (b *ruleBuild) checkConstantDirection() {
	if b.constIn() && b.r.dir == dirOutbound {
		b.bad(b.rt.lineOf("direction"), "a rule without native has nothing to send outbound; it sets a canonical constant inbound (use direction: inbound or remove direction)")
	}
	if b.constOut() && b.r.dir == dirInbound {
		b.bad(b.rt.lineOf("direction"), "a rule without canonical or values has nothing to read inbound; it sends a native constant outbound (use direction: outbound or remove direction)")
	}
}

// compileType reads the native type the rule writes, or infers it: boolean
// for a boolean canonical field, the default's own type for a native
// constant, else string.
func (b *ruleBuild) compileType() {
	b.typeGiven = b.y.Type != ""
	switch b.y.Type {
	case "", "string":
		b.r.typ = typeString
	case "integer":
		b.r.typ = typeInteger
	case "number":
		b.r.typ = typeNumber
	case "boolean":
		b.r.typ = typeBoolean
	default:
		b.bad(b.rt.lineOf("type"), "type %q is not known; %s", b.y.Type, yamlx.Suggest(b.y.Type, typeNames))
	}
	if b.rt.has("type") && b.y.Type == "" {
		b.bad(b.rt.lineOf("type"), "type is empty; expected string, integer, number or boolean")
	}
	if b.typeGiven {
		return
	}
	switch {
	case b.r.spec.Name != "" && b.r.spec.Type == funnel.Bool:
		b.r.typ = typeBoolean
	case b.constOut():
		b.r.typ = inferType(b.y.Default)
	}
}

// checkTypeFits checks that a type the rule names fits its native field
// (@entity is text) and its canonical field.
func (b *ruleBuild) checkTypeFits() {
	if !b.typeGiven || (b.hasValues && b.hasCanon) { // the shape is reported
		return
	}
	r := b.r
	if r.typ != typeString && r.native == EntityField {
		b.bad(b.rt.lineOf("type"), "@entity is the entity name, always text; remove type")
	}
	if r.spec.Name == "" {
		return
	}
	allowed := allowedTypes(r.spec.Type)
	if slices.Contains(allowed, r.typ) {
		return
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = a.String()
	}
	b.bad(b.rt.lineOf("type"), "type %s does not fit canonical field %s, which is a %s; expected %s", r.typ, r.spec.Name, r.spec.Type, strings.Join(names, " or "))
}

// compileTransforms looks up each transform by name, in file order.
func (b *ruleBuild) compileTransforms() {
	for i, tf := range b.y.Transform {
		line := b.rt.lineOf("transform")
		if i < len(b.rt.tforms) {
			line = b.rt.tforms[i].line
		}
		if k := slices.Index(transformNames, tf); k >= 0 {
			b.r.transforms = append(b.r.transforms, transform(k))
		} else {
			b.bad(line, "unknown transform %q; %s", tf, yamlx.Suggest(tf, transformNames))
		}
	}
}

// checkTransformsApply checks that transforms have text to change: not a
// constant, nor a canonical field or value map that is not text.
func (b *ruleBuild) checkTransformsApply() {
	if len(b.y.Transform) == 0 {
		return
	}
	r, line := b.r, b.rt.lineOf("transform")
	switch {
	case b.constOut() || b.constIn():
		b.bad(line, "transform has no effect on a constant; write the default as it should be")
	case r.spec.Name != "" && r.spec.Type != funnel.String:
		b.bad(line, "transforms change text, but canonical field %s is a %s; remove transform", r.spec.Name, r.spec.Type)
	case b.hasValues && r.typ != typeString:
		b.bad(line, "transforms change text, but this value map matches %s values; remove transform", r.typ)
	}
}

// compileValueMap compiles the value map's entries in file order.
func (b *ruleBuild) compileValueMap() {
	b.r.values = []valueEntry{}
	seen := map[string]int{} // match key -> line of the first entry with it
	for _, vt := range orderedValues(b.rt, b.y.Values) {
		if e, ok := b.compileValueEntry(vt, seen); ok {
			b.r.values = append(b.r.values, e)
		}
	}
}

// compileValueEntry compiles one value-map entry: its key must be a value
// of the rule's type that no earlier key matches, and it must set some
// canonical fields.
func (b *ruleBuild) compileValueEntry(vt valueTree, seen map[string]int) (valueEntry, bool) {
	key, err := b.r.matchKey(vt.key)
	if err != nil {
		b.bad(vt.line, "values key %q: %v", vt.key, err)
		return valueEntry{}, false
	}
	if first, dup := seen[key]; dup {
		b.bad(vt.line, "values key %q matches the same native value as the key at line %d; keep one", vt.key, first)
		return valueEntry{}, false
	}
	seen[key] = vt.line
	assign := b.y.Values[vt.key]
	if len(assign) == 0 {
		b.bad(vt.line, "values key %q sets no canonical field; expected e.g. {stage: lead}", vt.key)
		return valueEntry{}, false
	}
	e := valueEntry{raw: vt.key, key: key, out: b.r.keyOut(key, vt.key), line: vt.line}
	e.set = compileConds(assign, vt.assign, vt.line, fmt.Sprintf("values key %q", vt.key), b.c, &b.ok)
	return e, true
}

// compileDefault converts the default to what the rule uses it as: a value
// map's fallback entry, a canonical constant, or a native constant.
func (b *ruleBuild) compileDefault() {
	line := b.rt.lineOf("default")
	switch {
	case b.r.isValues():
		b.compileValuesDefault(line)
	case b.r.canonical != "":
		b.compileCanonicalDefault(line)
	default:
		b.compileNativeDefault(line)
	}
}

// compileValuesDefault resolves a value map's default to one of its keys.
func (b *ruleBuild) compileValuesDefault(line int) {
	r, def := b.r, b.y.Default
	key, err := r.matchKey(scalarString(def))
	if err != nil {
		b.bad(line, "default %s: %v", show(def), err)
		return
	}
	var hit *valueEntry
	for i := range r.values {
		if r.values[i].key == key {
			hit = &r.values[i]
		}
	}
	switch {
	case hit != nil:
		r.inDefault, r.outDefault = hit.key, hit.out
	case !r.dir.in():
		// An outbound-only value map may fall back to any native
		// value: it is what is written when no entry matches.
		r.outDefault = scalarString(def)
	default:
		keys := make([]string, len(r.values))
		for i, e := range r.values {
			keys[i] = e.raw
		}
		b.bad(line, "default %s is not one of the values keys; expected one of: %s", show(def), strings.Join(keys, ", "))
	}
}

// compileCanonicalDefault normalises the default of a canonical rule, and
// converts it to the native type too when the rule has a native field.
func (b *ruleBuild) compileCanonicalDefault(line int) {
	r := b.r
	v, err := r.toCanonical(b.y.Default)
	if err != nil {
		b.bad(line, "default: %v", err)
		return
	}
	if s, isStr := v.(string); isStr && s == "" {
		b.bad(line, "default is empty; expected a value")
		return
	}
	r.inDefault = v
	if r.native == "" {
		return
	}
	if r.outDefault, err = r.toNative(v); err != nil {
		b.bad(line, "default: %v", err)
	}
}

// compileNativeDefault converts the default of a native constant to the
// rule's type; @entity's must be an entity name.
func (b *ruleBuild) compileNativeDefault(line int) {
	r, def := b.r, b.y.Default
	v, err := nativeConst(def, r.typ)
	if err != nil {
		b.bad(line, "default: %v", err)
		return
	}
	if s, isStr := v.(string); isStr && strings.TrimSpace(s) == "" {
		b.bad(line, "default is empty; expected a value")
		return
	}
	if _, isStr := v.(string); !isStr && r.native == EntityField {
		b.bad(line, "default for @entity must be an entity name (text), not %s", show(def))
	}
	r.outDefault = v
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
			c.add(line, "%s: unknown canonical field %q; %s", where, f, yamlx.Suggest(f, funnel.FieldNames()))
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
			if d := yamlx.DidYouMean(s, valid); d != "" {
				return nil, fmt.Errorf("%v (%s)", err, d)
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
	case funnel.Number:
		return []nativeType{typeNumber, typeInteger, typeString}
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
