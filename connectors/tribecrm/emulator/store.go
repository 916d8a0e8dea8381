package emulator

import (
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// typeDef describes one entity type of the emulated service.
type typeDef struct {
	name     string              // dotted type name, e.g. "Relation.Organization"
	props    map[string]kind     // structural properties
	navs     map[string]*typeDef // single-valued navigation properties -> target type
	writable map[string]bool     // structural properties a client may set
	required []string            // properties that must be non-empty strings
}

// resolve walks a property path and returns its type, or a queryError for a
// property the type does not have.
func (t *typeDef) resolve(segs []string) (kind, error) {
	cur := t
	for i, s := range segs {
		last := i == len(segs)-1
		if k, ok := cur.props[s]; ok {
			if !last {
				return 0, qerr("The property '%s' of type '%s' has no property '%s'.", s, cur.name, segs[i+1])
			}
			return k, nil
		}
		if nt, ok := cur.navs[s]; ok {
			if last {
				return kEntity, nil
			}
			cur = nt
			continue
		}
		return 0, qerr("Could not find a property named '%s' on type '%s'.", s, cur.name)
	}
	return 0, qerr("Empty property path.")
}

// setKind says how an entity set behaves.
type setKind uint8

const (
	setFunnel setKind = iota + 1
	setOrganization
	setPerson
	setIdentity
	setDatastore
	setAddressKind
)

// The sets of addresses and countries (docs/api/entities/addresses,
// docs/api/datastores/countries).
const (
	setAddress = api.SetAddress
	setCountry = api.SetCountry
)

type setInfo struct {
	name    string
	kind    setKind
	typ     *typeDef
	flavour string // funnel sets only
}

// entity is one stored row. Computed properties (ID, _Type, _Name) are not
// kept in props.
type entity struct {
	set   string
	typ   *typeDef
	id    string
	props map[string]any    // string, bool, float64, time.Time, nil
	nav   map[string]string // navigation name -> target id
	ix    ixKeys            // the keys it is indexed under (index.go)
}

func stringsProps(names ...string) map[string]kind {
	m := map[string]kind{}
	for _, n := range names {
		m[n] = kString
	}
	return m
}

func writableSet(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// schema builds the emulated types and entity sets.
//
// Addresses are entities of their own (developer.tribecrm.nl
// docs/api/entities/addresses: "Address" with Street, HouseNumber (Double),
// HouseNumberSuffix, Extra, Postalcode, City, Latitude, Longitude and the
// N:1 links Country → Datastore.Country, Organization, Person). An
// organisation reaches its addresses through the navigations VisitingAddress
// and PostalAddress (docs/api/relations/customers:
// "$expand=VisitingAddress,PostalAddress,Branch"), a person through Address
// (docs/api/relations/contacts: "$expand=Address,Gender,Language").
// Countries are Datastore_Country rows with Name, Code, LocalizedName,
// IsDefault, HasIntraCommunityVat and CountryNumber
// (docs/api/datastores/countries), read-only like most datastores
// (docs/api/datastores).
func newSchema() map[string]*setInfo {
	base := func(name string) *typeDef {
		return &typeDef{name: name, props: map[string]kind{
			"ID": kGuid, "_Type": kString, "_Name": kString, "SortIndex": kNumber,
			"CreationDate": kDate, "LastMutationDate": kDate, "ImportId": kString,
		}, navs: map[string]*typeDef{}, writable: writableSet("SortIndex", "ImportId")}
	}
	country := &typeDef{name: "Datastore.Country", props: map[string]kind{
		"ID": kGuid, "_Type": kString, "_Name": kString, "SortIndex": kNumber, "Code": kString,
		"Name": kString, "LocalizedName": kString, "IsDefault": kBool, "HasIntraCommunityVat": kBool, "CountryNumber": kString,
	}, navs: map[string]*typeDef{}}
	address := base("Address")
	for p, k := range map[string]kind{"Street": kString, "HouseNumber": kNumber, "HouseNumberSuffix": kString, "Extra": kString,
		"Postalcode": kString, "City": kString, "Latitude": kNumber, "Longitude": kNumber} {
		address.props[p] = k
		address.writable[p] = true
	}
	address.navs["Country"] = country
	relation := base("Relation")

	org := base("Relation.Organization")
	for _, p := range []string{"Name", "EmailAddress", "PhoneNumber", "Website", "VatNumber", "ChamberOfCommerceNumber"} {
		org.props[p] = kString
		org.writable[p] = true
	}
	org.navs["VisitingAddress"] = address
	org.navs["PostalAddress"] = address
	org.required = []string{"Name"}

	person := base("Relation.Person")
	for _, p := range []string{"FirstName", "MiddleName", "LastName", "EmailAddress", "PhoneNumber", "MobilePhoneNumber"} {
		person.props[p] = kString
		person.writable[p] = true
	}
	person.navs["Address"] = address
	person.required = []string{"LastName"}
	address.navs["Organization"] = org
	address.navs["Person"] = person

	status := &typeDef{name: "Datastore.RelationshipStatus", props: map[string]kind{
		"ID": kGuid, "_Type": kString, "_Name": kString, "SortIndex": kNumber, "Code": kString,
	}, navs: map[string]*typeDef{}}

	relationship := func(typ string, child string, childT *typeDef, withStatus bool) *typeDef {
		t := base(typ)
		t.props["IsActive"] = kBool
		t.props["IsClosed"] = kBool
		t.props["Name"] = kString
		for _, p := range []string{"IsActive", "IsClosed", "Name"} {
			t.writable[p] = true
		}
		t.navs["Relation"] = relation
		t.navs[child] = childT
		if withStatus {
			t.navs["Status"] = status
		}
		return t
	}

	sets := map[string]*setInfo{
		relationOrganization: {name: relationOrganization, kind: setOrganization, typ: org},
		relationPerson:       {name: relationPerson, kind: setPerson, typ: person},
		organizationIdentity: {name: organizationIdentity, kind: setIdentity, typ: relationship(typeOfSet(organizationIdentity), flavourOrganization, org, false)},
		"Datastore":          {name: "Datastore", kind: setDatastore, typ: status},
		setCountry:           {name: setCountry, kind: setDatastore, typ: country},
		setAddress:           {name: setAddress, kind: setAddressKind, typ: address},
	}
	for _, set := range funnelSets() {
		fl, _, _ := parseFunnelSet(set)
		childT := org
		if fl == flavourPerson {
			childT = person
		}
		sets[set] = &setInfo{name: set, kind: setFunnel, typ: relationship(typeOfSet(set), fl, childT, true), flavour: fl}
	}
	return sets
}

// store is the emulator's in-memory data. The Emulator's mutex guards it.
type store struct {
	sets    map[string]*setInfo
	rows    map[string]map[string]*entity // set -> id -> row
	idx     map[string]*setIndex          // set -> its indexes
	byID    map[string]*entity
	sortSeq float64
	loading bool     // bulk load (seeding): indexes are sorted once at its end
	changes []change // writes since the last takeChanges, for the webhooks
}

func newStore() *store {
	st := &store{sets: newSchema(), rows: map[string]map[string]*entity{}, idx: map[string]*setIndex{}, byID: map[string]*entity{}}
	for name := range st.sets {
		st.rows[name] = map[string]*entity{}
		st.idx[name] = newSetIndex()
	}
	return st
}

func (st *store) add(e *entity) {
	st.rows[e.set][e.id] = e
	st.byID[e.id] = e
	st.idx[e.set].add(e, !st.loading)
	if !st.loading {
		st.changed(e, api.OpCreate)
	}
	if si, ok := e.props["SortIndex"].(float64); ok && si > st.sortSeq {
		st.sortSeq = si
	}
}

func (st *store) remove(e *entity) {
	st.changed(e, api.OpDelete)
	st.idx[e.set].remove(e)
	delete(st.rows[e.set], e.id)
	delete(st.byID, e.id)
}

func (st *store) move(e *entity, toSet string) {
	st.changed(e, api.OpUpdate)
	defer st.changed(e, api.OpUpdate)
	st.unindex(e)
	delete(st.rows[e.set], e.id)
	e.set = toSet
	e.typ = st.sets[toSet].typ
	st.rows[toSet][e.id] = e
	st.index(e)
}

// unindex takes e out of its set's indexes before a change of its keys or
// links; index puts it back after.
func (st *store) unindex(e *entity) { st.idx[e.set].remove(e) }

func (st *store) index(e *entity) { st.idx[e.set].add(e, true) }

// endLoad sorts the indexes after a bulk load.
func (st *store) endLoad() {
	st.loading = false
	for _, ix := range st.idx {
		ix.rebuild()
	}
}

func (st *store) nextSortIndex() float64 {
	st.sortSeq++
	return st.sortSeq
}

// navTarget returns the entity a navigation property points at, or nil.
func (st *store) navTarget(e *entity, nav string) *entity {
	if e == nil {
		return nil
	}
	id, ok := e.nav[nav]
	if !ok {
		return nil
	}
	return st.byID[id]
}

// prop returns a structural property's value, computing ID, _Type and _Name.
func (st *store) prop(e *entity, name string) any {
	switch name {
	case "ID":
		return guidVal(e.id)
	case "_Type":
		return e.typ.name
	case "_Name":
		return st.displayName(e)
	}
	return e.props[name]
}

func (st *store) displayName(e *entity) any {
	switch {
	case e.typ.props["LastName"] == kString:
		var parts []string
		for _, p := range []string{"FirstName", "MiddleName", "LastName"} {
			if s, _ := e.props[p].(string); strings.TrimSpace(s) != "" {
				parts = append(parts, strings.TrimSpace(s))
			}
		}
		return strings.Join(parts, " ")
	case e.typ.props["Code"] == kString:
		return e.props["_Name"]
	case e.typ.navs["Relation"] != nil:
		for _, nav := range []string{flavourOrganization, flavourPerson} {
			if c := st.navTarget(e, nav); c != nil {
				return st.displayName(c)
			}
		}
		return e.props["Name"]
	}
	return e.props["Name"]
}

// pathValue evaluates a bound property path on e (nil when any step is null).
func (st *store) pathValue(e *entity, segs []string) any {
	var cur any = e
	for _, s := range segs {
		switch c := cur.(type) {
		case *entity:
			if c == nil {
				return nil
			}
			if _, ok := c.typ.navs[s]; ok {
				t := st.navTarget(c, s)
				if t == nil {
					return nil
				}
				cur = t
				continue
			}
			cur = st.prop(c, s)
		case map[string]any:
			cur = c[s]
		default:
			return nil
		}
	}
	return cur
}

// jsonValue converts a stored value to its JSON form.
func jsonValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		return formatTime(v)
	case guidVal:
		return string(v)
	case map[string]any:
		if v == nil {
			return nil
		}
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = jsonValue(x)
		}
		return out
	}
	return v
}

