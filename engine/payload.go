package engine

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// DiffPayload returns the parts of next that differ from prev, keeping
// nesting: only changed leaves are included. A leaf present in prev but
// absent from next is returned as nil (clear it), also inside a nested
// object that is gone altogether.
func DiffPayload(prev, next map[string]any) map[string]any {
	out := map[string]any{}
	for k, nv := range next {
		pv, ok := prev[k]
		nm, nIsMap := nv.(map[string]any)
		pm, pIsMap := pv.(map[string]any)
		switch {
		case nIsMap && pIsMap:
			if d := DiffPayload(pm, nm); len(d) > 0 {
				out[k] = d
			}
		case !ok || !sameValue(pv, nv):
			out[k] = nv
		}
	}
	for k, pv := range prev {
		if _, ok := next[k]; !ok && pv != nil {
			if pm, isMap := pv.(map[string]any); isMap {
				// A nested object that is gone clears each of its leaves.
				if d := DiffPayload(pm, map[string]any{}); len(d) > 0 {
					out[k] = d
				}
				continue
			}
			out[k] = nil
		}
	}
	return out
}

// MergePayload returns prev with diff applied (nil removes a leaf).
func MergePayload(prev, diff map[string]any) map[string]any {
	out := make(map[string]any, len(prev)+len(diff))
	for k, v := range prev {
		out[k] = v
	}
	for k, v := range diff {
		dm, dIsMap := v.(map[string]any)
		pm, pIsMap := out[k].(map[string]any)
		switch {
		case dIsMap && pIsMap:
			if m := MergePayload(pm, dm); len(m) > 0 {
				out[k] = m
			} else {
				delete(out, k) // every leaf cleared
			}
		case v == nil:
			delete(out, k)
		default:
			out[k] = v
		}
	}
	return out
}

// sameValue compares JSON-ish values, treating 1 and 1.0 alike.
func sameValue(a, b any) bool {
	return canon(a) == canon(b)
}

func canon(v any) string {
	switch x := v.(type) {
	case nil:
		return "\x00nil"
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case string:
		return x
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var sb strings.Builder
		sb.WriteString("{")
		for _, k := range keys {
			sb.WriteString(strconv.Quote(k) + ":" + canon(x[k]) + ",")
		}
		sb.WriteString("}")
		return sb.String()
	case []any:
		var sb strings.Builder
		sb.WriteString("[")
		for _, e := range x {
			sb.WriteString(canon(e) + ",")
		}
		sb.WriteString("]")
		return sb.String()
	}
	return fmt.Sprintf("%T:%v", v, v)
}

// GetPath reads a dotted path from a nested map.
func GetPath(m map[string]any, path string) (any, bool) {
	cur := any(m)
	for _, p := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = mm[p]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// FieldDiffs flattens a diff into sorted dotted-path field changes.
func FieldDiffs(prev, diff map[string]any) []FieldDiff {
	var out []FieldDiff
	var walk func(prefix string, p, d map[string]any)
	walk = func(prefix string, p, d map[string]any) {
		for k, nv := range d {
			path := prefix + k
			var ov any
			if p != nil {
				ov = p[k]
			}
			if nm, ok := nv.(map[string]any); ok {
				om, _ := ov.(map[string]any)
				walk(path+".", om, nm)
				continue
			}
			out = append(out, FieldDiff{Field: path, Old: ov, New: nv})
		}
	}
	walk("", prev, diff)
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// PresentOnly keeps the leaves of payload that the native record really
// holds (a non-nil value at the same path; numeric segments index lists).
// A payload computed by mapping a record back out can hold constants the
// record does not have (Overplane's leads.0.lead on a prospect with no lead
// row); remembering those as "already there" would leave them out of the
// next write.
func PresentOnly(payload map[string]any, native any) map[string]any {
	out := map[string]any{}
	for k, v := range payload {
		var nv any
		switch n := native.(type) {
		case map[string]any:
			nv = n[k]
		case []any:
			if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < len(n) {
				nv = n[i]
			}
		}
		if nv == nil {
			continue
		}
		if vm, ok := v.(map[string]any); ok {
			if sub := PresentOnly(vm, nv); len(sub) > 0 {
				out[k] = sub
			}
			continue
		}
		out[k] = v
	}
	return out
}

// fieldSources is what KeepUncarried asks a mapping (*mapping.Mapping).
type fieldSources interface {
	WrittenFrom(path string) []string
	Carries(canonical string) bool
}

// KeepUncarried removes from diff the clears (nil leaves) of native fields
// that the target's mapping writes only from canonical fields the source's
// mapping never sets: the source cannot know those values (TribeCRM has no
// consent flags), so their absence from the golden record says nothing, and
// the target's own values stay. A clear of a field the source does carry
// (an e-mail removed at the source) is kept.
func KeepUncarried(diff map[string]any, target, source fieldSources) map[string]any {
	keepUncarried(diff, "", target, source)
	return diff
}

func keepUncarried(diff map[string]any, prefix string, target, source fieldSources) {
	for k, v := range diff {
		path := prefix + k
		if m, ok := v.(map[string]any); ok {
			keepUncarried(m, path+".", target, source)
			if len(m) == 0 {
				delete(diff, k)
			}
			continue
		}
		if v != nil {
			continue
		}
		from := target.WrittenFrom(path)
		carried := len(from) == 0
		for _, f := range from {
			carried = carried || source.Carries(f)
		}
		if !carried {
			delete(diff, k)
		}
	}
}
