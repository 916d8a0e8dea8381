package emulator

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors/emukit"
	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// apiError is an error answered with an OData error body.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, a...)}
}

func notFound(format string, a ...any) error {
	return &apiError{status: http.StatusNotFound, msg: fmt.Sprintf(format, a...)}
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *apiError
	var qe *queryError
	switch {
	case errors.As(err, &ae):
		writeODataError(w, ae.status, ae.msg)
	case errors.As(err, &qe):
		writeODataError(w, http.StatusBadRequest, qe.msg)
	default:
		writeODataError(w, http.StatusInternalServerError, err.Error())
	}
}

func (em *Emulator) authorized(r *http.Request) bool {
	tok := emukit.BearerToken(r)
	if tok == "" {
		// Tribe also accepts ?access_token= (one public integration uses it).
		if params, err := parseRawQuery(r.URL.RawQuery); err == nil {
			for _, p := range params {
				if p.key == "access_token" {
					tok = p.value
				}
			}
		}
	}
	if tok == "" {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(em.opts.Token)) == 1 {
		return true
	}
	em.mu.RLock()
	exp, ok := em.tokens[tok]
	em.mu.RUnlock()
	return ok && em.opts.Now().Before(exp)
}

// resourcePath is a parsed OData resource path: Set, Set(key) or Set(key)/Nav.
type resourcePath struct {
	set, key, nav string
	hasKey        bool
}

func parseResourcePath(p string) (resourcePath, error) {
	var rp resourcePath
	i := 0
	for i < len(p) && (isIdentByte(p[i]) || p[i] == '$') {
		i++
	}
	rp.set = p[:i]
	rest := p[i:]
	if rest == "" {
		return rp, nil
	}
	if rest[0] != '(' {
		return rp, notFound("Resource not found for the segment '%s'.", p)
	}
	end := strings.IndexByte(rest, ')')
	if end < 0 {
		return rp, badRequest("Missing ')' in the resource path '%s'.", p)
	}
	rp.hasKey = true
	key := strings.TrimPrefix(rest[1:end], "ID=")
	if !isGUID(key) {
		return rp, badRequest("The key value '%s' is not a valid Edm.Guid.", rest[1:end])
	}
	rp.key = strings.ToLower(key)
	rest = rest[end+1:]
	if rest == "" {
		return rp, nil
	}
	if rest[0] != '/' || len(rest) == 1 {
		return rp, notFound("Resource not found for the segment '%s'.", p)
	}
	rp.nav = rest[1:]
	return rp, nil
}

func (em *Emulator) serveOData(w http.ResponseWriter, r *http.Request, rest string) {
	switch rest {
	case "":
		em.serveServiceDocument(w, r)
		return
	case "$metadata":
		em.serveMetadata(w, r)
		return
	}
	rp, err := parseResourcePath(rest)
	if err != nil {
		writeErr(w, err)
		return
	}
	si, ok := em.st.sets[rp.set]
	if !ok {
		writeODataError(w, http.StatusNotFound, fmt.Sprintf("Resource not found for the segment '%s'.", rp.set))
		return
	}
	method := r.Method
	switch {
	case !rp.hasKey && method == http.MethodGet:
		em.serveList(w, r, si)
	case !rp.hasKey && method == http.MethodPost:
		em.servePost(w, r, si)
	case rp.hasKey && rp.nav == "" && method == http.MethodGet:
		em.serveGet(w, r, si, rp.key)
	case rp.hasKey && rp.nav == "" && (method == http.MethodPut || method == http.MethodPatch):
		// PATCH always merges (OData §11.4.3); PUT replaces only with
		// PutReplace.
		em.servePut(w, r, si, rp.key, method == http.MethodPut && em.opts.PutSemantics == PutReplace)
	case rp.hasKey && rp.nav == "" && method == http.MethodDelete:
		em.serveDelete(w, si, rp.key)
	case rp.hasKey && rp.nav != "" && method == http.MethodGet:
		em.serveNav(w, r, si, rp.key, rp.nav)
	default:
		w.Header().Set("Allow", "GET, POST, PUT, PATCH, DELETE")
		writeODataError(w, http.StatusMethodNotAllowed, fmt.Sprintf("The HTTP method '%s' is not allowed on this resource.", method))
	}
}

