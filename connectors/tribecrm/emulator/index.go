package emulator

import (
	"slices"
	"sort"
	"strings"
)

// The indexes of one entity set. They let a list request read one page
// instead of filtering and sorting the whole set (see plan.go):
//
//   - byLMD orders the rows by (LastMutationDate, ID), the order of the
//     keyset pages a client reads changes with;
//   - byDef orders them by (SortIndex, CreationDate, ID), the order of a
//     list without $orderby;
//   - byNav finds the rows whose navigation property points at an id
//     ("Organization/ID eq <guid>", and the delete check "still linked");
//   - byText finds the rows by the lower-case value of a few string
//     properties (textProps), for lookups by e-mail or name
//     ("tolower(EmailAddress) eq 'x'", "Name eq 'x'").
//
// Both orders compare with orderCompare, as the scan's sort does, and end on
// the unique ID, so they are total and equal to the scan's order.
//
// A row is indexed under the keys in its ixKeys, copied when it is indexed:
// every change of a row's set, properties or links goes through
// store.unindex before and store.index after it.
type setIndex struct {
	byLMD  []*entity
	byDef  []*entity
	byNav  multiMap // nav -> target id -> rows
	byText multiMap // property -> lower-case value -> rows
}

// textProps are the string properties byText indexes: those crmsync looks
// records up by.
var textProps = [...]string{"Name", "EmailAddress", "LastName", "ImportId"}

// multiMap maps a name and a value to a set of rows.
type multiMap map[string]map[string]map[*entity]struct{}

func (m multiMap) put(name, val string, e *entity) {
	byVal := m[name]
	if byVal == nil {
		byVal = map[string]map[*entity]struct{}{}
		m[name] = byVal
	}
	rows := byVal[val]
	if rows == nil {
		rows = map[*entity]struct{}{}
		byVal[val] = rows
	}
	rows[e] = struct{}{}
}

func (m multiMap) del(name, val string, e *entity) {
	if rows := m[name][val]; rows != nil {
		delete(rows, e)
		if len(rows) == 0 {
			delete(m[name], val)
		}
	}
}

// ixKeys are the ordering keys a row is indexed under.
type ixKeys struct {
	lmd, sortIdx, created any
}

func newSetIndex() *setIndex {
	return &setIndex{byNav: multiMap{}, byText: multiMap{}}
}

func keysOf(e *entity) ixKeys {
	return ixKeys{lmd: e.props["LastMutationDate"], sortIdx: e.props["SortIndex"], created: e.props["CreationDate"]}
}

// cmpLMD orders a before b in byLMD.
func cmpLMD(a, b *entity) int {
	if c := orderCompare(a.ix.lmd, b.ix.lmd); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// cmpDef orders a before b in byDef.
func cmpDef(a, b *entity) int {
	if c := orderCompare(a.ix.sortIdx, b.ix.sortIdx); c != 0 {
		return c
	}
	if c := orderCompare(a.ix.created, b.ix.created); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

func insertSorted(s []*entity, e *entity, cmp func(a, b *entity) int) []*entity {
	i := sort.Search(len(s), func(i int) bool { return cmp(s[i], e) >= 0 })
	return slices.Insert(s, i, e)
}

func removeSorted(s []*entity, e *entity, cmp func(a, b *entity) int) []*entity {
	i := sort.Search(len(s), func(i int) bool { return cmp(s[i], e) >= 0 })
	if i < len(s) && s[i] == e {
		return slices.Delete(s, i, i+1)
	}
	// Not where its keys say: a change that skipped unindex. Stay correct.
	if j := slices.Index(s, e); j >= 0 {
		return slices.Delete(s, j, j+1)
	}
	return s
}

// add indexes e. With sorted false it only appends e to both orders, for
// a bulk load that ends with rebuild.
func (ix *setIndex) add(e *entity, sorted bool) {
	e.ix = keysOf(e)
	if sorted {
		ix.byLMD = insertSorted(ix.byLMD, e, cmpLMD)
		ix.byDef = insertSorted(ix.byDef, e, cmpDef)
	} else {
		ix.byLMD = append(ix.byLMD, e)
		ix.byDef = append(ix.byDef, e)
	}
	for nav, id := range e.nav {
		ix.byNav.put(nav, id, e)
	}
	for _, p := range textProps {
		if s, ok := e.props[p].(string); ok {
			ix.byText.put(p, strings.ToLower(s), e)
		}
	}
}

func (ix *setIndex) remove(e *entity) {
	ix.byLMD = removeSorted(ix.byLMD, e, cmpLMD)
	ix.byDef = removeSorted(ix.byDef, e, cmpDef)
	for nav, id := range e.nav {
		ix.byNav.del(nav, id, e)
	}
	for _, p := range textProps {
		if s, ok := e.props[p].(string); ok {
			ix.byText.del(p, strings.ToLower(s), e)
		}
	}
}

// rebuild re-sorts both orders from the rows' current keys (after a change
// of many rows at once).
func (ix *setIndex) rebuild() {
	for _, e := range ix.byLMD {
		e.ix = keysOf(e)
	}
	slices.SortFunc(ix.byLMD, cmpLMD)
	slices.SortFunc(ix.byDef, cmpDef)
}

// linked returns the rows whose navigation nav points at id.
func (ix *setIndex) linked(nav, id string) map[*entity]struct{} {
	return ix.byNav[nav][id]
}
