package mapping

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/crmsync/crmsync/funnel"
)

// Native is one record in a system's own shape.
type Native struct {
	// Entity is the system's name for the record's collection or type
	// (a TribeCRM entity set, "prospect", "prospects"); rules see it as the
	// pseudo-field @entity.
	Entity string
	// Fields holds the record's properties as decoded from JSON (string,
	// float64, bool, nil, map[string]any, []any); a dotted native path such
	// as Organization.Name addresses nested maps.
	Fields map[string]any
}

// Inbound maps a native record to a canonical record: the rules without
// when run first, in file order, then the rules with when, in file order.
// The record has no ID and is Complete()d. When anything is wrong (a
// required field missing, a value no value-map entry matches, a value that
// does not fit its canonical field) the error is a *Errors listing every
// problem, each naming the rule's file:line and the native field, and no
// record is returned.
func (m *Mapping) Inbound(n Native) (*funnel.Record, error) {
	c := &errs{file: m.File}
	rec := funnel.New("")
	for _, r := range m.inbound {
		if !r.dir.in() || !matches(rec, r.when) {
			continue
		}
		r.applyInbound(n, rec, c)
	}
	if len(c.list) == 0 && rec.Kind() == "" {
		c.add(m.rulesLine, "no rule gave the record a kind (entity %q); expected a rule that sets kind for every record", n.Entity)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	rec.Complete()
	return rec, nil
}

// Outbound maps a canonical record to this system's native payload, rules
// in file order. Canonical fields the record lacks are left out of the
// payload (unless a rule has a default); fields this mapping does not carry
// are not sent. When anything is wrong the error is a *Errors listing every
// problem.
func (m *Mapping) Outbound(r *funnel.Record) (Native, error) {
	c := &errs{file: m.File}
	if r == nil {
		c.add(m.rulesLine, "no record to map")
		return Native{}, c.err()
	}
	out := Native{Fields: map[string]any{}}
	for _, ru := range m.rules {
		if !ru.writesNative() || !matches(r, ru.when) {
			continue
		}
		v, ok := ru.outValue(r, c)
		if !ok {
			continue
		}
		if ru.native == EntityField {
			out.Entity, _ = v.(string)
			continue
		}
		if err := setPath(out.Fields, ru.path, v); err != nil {
			c.add(ru.line, "native field %s: %v", ru.native, err)
		}
	}
	if err := c.err(); err != nil {
		return Native{}, err
	}
	return out, nil
}

// NativePath returns the native field that carries canonical field
// canonical for records of the given kind (for Find match keys): the first
// rule in file order that maps that field to a native path and whose when,
// if any, only asks for that kind.
func (m *Mapping) NativePath(canonical string, kind funnel.Kind) (string, bool) {
	for _, r := range m.rules {
		if r.canonical != canonical || r.native == "" || r.native == EntityField {
			continue
		}
		fits := true
		for _, w := range r.when {
			if w.field != funnel.FieldKind || w.value != string(kind) {
				fits = false
			}
		}
		if fits {
			return r.native, true
		}
	}
	return "", false
}

// Carries reports whether the mapping sets canonical field canonical
// inbound at all (by a field rule, a value map or a constant).
func (m *Mapping) Carries(canonical string) bool {
	m.carried.Do(func() {
		m.carries = map[string]bool{}
		for _, r := range m.rules {
			if r.dir.in() {
				for _, f := range r.canonicalWrites() {
					m.carries[f] = true
				}
			}
		}
	})
	return m.carries[canonical]
}

// WrittenFrom returns the canonical fields the mapping writes outbound into
// the native leaf at path (dots between names, as in a payload): the
// canonical field of a field rule, the fields a value map reads, none for a
// constant or a rule that only reads. A rule whose native path contains path, or lies inside it,
// counts too.
func (m *Mapping) WrittenFrom(path string) []string {
	var out []string
	for _, r := range m.rules {
		if !r.writesNative() || r.native == EntityField {
			continue
		}
		if r.native != path && !strings.HasPrefix(r.native, path+".") && !strings.HasPrefix(path, r.native+".") {
			continue
		}
		out = append(out, r.canonicalWrites()...)
	}
	return out
}

// Owns reports whether this system owns the canonical field: a rule marked
// owner: true reads it, so this system's value always wins in a merge.
func (m *Mapping) Owns(canonical string) bool {
	for _, r := range m.rules {
		if !r.owner || !r.dir.in() {
			continue
		}
		for _, f := range r.canonicalWrites() {
			if f == canonical {
				return true
			}
		}
	}
	return false
}

// UsesNative reports whether any rule reads or writes the native field
// top (the first segment of its path), e.g. "leads" for Overplane child rows.
func (m *Mapping) UsesNative(top string) bool {
	for _, r := range m.rules {
		if len(r.path) > 0 && r.path[0] == top {
			return true
		}
	}
	return false
}

// matches reports whether rec satisfies every when condition.
func matches(rec *funnel.Record, when []cond) bool {
	for _, w := range when {
		if v, ok := rec.Fields[w.field]; !ok || v != w.value {
			return false
		}
	}
	return true
}

func (r *rule) applyInbound(n Native, rec *funnel.Record, c *errs) {
	if r.native == "" { // canonical constant
		rec.Fields[r.canonical] = r.inDefault
		return
	}
	if r.canonical == "" && !r.isValues() { // native constant: outbound only
		return
	}
	v, present, err := r.read(n)
	if err != nil {
		c.add(r.line, "%v", err)
		return
	}
	if !present {
		switch {
		case r.hasDefault && r.isValues():
			r.applyEntry(r.entry(r.inDefault.(string)), rec)
		case r.hasDefault:
			rec.Fields[r.canonical] = r.inDefault
		case r.required:
			c.add(r.line, "native field %s is required, but the record (entity %q) has no value for it", r.native, n.Entity)
		}
		return
	}
	if r.isValues() {
		s, ok := scalarText(v)
		if !ok {
			c.add(r.line, "native field %s holds %s; expected a single value", r.native, show(v))
			return
		}
		key, err := r.matchKey(s)
		if err != nil {
			c.add(r.line, "native field %s: %v", r.native, err)
			return
		}
		e := r.entry(key)
		if e == nil {
			keys := make([]string, len(r.values))
			for i, e := range r.values {
				keys[i] = e.raw
			}
			c.add(r.line, "native field %s has the value %s, which no entry of the values map matches; expected one of: %s (add the value to the map if such records should be synced)", r.native, show(v), strings.Join(keys, ", "))
			return
		}
		r.applyEntry(e, rec)
		return
	}
	cv, err := r.toCanonical(v)
	if err != nil {
		c.add(r.line, "native field %s: %v", r.native, err)
		return
	}
	if s, ok := cv.(string); ok && s == "" {
		c.add(r.line, "native field %s: the transforms left nothing of %s; expected a value (remove the transform, or fix the value)", r.native, show(v))
		return
	}
	rec.Fields[r.canonical] = cv
}

func (r *rule) entry(key string) *valueEntry {
	for i := range r.values {
		if r.values[i].key == key {
			return &r.values[i]
		}
	}
	return nil
}

func (r *rule) applyEntry(e *valueEntry, rec *funnel.Record) {
	if e == nil {
		return
	}
	for _, s := range e.set {
		rec.Fields[s.field] = s.value
	}
}

// read fetches the rule's native value; present is false when it is
// missing, null or blank text.
func (r *rule) read(n Native) (v any, present bool, err error) {
	if r.native == EntityField {
		return n.Entity, strings.TrimSpace(n.Entity) != "", nil
	}
	var cur any = n.Fields
	for i, seg := range r.path {
		var x any
		switch c := cur.(type) {
		case map[string]any:
			x = c[seg]
		case []any:
			// A numeric segment steps into a list (Overplane child rows:
			// leads.0.email is the first lead row's email).
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 {
				return nil, false, fmt.Errorf("native field %s holds a list; expected a row number after it, not %q", strings.Join(r.path[:i], "."), seg)
			}
			if idx < len(c) {
				x = c[idx]
			}
		default:
			return nil, false, fmt.Errorf("native field %s holds %s; expected an object holding %s", strings.Join(r.path[:i], "."), show(c), strings.Join(r.path[i:], "."))
		}
		if x == nil {
			return nil, false, nil
		}
		if i == len(r.path)-1 {
			v = x
			break
		}
		cur = x
	}
	switch x := v.(type) {
	case string:
		return x, strings.TrimSpace(x) != "", nil
	case map[string]any, []any:
		return nil, false, fmt.Errorf("native field %s holds %s; expected a single value", r.native, show(x))
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f, true, nil
		}
		return x.String(), true, nil
	}
	return v, true, nil
}