// expandItem is one parsed $expand entry.
type expandItem struct {
	nav    string
	sel    map[string]bool // nil: all properties
	expand []expandItem
}

// render builds an entity's JSON object under $select and $expand.
func (st *store) render(e *entity, sel map[string]bool, exp []expandItem) map[string]any {
	m := make(map[string]any, len(e.typ.props)+len(exp))
	for name := range e.typ.props {
		if sel == nil || sel[name] || name == "ID" {
			m[name] = jsonValue(st.prop(e, name))
		}
	}
	for _, x := range exp {
		t := st.navTarget(e, x.nav)
		if t == nil {
			m[x.nav] = nil
			continue
		}
		m[x.nav] = st.render(t, x.sel, x.expand)
	}
	return m
}

// sorted returns rows ordered by items, then by the default order
// (SortIndex, CreationDate, ID) so that every order is total and stable.
func (st *store) sorted(rows []*entity, items []orderItem) []*entity {
	def := []orderItem{
		{path: &pathNode{segs: []string{"SortIndex"}}},
		{path: &pathNode{segs: []string{"CreationDate"}}},
		{path: &pathNode{segs: []string{"ID"}}},
	}
	all := append(append([]orderItem(nil), items...), def...)
	keys := make([][]any, len(rows))
	for i, e := range rows {
		k := make([]any, len(all))
		for j, it := range all {
			k[j] = st.pathValue(e, it.path.segs)
		}
		keys[i] = k
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := keys[idx[a]], keys[idx[b]]
		for j, it := range all {
			c := orderCompare(ka[j], kb[j])
			if it.desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
	out := make([]*entity, len(rows))
	for i, k := range idx {
		out[i] = rows[k]
	}
	return out
}

// newGUID returns a random lower-case version-4 GUID drawn from r.
func newGUID(r *rand.Rand) string {
	var b [16]byte
	a, c := r.Uint64(), r.Uint64()
	for i := 0; i < 8; i++ {
		b[i] = byte(a >> (8 * i))
		b[8+i] = byte(c >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, x := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexd[x>>4], hexd[x&0x0f])
	}
	return string(out)
}