func (em *Emulator) serveServiceDocument(w http.ResponseWriter, r *http.Request) {
	base := baseURL(r) + "/v1/odata/"
	var names []string
	for n := range em.st.sets {
		names = append(names, n)
	}
	sort.Strings(names)
	var vals []map[string]any
	for _, n := range names {
		vals = append(vals, map[string]any{"name": n, "kind": "EntitySet", "url": n})
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": base + "$metadata", "value": vals})
}

func (em *Emulator) serveMetadata(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<edmx:Edmx xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx" Version="4.0"><edmx:DataServices><Schema xmlns="http://docs.oasis-open.org/odata/ns/edm" Namespace="Tribe">`)
	var names []string
	for n := range em.st.sets {
		names = append(names, n)
	}
	sort.Strings(names)
	edm := map[kind]string{kString: "Edm.String", kBool: "Edm.Boolean", kNumber: "Edm.Double", kDate: "Edm.DateTimeOffset", kGuid: "Edm.Guid"}
	for _, n := range names {
		t := em.st.sets[n].typ
		fmt.Fprintf(&b, `<EntityType Name="%s"><Key><PropertyRef Name="ID"/></Key>`, setOfType(t.name))
		var props []string
		for p := range t.props {
			props = append(props, p)
		}
		sort.Strings(props)
		for _, p := range props {
			fmt.Fprintf(&b, `<Property Name="%s" Type="%s"/>`, p, edm[t.props[p]])
		}
		var navs []string
		for nv := range t.navs {
			navs = append(navs, nv)
		}
		sort.Strings(navs)
		for _, nv := range navs {
			fmt.Fprintf(&b, `<NavigationProperty Name="%s" Type="Tribe.%s"/>`, nv, setOfType(t.navs[nv].name))
		}
		b.WriteString(`</EntityType>`)
	}
	b.WriteString(`<EntityContainer Name="Container">`)
	for _, n := range names {
		fmt.Fprintf(&b, `<EntitySet Name="%s" EntityType="Tribe.%s"/>`, n, setOfType(em.st.sets[n].typ.name))
	}
	b.WriteString(`</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>`)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("OData-Version", "4.0")
	_, _ = io.WriteString(w, b.String())
}

func (em *Emulator) serveList(w http.ResponseWriter, r *http.Request, si *setInfo) {
	q, err := parseODataQuery(r.URL.RawQuery, si.typ, true)
	if err != nil {
		writeErr(w, err)
		return
	}
	// Lists only read, unless EditDuringPaging edits after each reply.
	em.mu.RLock()
	edits := em.editN > 0
	if edits {
		em.mu.RUnlock()
		em.mu.Lock()
	}
	res := em.st.list(si.name, q, em.opts.PageCap, em.scan)
	vals := make([]map[string]any, 0, len(res.rows))
	for _, e := range res.rows {
		vals = append(vals, em.st.render(e, q.sel, q.expand))
	}
	if edits {
		em.editSome()
		em.unlockAndNotify()
	} else {
		em.mu.RUnlock()
	}

	resp := map[string]any{
		"@odata.context": baseURL(r) + "/v1/odata/$metadata#" + si.name,
		"value":          vals,
	}
	if q.count {
		resp["@odata.count"] = res.total
	}
	if res.capped {
		resp["@odata.nextLink"] = em.nextLink(r, si.name, q, q.skip+len(res.rows), len(res.rows))
	}
	writeJSON(w, http.StatusOK, resp)
}

// nextLink builds the URL of the rest of a capped reply: the same query
// with $skip (or, with ServerPaging, an opaque $skiptoken) moved past this
// page and $top reduced by what was returned; absolute, or relative to the
// context URL with RelativeLinks.
func (em *Emulator) nextLink(r *http.Request, set string, q *odataQuery, nextSkip, returned int) string {
	var parts []string
	for _, p := range q.params {
		if p.key == "$skip" || p.key == "$skiptoken" || p.key == "$top" || p.key == "access_token" {
			continue
		}
		parts = append(parts, p.key+"="+escapeQueryValue(p.value))
	}
	if q.top >= 0 {
		parts = append(parts, "$top="+strconv.Itoa(q.top-returned))
	}
	if em.opts.ServerPaging {
		parts = append(parts, "$skiptoken="+skipToken(nextSkip))
	} else {
		parts = append(parts, "$skip="+strconv.Itoa(nextSkip))
	}
	rel := set + "?" + strings.Join(parts, "&")
	if em.opts.RelativeLinks {
		return rel
	}
	return baseURL(r) + "/v1/odata/" + rel
}

func (em *Emulator) serveGet(w http.ResponseWriter, r *http.Request, si *setInfo, key string) {
	q, err := parseODataQuery(r.URL.RawQuery, si.typ, false)
	if err != nil {
		writeErr(w, err)
		return
	}
	em.mu.RLock()
	e, ok := em.st.rows[si.name][key]
	var body map[string]any
	if ok {
		body = em.st.render(e, q.sel, q.expand)
	}
	em.mu.RUnlock()
	if !ok {
		writeODataError(w, http.StatusNotFound, fmt.Sprintf("No entity found in '%s' with key '%s'.", si.name, key))
		return
	}
	body["@odata.context"] = baseURL(r) + "/v1/odata/$metadata#" + si.name + "/$entity"
	writeJSON(w, http.StatusOK, body)
}

func (em *Emulator) serveNav(w http.ResponseWriter, r *http.Request, si *setInfo, key, nav string) {
	target, ok := si.typ.navs[nav]
	if !ok {
		writeODataError(w, http.StatusNotFound, fmt.Sprintf("Resource not found for the segment '%s'.", nav))
		return
	}
	q, err := parseODataQuery(r.URL.RawQuery, target, false)
	if err != nil {
		writeErr(w, err)
		return
	}
	em.mu.RLock()
	e, ok := em.st.rows[si.name][key]
	var t *entity
	var body map[string]any
	if ok {
		if t = em.st.navTarget(e, nav); t != nil {
			// Render with the target's own type so every property shows.
			sel := q.sel
			body = em.st.render(t, sel, q.expand)
			body["@odata.context"] = baseURL(r) + "/v1/odata/$metadata#" + t.set + "/$entity"
		}
	}
	em.mu.RUnlock()
	switch {
	case !ok:
		writeODataError(w, http.StatusNotFound, fmt.Sprintf("No entity found in '%s' with key '%s'.", si.name, key))
	case t == nil:
		w.Header().Set("OData-Version", "4.0")
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusOK, body)
	}
}