// scalarText renders a native scalar as text for value-map matching.
func scalarText(v any) (string, bool) {
	switch v.(type) {
	case string, bool, float64, int, int64, uint64:
		return scalarString(v), true
	}
	return "", false
}

func asNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

func asBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(x))
		return b, err == nil
	}
	if f, ok := asNumber(v); ok && (f == 0 || f == 1) {
		return f == 1, true
	}
	return false, false
}

// toCanonical converts a native value (or an inbound default) to the
// rule's canonical field: type check, funnel.Normalize, transforms.
func (r *rule) toCanonical(v any) (any, error) {
	switch r.typ {
	case typeInteger:
		f, ok := asNumber(v)
		if !ok || f != math.Trunc(f) {
			return nil, fmt.Errorf("%s is not an integer (the rule has type integer)", show(v))
		}
		v = f
	case typeNumber:
		f, ok := asNumber(v)
		if !ok {
			return nil, fmt.Errorf("%s is not a number (the rule has type number)", show(v))
		}
		v = f
	case typeBoolean:
		b, ok := asBool(v)
		if !ok {
			return nil, fmt.Errorf("%s is not true or false (the rule has type boolean)", show(v))
		}
		v = b
	}
	if u, ok := v.(uint64); ok {
		v = float64(u)
	}
	nv, err := funnel.Normalize(r.canonical, v)
	if err != nil {
		return nil, err
	}
	if s, ok := nv.(string); ok {
		for _, t := range r.transforms {
			s = t.apply(s)
		}
		nv = s
	}
	return nv, nil
}

