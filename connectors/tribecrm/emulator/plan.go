package emulator

import (
	"slices"
	"sort"
	"strings"
	"time"
)

// How a list request is answered
//
// The scan (listScan) filters every row of the set and sorts the matches:
// O(N log N) per page. The planned path (listIndexed) answers the same
// request from the set's indexes (index.go) and returns the same rows in the
// same order with the same @odata.count:
//
//  1. analyze turns the $filter into candidates, a superset of its matches:
//     a few rows found by id ("ID eq g", "Nav/ID eq g"), a union of boxes
//     over (LastMutationDate, ID) (the keyset cursors clients page with:
//     "LastMutationDate gt T or (LastMutationDate eq T and ID gt G)"), or
//     all rows when the filter says nothing the indexes know;
//  2. boxes become position ranges in byLMD by binary search;
//  3. when the order is the index's own ((LastMutationDate, ID) either
//     way, or the default order for unnarrowed candidates) the ranges are
//     walked in order, each row checked with the whole filter, until the
//     page is full: O(log N + page). Otherwise the candidates are filtered
//     and sorted as the scan would (the same sort on fewer rows).
//
// @odata.count is the size of the ranges when the candidates are exactly
// the matches, and otherwise counted while walking.

// listResult is the answer to a list request before rendering.
type listResult struct {
	rows   []*entity // this page
	total  int       // every match, ignoring $skip and $top
	capped bool      // the page was cut at the page cap
}

// list answers a list request on set, by the indexes or, with scan, by the
// full scan.
func (st *store) list(set string, q *odataQuery, pageCap int, scan bool) listResult {
	if scan {
		return st.listScan(set, q, pageCap)
	}
	return st.listIndexed(set, q, pageCap)
}

// listScan filters and sorts the whole set.
func (st *store) listScan(set string, q *odataQuery, pageCap int) listResult {
	rows := make([]*entity, 0, len(st.rows[set]))
	for _, e := range st.rows[set] {
		if q.filter == nil || q.filter.match(st, e) {
			rows = append(rows, e)
		}
	}
	return pageOf(st.sorted(rows, q.orderby), q, pageCap)
}

// pageOf cuts the page out of all the matches, in order.
func pageOf(rows []*entity, q *odataQuery, pageCap int) listResult {
	total := len(rows)
	start := min(q.skip, total)
	end := total
	if q.top >= 0 && start+q.top < end {
		end = start + q.top
	}
	capped := false
	if pageCap > 0 && end-start > pageCap {
		end = start + pageCap
		capped = true
	}
	return listResult{rows: rows[start:end], total: total, capped: capped}
}

type order uint8

const (
	ordOther order = iota
	ordDefault
	ordLMDAsc
	ordLMDDesc
)

// classifyOrder says whether items is the order of an index. Items after
// ID change nothing: ID is unique.
func classifyOrder(items []orderItem) order {
	if len(items) == 0 {
		return ordDefault
	}
	if len(items) < 2 || !isPath(items[0], "LastMutationDate") || !isPath(items[1], "ID") || items[0].desc != items[1].desc {
		return ordOther
	}
	if items[0].desc {
		return ordLMDDesc
	}
	return ordLMDAsc
}

func isPath(it orderItem, name string) bool {
	return len(it.path.segs) == 1 && it.path.segs[0] == name
}

func (st *store) listIndexed(set string, q *odataQuery, pageCap int) listResult {
	ix := st.idx[set]
	c := candidates{all: true, exact: true}
	if q.filter != nil {
		c = st.analyze(set, q.filter.root)
	}
	ord := classifyOrder(q.orderby)
	switch {
	case c.explicit:
		rows := make([]*entity, 0, len(c.rows))
		for _, e := range c.rows {
			if e.set == set && (q.filter == nil || q.filter.match(st, e)) {
				rows = append(rows, e)
			}
		}
		return pageOf(st.sorted(rows, q.orderby), q, pageCap)
	case ord == ordLMDAsc || ord == ordLMDDesc:
		spans, exact := c.spans(ix.byLMD)
		return st.walk(ix.byLMD, spans, ord == ordLMDDesc, q, pageCap, exact)
	case c.all && ord == ordDefault:
		return st.walk(ix.byDef, []span{{0, len(ix.byDef)}}, false, q, pageCap, c.exact)
	}
	// Another order: filter and sort the candidates.
	src, spans, exact := ix.byDef, []span{{0, len(ix.byDef)}}, c.exact
	if !c.all {
		src = ix.byLMD
		spans, exact = c.spans(ix.byLMD)
	}
	if exact && q.top == 0 {
		return listResult{rows: nil, total: spanLen(spans)}
	}
	var rows []*entity
	for _, sp := range spans {
		for _, e := range src[sp.lo:sp.hi] {
			if q.filter == nil || q.filter.match(st, e) {
				rows = append(rows, e)
			}
		}
	}
	return pageOf(st.sorted(rows, q.orderby), q, pageCap)
}