func readBody(r *http.Request) (map[string]any, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
	if err != nil {
		return nil, badRequest("Could not read the request body.")
	}
	if len(data) > 1<<20 {
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, msg: "The request body is too large."}
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil || body == nil {
		return nil, badRequest("The request body must be a JSON object.")
	}
	return body, nil
}

func (em *Emulator) servePost(w http.ResponseWriter, r *http.Request, si *setInfo) {
	if readOnlySet(si) {
		writeODataError(w, http.StatusMethodNotAllowed, fmt.Sprintf("Entities of '%s' cannot be created or changed through the API.", si.name))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	em.mu.Lock()
	var (
		e      *entity
		status = http.StatusCreated
	)
	if id, has := body["ID"]; has && id != nil {
		// Upsert-style update, and for funnel sets stage conversion.
		status = http.StatusOK
		e, err = em.postWithID(si, id, body)
	} else if si.kind == setFunnel {
		e, err = em.createRelationship(si, body)
	} else {
		var pending []*entity
		e, pending, err = em.createEntity(si, body, em.clock.Now())
		if err == nil {
			for _, p := range pending {
				em.st.add(p)
			}
			em.st.add(e)
		}
	}
	var out map[string]any
	if err == nil {
		out = em.st.render(e, nil, nil)
	}
	em.unlockAndNotify()
	if err != nil {
		writeErr(w, err)
		return
	}
	out["@odata.context"] = baseURL(r) + "/v1/odata/$metadata#" + e.set + "/$entity"
	if status == http.StatusCreated {
		w.Header().Set("Location", baseURL(r)+"/v1/odata/"+e.set+"("+e.id+")")
	}
	writeJSON(w, status, out)
}

// servePut updates one entity: a merge of the fields sent (PATCH, and PUT
// as Tribe documents it), or with replace a replacement of the entity by
// the body (PUT with PutReplace, as OData defines PUT). It answers 200 with
// the entity so a client sees the new LastMutationDate without another GET.
func (em *Emulator) servePut(w http.ResponseWriter, r *http.Request, si *setInfo, key string, replace bool) {
	if readOnlySet(si) {
		writeODataError(w, http.StatusMethodNotAllowed, fmt.Sprintf("Entities of '%s' cannot be changed through the API.", si.name))
		return
	}
	body, err := readBody(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	em.mu.Lock()
	e, ok := em.st.rows[si.name][key]
	var out map[string]any
	if !ok {
		err = notFound("No entity found in '%s' with key '%s'.", si.name, key)
	} else if err = em.update(e, e.typ, body, replace); err == nil {
		out = em.st.render(e, nil, nil)
	}
	em.unlockAndNotify()
	if err != nil {
		writeErr(w, err)
		return
	}
	out["@odata.context"] = baseURL(r) + "/v1/odata/$metadata#" + si.name + "/$entity"
	writeJSON(w, http.StatusOK, out)
}

func (em *Emulator) serveDelete(w http.ResponseWriter, si *setInfo, key string) {
	if readOnlySet(si) {
		writeODataError(w, http.StatusMethodNotAllowed, fmt.Sprintf("Entities of '%s' cannot be deleted through the API.", si.name))
		return
	}
	em.mu.Lock()
	e, ok := em.st.rows[si.name][key]
	var err error
	switch {
	case !ok:
		err = notFound("No entity found in '%s' with key '%s'.", si.name, key)
	case si.kind != setFunnel && em.referenced(e.id):
		err = badRequest("The %s '%s' is still linked to relationships; delete those first.", si.name, key)
	default:
		em.st.remove(e)
	}
	em.unlockAndNotify()
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(http.StatusNoContent)
}

// referenced reports whether any row links id (by the link indexes).
func (em *Emulator) referenced(id string) bool {
	for _, ix := range em.st.idx {
		for _, byTarget := range ix.byNav {
			if len(byTarget[id]) > 0 {
				return true
			}
		}
	}
	return false
}

// ---------------------------------------------------------------- writes

// readOnly properties are server-set: writes to them are ignored.
var readOnly = map[string]bool{"ID": true, "_Type": true, "_Name": true, "CreationDate": true, "LastMutationDate": true, "_UpgradeType": true}

// validated is a checked write: new property values and raw navigation values.
type validated struct {
	props map[string]any
	navs  map[string]any
}

// validate checks body against t: known, writable properties of the right
// type. Navigation values are returned raw for the caller to check.
func validate(t *typeDef, body map[string]any) (validated, error) {
	v := validated{props: map[string]any{}, navs: map[string]any{}}
	for k, val := range body {
		switch {
		case strings.HasPrefix(k, "@"):
			continue // instance annotations
		case strings.HasSuffix(k, "@odata.bind"):
			nav := strings.TrimSuffix(k, "@odata.bind")
			if _, ok := t.navs[nav]; !ok {
				return v, badRequest("Could not find a navigation property named '%s' on type '%s'.", nav, t.name)
			}
			s, _ := val.(string)
			if i := strings.LastIndexByte(s, '('); i >= 0 && strings.HasSuffix(s, ")") {
				s = s[i+1 : len(s)-1]
			}
			v.navs[nav] = map[string]any{"ID": s}
			continue
		case readOnly[k]:
			continue
		case strings.Contains(k, "@"):
			continue // property annotations
		}
		if pk, ok := t.props[k]; ok {
			if !t.writable[k] {
				return v, badRequest("The property '%s' of type '%s' cannot be written.", k, t.name)
			}
			nv, err := checkValue(t, k, pk, val)
			if err != nil {
				return v, err
			}
			v.props[k] = nv
			continue
		}
		if _, ok := t.navs[k]; ok {
			v.navs[k] = val
			continue
		}
		return v, badRequest("The property '%s' does not exist in type '%s'.", k, t.name)
	}
	return v, nil
}

func checkValue(t *typeDef, name string, k kind, val any) (any, error) {
	switch k {
	case kString:
		if val == nil {
			return nil, nil
		}
		if s, ok := val.(string); ok {
			return s, nil
		}
	case kBool:
		if b, ok := val.(bool); ok {
			return b, nil
		}
	case kNumber:
		if val == nil && name != "SortIndex" {
			return nil, nil
		}
		if f, ok := val.(float64); ok {
			return f, nil
		}
	}
	return nil, badRequest("The value of '%s' must be %s.", name, k)
}

// readOnlySet reports whether a set's rows cannot be written through the
// API: the identity and the datastores ("Most datastore subtypes are
// read-only and managed through the Tribe CRM UI", docs/api/datastores).
func readOnlySet(si *setInfo) bool { return si.kind == setIdentity || si.kind == setDatastore }

// defaults are the values a create gives the properties that are not null
// when not sent.
var defaults = map[string]any{"IsActive": true, "IsClosed": false}

// resetForReplace sets every client-writable property of e to the value a
// create gives it when not sent (PutReplace). SortIndex is kept: the server
// sets it on create.
func resetForReplace(e *entity) {
	for p := range e.typ.props {
		if !e.typ.writable[p] || p == "SortIndex" {
			continue
		}
		if defaults[p] != nil {
			e.props[p] = defaults[p]
		} else {
			e.props[p] = nil
		}
	}
}

// requiredLink reports whether nav is a link an entity of type t cannot
// lack: a relationship's parent Relation and its Organization or Person
// (seeds S0, S1). Every other link (Status, an organisation's addresses, an
// address's Country) may be unbound.
func requiredLink(t *typeDef, nav string) bool {
	return t.navs["Relation"] != nil && (nav == "Relation" || nav == flavourOrganization || nav == flavourPerson)
}

// apply merges validated properties into e.
func apply(e *entity, props map[string]any) {
	for k, v := range props {
		e.props[k] = v
	}
}

func checkRequired(t *typeDef, props map[string]any, creating bool) error {
	for _, req := range t.required {
		v, present := props[req]
		if !present && !creating {
			continue
		}
		if s, _ := v.(string); strings.TrimSpace(s) == "" {
			return badRequest("The property '%s' is required for type '%s'.", req, t.name)
		}
	}
	return nil
}

// createEntity validates body and builds (without storing) a new
// Relation_Organization, Relation_Person or Address, and the addresses it
// creates inline, which the caller stores first. Its links are bound by
// {"ID": ...} or @odata.bind; an address may also be written inline, which
// creates it (a deep insert, OData v4.01 Part 1 §11.4.2.2 "Create Related
// Entities When Creating an Entity"). A datastore row (Country) can only be
// bound: datastores are read-only through the API.
func (em *Emulator) createEntity(si *setInfo, body map[string]any, now time.Time) (*entity, []*entity, error) {
	v, err := validate(si.typ, body)
	if err != nil {
		return nil, nil, err
	}
	if err := checkRequired(si.typ, v.props, true); err != nil {
		return nil, nil, err
	}
	e := &entity{set: si.name, typ: si.typ, id: newGUID(em.rnd), props: map[string]any{}, nav: map[string]string{}}
	for p := range si.typ.props {
		if !readOnly[p] {
			e.props[p] = nil
		}
	}
	e.props["SortIndex"] = em.st.nextSortIndex()
	apply(e, v.props)
	e.props["CreationDate"] = now
	e.props["LastMutationDate"] = now
	var pending []*entity
	for _, nav := range sortedKeys(v.navs) {
		val := v.navs[nav]
		if val == nil {
			continue
		}
		id, inline, err := bindingID(nav, val)
		if err != nil {
			return nil, nil, err
		}
		if inline != nil {
			if si.typ.navs[nav] != em.st.sets[setAddress].typ {
				return nil, nil, badRequest("'%s' must be bound by ID.", nav)
			}
			child, more, err := em.createEntity(em.st.sets[setAddress], inline, now)
			if err != nil {
				var ae *apiError
				if errors.As(err, &ae) {
					ae.msg = nav + ": " + ae.msg
				}
				return nil, nil, err
			}
			pending = append(append(pending, more...), child)
			id = child.id
		} else if err := em.bindable(si.typ, nav, id); err != nil {
			return nil, nil, err
		}
		e.nav[nav] = id
	}
	return e, pending, nil
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// bindingID reads a navigation value: {"ID": guid} binds an existing entity,
// any other object is an inline (deep insert) entity.
func bindingID(nav string, val any) (id string, inline map[string]any, err error) {
	m, ok := val.(map[string]any)
	if !ok || m == nil {
		return "", nil, badRequest("The navigation property '%s' must be an object.", nav)
	}
	if raw, has := m["ID"]; has && raw != nil {
		s, _ := raw.(string)
		if !isGUID(s) {
			return "", nil, badRequest("'%v' is not a valid Edm.Guid for %s/ID.", raw, nav)
		}
		// Other properties next to an ID are ignored: the ID binds.
		return strings.ToLower(s), nil, nil
	}
	return "", m, nil
}

// bindable checks that id is a row that navigation nav of type t may point
// at: one of the nav's type or of a type under it (a Relation link takes an
// organisation or a person).
func (em *Emulator) bindable(t *typeDef, nav, id string) error {
	want := t.navs[nav]
	if e, ok := em.st.byID[id]; ok && want != nil && (e.typ == want || strings.HasPrefix(e.typ.name, want.name+".")) {
		return nil
	}
	return badRequest("The entity '%s' with ID '%s' does not exist.", nav, id)
}

func (em *Emulator) createRelationship(si *setInfo, body map[string]any) (*entity, error) {
	v, err := validate(si.typ, body)
	if err != nil {
		return nil, err
	}
	e := &entity{set: si.name, typ: si.typ, id: newGUID(em.rnd), nav: map[string]string{}, props: map[string]any{
		"Name": nil, "ImportId": nil, "IsActive": defaults["IsActive"], "IsClosed": defaults["IsClosed"],
	}}
	// Relation: the parent relation, required.
	rv, ok := v.navs["Relation"]
	if !ok || rv == nil {
		return nil, badRequest("The navigation property 'Relation' is required: bind the parent relation with {\"Relation\": {\"ID\": ...}}.")
	}
	relID, inline, err := bindingID("Relation", rv)
	if err != nil {
		return nil, err
	}
	if inline != nil {
		return nil, badRequest("The parent 'Relation' must be bound by ID.")
	}
	if err := em.bindable(si.typ, "Relation", relID); err != nil {
		return nil, err
	}
	e.nav["Relation"] = relID
	// The child relation: bound by ID or created inline.
	childSet := em.st.sets[relationOrganization]
	if si.flavour == flavourPerson {
		childSet = em.st.sets[relationPerson]
	}
	cv, ok := v.navs[si.flavour]
	if !ok || cv == nil {
		return nil, badRequest("The navigation property '%s' is required.", si.flavour)
	}
	childID, inline, err := bindingID(si.flavour, cv)
	if err != nil {
		return nil, err
	}
	now := em.clock.Now()
	var child *entity
	var pending []*entity
	if inline != nil {
		if child, pending, err = em.createEntity(childSet, inline, now); err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				ae.msg = si.flavour + ": " + ae.msg
			}
			return nil, err
		}
		childID = child.id
	} else if err := em.bindable(si.typ, si.flavour, childID); err != nil {
		return nil, err
	}
	e.nav[si.flavour] = childID
	if sv, ok := v.navs["Status"]; ok && sv != nil {
		sid, inline, err := bindingID("Status", sv)
		if err != nil {
			return nil, err
		}
		if inline != nil {
			return nil, badRequest("'Status' must be bound by ID.")
		}
		if err := em.bindable(si.typ, "Status", sid); err != nil {
			return nil, err
		}
		e.nav["Status"] = sid
	}
	e.props["SortIndex"] = em.st.nextSortIndex()
	apply(e, v.props)
	e.props["CreationDate"] = now
	e.props["LastMutationDate"] = now
	for _, p := range pending {
		em.st.add(p)
	}
	if child != nil {
		em.st.add(child)
	}
	em.st.add(e)
	return e, nil
}

// update merges body into e, validated against t (e's type, or the target
// type of a conversion), and bumps LastMutationDate. With replace (a PUT
// under PutReplace) the body replaces e instead: see PutReplace.
func (em *Emulator) update(e *entity, t *typeDef, body map[string]any, replace bool) error {
	// e's keys and links may change: out of the indexes until done.
	em.st.unindex(e)
	defer em.st.index(e)
	v, err := validate(t, body)
	if err != nil {
		return err
	}
	if err := checkRequired(t, v.props, replace); err != nil {
		return err
	}
	navs := map[string]string{}
	for nav, val := range v.navs {
		if val == nil {
			if !requiredLink(t, nav) {
				navs[nav] = ""
				continue
			}
			return badRequest("The navigation property '%s' cannot be null.", nav)
		}
		id, inline, err := bindingID(nav, val)
		if err != nil {
			return err
		}
		if inline != nil {
			return badRequest("Deep update of '%s' is not supported: update the related entity (%s(%s)) itself.", nav, setOfType(t.navs[nav].name), e.nav[nav])
		}
		if err := em.bindable(t, nav, id); err != nil {
			return err
		}
		navs[nav] = id
	}
	if replace {
		names := make([]string, 0, len(t.navs))
		for nav := range t.navs {
			names = append(names, nav)
		}
		sort.Strings(names) // the same error every time
		for _, nav := range names {
			if _, sent := navs[nav]; sent {
				continue
			}
			if requiredLink(t, nav) {
				return badRequest("The navigation property '%s' is required: a PUT replaces the entity, so bind it with {\"%s\": {\"ID\": ...}}.", nav, nav)
			}
			navs[nav] = "" // an optional link not sent is unbound
		}
		resetForReplace(e)
	}
	apply(e, v.props)
	for nav, id := range navs {
		if id == "" {
			delete(e.nav, nav)
		} else {
			e.nav[nav] = id
		}
	}
	e.props["LastMutationDate"] = em.clock.Now()
	em.st.changed(e, api.OpUpdate)
	return nil
}

// postWithID handles POST to a set with an ID in the body: an update, and
// on a funnel set with _Type or _UpgradeType, a stage conversion.
//
// _Type must be the dotted type name and _UpgradeType the underscored
// entity-set name, as the docs and the vendor's n8n node send them.
func (em *Emulator) postWithID(si *setInfo, rawID any, body map[string]any) (*entity, error) {
	id, _ := rawID.(string)
	if !isGUID(id) {
		return nil, badRequest("'%v' is not a valid Edm.Guid for ID.", rawID)
	}
	id = strings.ToLower(id)
	e, ok := em.st.rows[si.name][id]
	if !ok {
		return nil, notFound("No entity found in '%s' with key '%s'.", si.name, id)
	}
	target := si
	if si.kind == setFunnel {
		var want []string
		if tv, has := body["_Type"]; has && tv != nil {
			s, _ := tv.(string)
			if s != "" && !strings.Contains(s, ".") {
				return nil, badRequest("Invalid _Type '%s': expected a dotted type name such as '%s'.", s, typeOfSet(si.name))
			}
			want = append(want, setOfType(s))
		}
		if uv, has := body["_UpgradeType"]; has && uv != nil {
			s, _ := uv.(string)
			if strings.Contains(s, ".") {
				return nil, badRequest("Invalid _UpgradeType '%s': expected an entity-set name such as '%s'.", s, si.name)
			}
			want = append(want, s)
		}
		if len(want) == 2 && want[0] != want[1] {
			return nil, badRequest("_Type and _UpgradeType disagree.")
		}
		if len(want) > 0 && want[0] != si.name {
			fl, _, isFunnel := parseFunnelSet(want[0])
			switch {
			case !isFunnel:
				return nil, badRequest("Cannot change the type of '%s' to '%s': only CommercialRelationship types can be swapped for one another.", typeOfSet(si.name), typeOfSet(want[0]))
			case fl != si.flavour:
				return nil, badRequest("Cannot convert '%s' to '%s': type conversion only works within the same Relation type.", typeOfSet(si.name), typeOfSet(want[0]))
			}
			target = em.st.sets[want[0]]
		}
	}
	// An update by POST merges: the vendor's own clients send only the
	// fields they change with it (n8n node "Update", MCP updateEntity).
	if err := em.update(e, target.typ, body, false); err != nil {
		return nil, err
	}
	if target != si {
		em.st.move(e, target.name)
	}
	return e, nil
}

// ---------------------------------------------------------------- OAuth2

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// serveToken is the OAuth2 token endpoint (ORY Hydra style), client
// credentials grant only.
func (em *Emulator) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusMethodNotAllowed, "invalid_request", "The token endpoint only accepts POST.")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "The request body could not be parsed.")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server.")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok && id == "" {
		id, secret = u, p
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(em.opts.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(em.opts.ClientSecret)) != 1 {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method).")
		return
	}
	scope := r.PostForm.Get("scope")
	if scope == "" {
		scope = "read write"
	}
	now := em.opts.Now()
	em.mu.Lock()
	em.tokenSeq++
	var raw [24]byte
	binary.LittleEndian.PutUint64(raw[:8], em.rnd.Uint64())
	binary.LittleEndian.PutUint64(raw[8:16], em.rnd.Uint64())
	binary.LittleEndian.PutUint64(raw[16:], em.tokenSeq)
	payload := fmt.Sprintf(`{"sub":%q,"iat":%d,"exp":%d}`, id, now.Unix(), now.Add(em.opts.TokenLifetime).Unix())
	tok := "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(raw[:])
	for t, exp := range em.tokens {
		if !now.Before(exp) {
			delete(em.tokens, t)
		}
	}
	em.tokens[tok] = now.Add(em.opts.TokenLifetime)
	em.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok,
		"token_type":   "bearer",
		"expires_in":   int((em.opts.TokenLifetime + time.Second - 1) / time.Second),
		"scope":        scope,
	})
}