// toNative converts a normalised canonical value to the rule's native type.
func (r *rule) toNative(cv any) (any, error) {
	if s, ok := cv.(string); ok {
		for _, t := range r.transforms {
			s = t.apply(s)
		}
		cv = s
	}
	switch r.typ {
	case typeInteger:
		if b, ok := cv.(bool); ok {
			return boolNumber(b), nil
		}
		f, ok := asNumber(cv)
		if !ok || f != math.Trunc(f) {
			return nil, fmt.Errorf("canonical field %s holds %s, which cannot be sent as an integer", r.canonical, show(cv))
		}
		return f, nil
	case typeNumber:
		if b, ok := cv.(bool); ok {
			return boolNumber(b), nil
		}
		f, ok := asNumber(cv)
		if !ok {
			return nil, fmt.Errorf("canonical field %s holds %s, which cannot be sent as a number", r.canonical, show(cv))
		}
		return f, nil
	case typeBoolean:
		b, ok := asBool(cv)
		if !ok {
			return nil, fmt.Errorf("canonical field %s holds %s, which cannot be sent as true or false", r.canonical, show(cv))
		}
		return b, nil
	}
	return scalarString(cv), nil
}

func boolNumber(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// outValue computes the native value a rule writes for rec; ok is false
// when nothing is written (absent value, or a problem added to c).
func (r *rule) outValue(rec *funnel.Record, c *errs) (any, bool) {
	switch {
	case r.isValues():
		for i := range r.values {
			if matches(rec, r.values[i].set) {
				return r.values[i].out, true
			}
		}
		fields := r.canonicalWrites()
		var have []string
		for _, f := range fields {
			if v, ok := rec.Fields[f]; ok && v != nil && v != "" {
				have = append(have, f)
			}
		}
		if len(have) == 0 {
			switch {
			case r.hasDefault:
				return r.outDefault, true
			case r.required:
				c.add(r.line, "native field %s is required, but the record has none of %s to compute it from", r.native, strings.Join(fields, ", "))
			}
			return nil, false
		}
		if r.hasDefault && !r.dir.in() {
			return r.outDefault, true
		}
		var got []string
		for _, f := range fields {
			got = append(got, f+"="+valueOrNone(rec.Fields[f]))
		}
		var want []string
		for i, e := range r.values {
			if i == 12 {
				want = append(want, fmt.Sprintf("... (%d more)", len(r.values)-12))
				break
			}
			var parts []string
			for _, s := range e.set {
				parts = append(parts, s.field+"="+valueOrNone(s.value))
			}
			want = append(want, strings.Join(parts, " "))
		}
		c.add(r.line, "no entry of the values map for native field %s matches the record's %s; expected one of: %s", r.native, strings.Join(got, " "), strings.Join(want, "; "))
		return nil, false
	case r.canonical == "": // native constant
		return r.outDefault, true
	}
	v, ok := rec.Fields[r.canonical]
	if !ok || v == nil || v == "" {
		switch {
		case r.hasDefault:
			return r.outDefault, true
		case r.required:
			c.add(r.line, "canonical field %s is required for native field %s, but the record has no value for it", r.canonical, r.native)
		}
		return nil, false
	}
	cv, err := funnel.Normalize(r.canonical, v)
	if err == nil {
		var nv any
		if nv, err = r.toNative(cv); err == nil {
			return nv, true
		}
	}
	c.add(r.line, "native field %s: %v", r.native, err)
	return nil, false
}

func valueOrNone(v any) string {
	if v == nil || v == "" {
		return "(none)"
	}
	return scalarString(v)
}

// setPath stores v at a dotted path, creating nested objects on the way.
func setPath(fields map[string]any, path []string, v any) error {
	cur := fields
	for i, seg := range path[:len(path)-1] {
		next, ok := cur[seg]
		if !ok || next == nil {
			m := map[string]any{}
			cur[seg] = m
			cur = m
			continue
		}
		m, isMap := next.(map[string]any)
		if !isMap {
			return fmt.Errorf("%s already holds %s, not an object", strings.Join(path[:i+1], "."), show(next))
		}
		cur = m
	}
	cur[path[len(path)-1]] = v
	return nil
}