// walk reads the rows of spans of s in order (backwards with desc),
// keeps those the filter matches and returns the page. With exact the
// spans hold only matches, so their size is the count.
func (st *store) walk(s []*entity, spans []span, desc bool, q *odataQuery, pageCap int, exact bool) listResult {
	want := q.top // -1: all
	if pageCap > 0 && (want < 0 || want > pageCap) {
		want = pageCap + 1 // one more says the cap cut the page
	}
	var out []*entity
	n := 0 // matches seen
	visit := func(e *entity) bool {
		if q.filter != nil && !q.filter.match(st, e) {
			return true
		}
		n++
		if n <= q.skip {
			return true
		}
		if want < 0 || len(out) < want {
			out = append(out, e)
			return true
		}
		return q.count && !exact // go on only to count
	}
	walkSpans(s, spans, desc, visit)
	res := listResult{rows: out, total: n}
	if exact {
		res.total = spanLen(spans)
	}
	if pageCap > 0 && len(out) > pageCap {
		res.rows, res.capped = out[:pageCap], true
	}
	return res
}

func walkSpans(s []*entity, spans []span, desc bool, visit func(*entity) bool) {
	if !desc {
		for _, sp := range spans {
			for i := sp.lo; i < sp.hi; i++ {
				if !visit(s[i]) {
					return
				}
			}
		}
		return
	}
	for k := len(spans) - 1; k >= 0; k-- {
		for i := spans[k].hi - 1; i >= spans[k].lo; i-- {
			if !visit(s[i]) {
				return
			}
		}
	}
}

// span is a range [lo, hi) of positions in an index.
type span struct{ lo, hi int }

func spanLen(spans []span) int {
	n := 0
	for _, sp := range spans {
		n += sp.hi - sp.lo
	}
	return n
}

// ---------------------------------------------------------------- analysis

// maxBoxes bounds the boxes of one analysis; past it the analysis widens.
const maxBoxes = 64

// idMax is above every ID (IDs are lower-case GUID text); a bound id+"\x00"
// is the first string after id.
const idMax = "\xff"

// tBound is one end of a LastMutationDate interval.
type tBound struct {
	set  bool // false: unbounded
	t    time.Time
	incl bool
}

// box is the rows whose LastMutationDate is within [lo, hi] (non-null, if
// timed) and whose ID is within [idLo, idHi).
type box struct {
	timed      bool
	lo, hi     tBound
	idLo, idHi string
}

// candidates is a superset of a filter's matches.
type candidates struct {
	all      bool      // every row
	explicit bool      // just rows
	rows     []*entity // explicit: these rows (of any set; the caller checks)
	boxes    []box     // otherwise: the rows within any of these
	exact    bool      // no row outside the matches (all or boxes)
}

// analyze finds candidates for the filter n on set.
func (st *store) analyze(set string, n node) candidates {
	b, ok := n.(binNode)
	if !ok {
		return candidates{all: true}
	}
	switch b.op {
	case "and":
		return andCandidates(st.analyze(set, b.l), st.analyze(set, b.r))
	case "or":
		return orCandidates(st.analyze(set, b.l), st.analyze(set, b.r))
	}
	return st.leaf(set, b)
}

var flipped = map[string]string{"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}

// leaf finds candidates for one comparison of a property with a literal.
func (st *store) leaf(set string, b binNode) candidates {
	if c, ok := st.textLeaf(set, b); ok {
		return c
	}
	op := b.op
	p, pok := b.l.(*pathNode)
	lit, lok := b.r.(litNode)
	if !pok || !lok {
		p, pok = b.r.(*pathNode)
		lit, lok = b.l.(litNode)
		op = flipped[op]
	}
	if !pok || !lok || op == "ne" {
		return candidates{all: true}
	}
	switch {
	case len(p.segs) == 1 && p.segs[0] == "LastMutationDate" && lit.k == kDate:
		t := lit.v.(time.Time)
		bx := box{timed: true, idHi: idMax}
		switch op {
		case "eq":
			bx.lo, bx.hi = tBound{true, t, true}, tBound{true, t, true}
		case "gt", "ge":
			bx.lo = tBound{true, t, op == "ge"}
		case "lt", "le":
			bx.hi = tBound{true, t, op == "le"}
		}
		return candidates{boxes: []box{bx}, exact: true}
	case len(p.segs) == 1 && p.segs[0] == "ID" && lit.k == kGuid:
		g := string(lit.v.(guidVal))
		if op == "eq" {
			c := candidates{explicit: true}
			if e := st.rows[set][g]; e != nil {
				c.rows = []*entity{e}
			}
			return c
		}
		bx := box{idHi: idMax}
		switch op {
		case "gt":
			bx.idLo = g + "\x00"
		case "ge":
			bx.idLo = g
		case "lt":
			bx.idHi = g
		case "le":
			bx.idHi = g + "\x00"
		}
		return candidates{boxes: []box{bx}, exact: true}
	case len(p.segs) == 2 && p.segs[1] == "ID" && lit.k == kGuid && op == "eq" && st.sets[set].typ.navs[p.segs[0]] != nil:
		return explicitOf(st.idx[set].linked(p.segs[0], string(lit.v.(guidVal))))
	}
	return candidates{all: true}
}

// textLeaf finds candidates for "tolower(P) eq 's'" and "P eq 'S'" by
// byText, P a text property of the set or of a linked relation
// (Organization/EmailAddress). ok is false for any other comparison.
func (st *store) textLeaf(set string, b binNode) (candidates, bool) {
	if b.op != "eq" {
		return candidates{}, false
	}
	l, r := b.l, b.r
	if _, isLit := l.(litNode); isLit {
		l, r = r, l
	}
	lit, ok := r.(litNode)
	if !ok || lit.k != kString {
		return candidates{}, false
	}
	val := lit.v.(string) // tolower(P) eq val: lower(P) is val
	var p *pathNode
	switch x := l.(type) {
	case callNode:
		if x.fn != "tolower" {
			return candidates{}, false
		}
		if p, ok = x.args[0].(*pathNode); !ok {
			return candidates{}, false
		}
	case *pathNode:
		p, val = x, strings.ToLower(val) // P eq val: lower(P) is lower(val)
	default:
		return candidates{}, false
	}
	if !slices.Contains(textProps[:], p.segs[len(p.segs)-1]) {
		return candidates{}, false
	}
	ix := st.idx[set]
	switch len(p.segs) {
	case 1:
		return explicitOf(ix.byText[p.segs[0]][val]), true
	case 2:
		// A link's target rows, then the rows linking them.
		target := st.setOfTyp(st.sets[set].typ.navs[p.segs[0]])
		if target == "" {
			return candidates{}, false
		}
		c := candidates{explicit: true}
		for t := range st.idx[target].byText[p.segs[1]][val] {
			for e := range ix.linked(p.segs[0], t.id) {
				c.rows = append(c.rows, e)
			}
		}
		return c, true
	}
	return candidates{}, false
}

// setOfTyp returns the set whose rows are of type t, or "".
func (st *store) setOfTyp(t *typeDef) string {
	if t == nil {
		return ""
	}
	for name, si := range st.sets {
		if si.typ == t {
			return name
		}
	}
	return ""
}

func explicitOf(rows map[*entity]struct{}) candidates {
	c := candidates{explicit: true, rows: make([]*entity, 0, len(rows))}
	for e := range rows {
		c.rows = append(c.rows, e)
	}
	return c
}

func andCandidates(a, b candidates) candidates {
	switch {
	case a.explicit && b.explicit:
		if len(b.rows) < len(a.rows) {
			a = b
		}
		return a
	case a.explicit:
		return a
	case b.explicit:
		return b
	case a.all:
		b.exact = false
		return b
	case b.all:
		a.exact = false
		return a
	}
	if len(a.boxes)*len(b.boxes) > maxBoxes {
		if len(b.boxes) < len(a.boxes) {
			a = b
		}
		a.exact = false
		return a
	}
	out := candidates{exact: a.exact && b.exact}
	for _, x := range a.boxes {
		for _, y := range b.boxes {
			out.boxes = append(out.boxes, intersect(x, y))
		}
	}
	return out
}

func orCandidates(a, b candidates) candidates {
	switch {
	case a.all || b.all:
		return candidates{all: true}
	case a.explicit && b.explicit:
		seen := make(map[*entity]bool, len(a.rows)+len(b.rows))
		out := candidates{explicit: true}
		for _, e := range slices.Concat(a.rows, b.rows) {
			if !seen[e] {
				seen[e] = true
				out.rows = append(out.rows, e)
			}
		}
		return out
	case a.explicit || b.explicit || len(a.boxes)+len(b.boxes) > maxBoxes:
		return candidates{all: true}
	}
	return candidates{boxes: slices.Concat(a.boxes, b.boxes), exact: a.exact && b.exact}
}

func intersect(x, y box) box {
	return box{
		timed: x.timed || y.timed,
		lo:    tighter(x.lo, y.lo, 1),
		hi:    tighter(x.hi, y.hi, -1),
		idLo:  max(x.idLo, y.idLo),
		idHi:  min(x.idHi, y.idHi),
	}
}

// tighter returns the tighter of two lower (dir 1) or upper (dir -1) bounds.
func tighter(a, b tBound, dir int) tBound {
	switch {
	case !a.set:
		return b
	case !b.set:
		return a
	}
	switch c := a.t.Compare(b.t) * dir; {
	case c > 0:
		return a
	case c < 0:
		return b
	}
	a.incl = a.incl && b.incl
	return a
}

// spans returns the merged position ranges of the boxes in byLMD, and
// whether they hold only matches.
func (c candidates) spans(byLMD []*entity) ([]span, bool) {
	if c.all {
		return []span{{0, len(byLMD)}}, c.exact
	}
	exact := c.exact
	var spans []span
	for _, bx := range c.boxes {
		sp := bx.span(byLMD)
		if sp.lo < sp.hi {
			spans = append(spans, sp)
		}
		exact = exact && bx.tight()
	}
	slices.SortFunc(spans, func(a, b span) int { return a.lo - b.lo })
	var merged []span
	for _, sp := range spans {
		if k := len(merged) - 1; k >= 0 && sp.lo <= merged[k].hi {
			merged[k].hi = max(merged[k].hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	return merged, exact
}

// tight reports whether the box's span in byLMD holds only rows within it:
// true unless the ID range is cut and LastMutationDate is not one instant.
func (bx box) tight() bool {
	if bx.idLo == "" && bx.idHi == idMax {
		return true
	}
	return bx.timed && bx.lo.set && bx.hi.set && bx.lo.incl && bx.hi.incl && bx.lo.t.Equal(bx.hi.t)
}

// span is the smallest range of byLMD holding every row within the box.
func (bx box) span(s []*entity) span {
	var lo, hi int
	switch {
	case !bx.timed:
		lo = 0
	case !bx.lo.set:
		lo = sort.Search(len(s), func(i int) bool { return !isNull(s[i].ix.lmd) })
	case bx.lo.incl:
		lo = searchKey(s, bx.lo.t, bx.idLo)
	default:
		lo = searchKey(s, bx.lo.t, idMax)
	}
	switch {
	case !bx.hi.set:
		hi = len(s)
	case bx.hi.incl:
		hi = searchKey(s, bx.hi.t, bx.idHi)
	default:
		hi = searchKey(s, bx.hi.t, "")
	}
	return span{lo, hi}
}

// searchKey returns the first position in byLMD at or after (t, id).
func searchKey(s []*entity, t time.Time, id string) int {
	return sort.Search(len(s), func(i int) bool {
		if c := orderCompare(s[i].ix.lmd, t); c != 0 {
			return c > 0
		}
		return s[i].id >= id
	})
}
