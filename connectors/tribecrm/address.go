package tribecrm

// Addresses are entities of their own in Tribe, not values inside an
// organisation or person (issue 9 item 2):
//   - developer.tribecrm.nl docs/api/entities/addresses: the Address entity
//     (GET/POST /v1/odata/Address, PUT Address({id})) with Street,
//     HouseNumber (Double), HouseNumberSuffix, Extra, Postalcode, City, and
//     Country as an N:1 link to Datastore.Country;
//   - docs/api/relations/customers: an organisation expands
//     "VisitingAddress,PostalAddress"; docs/api/relations/contacts: a person
//     expands "Address";
//   - the vendor's MCP server expands them the same way, nested:
//     "Organization($select=Name,PhoneNumber;$expand=VisitingAddress($expand=Country))"
//     (efficy-sa/tribecrm-mcp-server docs/EXAMPLES.md, example 4);
//   - docs/api/datastores/countries: Datastore_Country rows have Name, Code
//     ("Unique code identifier") and LocalizedName.
//
// So the client expands each address with its Country, and writes an
// address as the Address entity: a new one is created with POST Address
// and bound to its organisation or person by ID; an existing one is
// updated with the update method. A Country is always bound by ID: the
// client reads Datastore_Country once and finds the row whose Code, Name
// or LocalizedName equals the text it is given.
//
// Tribe keeps the house number apart from the street. The client adds a
// property of its own, StreetAndNumber ("Kanaalweg 14A"), to every address
// it reads, built from Street, HouseNumber and HouseNumberSuffix, and
// splits it again when it is written; it is never sent to Tribe.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// SetAddress and SetCountry are the entity sets of addresses and countries.
const (
	SetAddress = api.SetAddress
	SetCountry = api.SetCountry
)

// StreetAndNumber is the client's own address property: Street, HouseNumber
// and HouseNumberSuffix as one street line.
const StreetAndNumber = "StreetAndNumber"

// addressNavs are the address navigations of an organisation or person.
func addressNavs(flavour string) []string {
	if flavour == FlavourPerson {
		return []string{"Address"}
	}
	return []string{"VisitingAddress", "PostalAddress"}
}

// flavourOfRelationSet returns the flavour of Relation_Organization or
// Relation_Person, or "".
func flavourOfRelationSet(set string) string {
	switch set {
	case SetOrganization:
		return FlavourOrganization
	case SetPerson:
		return FlavourPerson
	}
	return ""
}

// relationExpand is the $expand of a relation's addresses and their
// countries, e.g. "VisitingAddress($expand=Country),PostalAddress($expand=Country)".
func relationExpand(flavour string) string {
	var parts []string
	for _, a := range addressNavs(flavour) {
		parts = append(parts, a+"($expand=Country)")
	}
	return strings.Join(parts, ",")
}

// expandFor is the $expand of a set's reads: a funnel set's Organization or
// Person with its addresses, a relation set's addresses.
func expandFor(set string) string {
	if nav := navOf(set); nav != "" {
		return nav + "($expand=" + relationExpand(nav) + ")"
	}
	if fl := flavourOfRelationSet(set); fl != "" {
		return relationExpand(fl)
	}
	return ""
}

// addStreetLines adds StreetAndNumber to every address of a decoded
// relation (in place).
func addStreetLines(rel map[string]any, flavour string) {
	for _, nav := range addressNavs(flavour) {
		if a, ok := rel[nav].(map[string]any); ok {
			a[StreetAndNumber] = joinStreet(a)
		}
	}
}

// joinStreet builds the street line: "Kanaalweg" + 14 + "A" is
// "Kanaalweg 14A"; a suffix that is not one letter or starts with '-' or
// '/' gets a space ("Kanaalweg 14 bis"). Without a house number it is the
// street alone.
func joinStreet(a map[string]any) any {
	street, _ := a["Street"].(string)
	street = strings.TrimSpace(street)
	num, ok := a["HouseNumber"].(float64)
	if !ok {
		if street == "" {
			return nil
		}
		return street
	}
	line := strings.TrimSpace(street + " " + strconv.FormatFloat(num, 'f', -1, 64))
	if suf, _ := a["HouseNumberSuffix"].(string); strings.TrimSpace(suf) != "" {
		suf = strings.TrimSpace(suf)
		if attached(suf) {
			line += suf
		} else {
			line += " " + suf
		}
	}
	return line
}

func attached(suf string) bool {
	r := []rune(suf)
	return (len(r) == 1 && unicode.IsLetter(r[0])) || r[0] == '-' || r[0] == '/'
}

// splitStreet is the inverse of joinStreet: the last word that starts with
// a digit is the house number, the letters or marks right after its digits
// and the words after it are the suffix, and what comes before is the
// street. A line without such a word is a street without a number.
func splitStreet(line string) (street string, number any, suffix any) {
	words := strings.Fields(line)
	for i := len(words) - 1; i > 0; i-- {
		w := words[i]
		j := 0
		for j < len(w) && w[j] >= '0' && w[j] <= '9' {
			j++
		}
		if j == 0 {
			continue
		}
		n, err := strconv.Atoi(w[:j])
		if err != nil {
			break
		}
		suf := strings.TrimSpace(strings.Join(append([]string{w[j:]}, words[i+1:]...), " "))
		if suf != "" {
			suffix = suf
		}
		return strings.Join(words[:i], " "), float64(n), suffix
	}
	return strings.TrimSpace(line), nil, nil
}

// countries is the Datastore_Country list, read once per client.
type countryRow struct{ id, code, name, local string }

// countryID returns the ID of the Datastore_Country row whose Code, Name or
// LocalizedName is v (trimmed, case-insensitive), read once per client.
func (c *Client) countryID(ctx context.Context, v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	c.mu.Lock()
	rows := c.countries
	c.mu.Unlock()
	if rows == nil {
		items, err := c.getAll(ctx, c.root+"/"+SetCountry+query("$select", "ID,Code,Name,LocalizedName"), "GET "+SetCountry)
		if err != nil {
			return "", err
		}
		rows = make([]countryRow, 0, len(items))
		for _, it := range items {
			var r countryRow
			r.id, _ = it["ID"].(string)
			r.code, _ = it["Code"].(string)
			r.name, _ = it["Name"].(string)
			r.local, _ = it["LocalizedName"].(string)
			if r.id != "" {
				rows = append(rows, r)
			}
		}
		c.mu.Lock()
		c.countries = rows
		c.mu.Unlock()
	}
	for _, pick := range []func(countryRow) string{
		func(r countryRow) string { return r.code },
		func(r countryRow) string { return r.name },
		func(r countryRow) string { return r.local },
	} {
		for _, r := range rows {
			if strings.EqualFold(strings.TrimSpace(pick(r)), v) {
				return r.id, nil
			}
		}
	}
	return "", rejected("find "+SetCountry, fmt.Sprintf("no country %q in %s (matched by Code, Name or LocalizedName)", v, SetCountry))
}

// addressBody turns an address as the mapping writes it into the body of an
// Address write: StreetAndNumber split into Street, HouseNumber and
// HouseNumberSuffix, Country bound by ID (a {"Name"} or {"Code"} object, or
// a text, is looked up), server-set properties dropped.
func (c *Client) addressBody(ctx context.Context, a map[string]any) (map[string]any, error) {
	out := cleanFields(a, false)
	if line, ok := out[StreetAndNumber]; ok {
		delete(out, StreetAndNumber)
		s, _ := line.(string)
		street, num, suf := splitStreet(s)
		if street == "" {
			out["Street"] = nil
		} else {
			out["Street"] = street
		}
		out["HouseNumber"], out["HouseNumberSuffix"] = num, suf
	}
	cv, has := out["Country"]
	if !has {
		return out, nil
	}
	var text string
	switch x := cv.(type) {
	case nil:
		out["Country"] = nil
		return out, nil
	case string:
		text = x
	case map[string]any:
		if id, _ := x["ID"].(string); id != "" {
			out["Country"] = map[string]any{"ID": id}
			return out, nil
		}
		for _, k := range []string{"Code", "Name", "LocalizedName"} {
			if s, _ := x[k].(string); strings.TrimSpace(s) != "" {
				text = s
				break
			}
		}
	}
	id, err := c.countryID(ctx, text)
	if err != nil {
		return nil, err
	}
	if id == "" {
		out["Country"] = nil
	} else {
		out["Country"] = map[string]any{"ID": id}
	}
	return out, nil
}

// createAddress creates one Address and returns its ID.
func (c *Client) createAddress(ctx context.Context, body map[string]any) (string, error) {
	op := "POST " + SetAddress
	resp, err := c.do(ctx, http.MethodPost, c.root+"/"+SetAddress, op, body)
	if err != nil {
		return "", err
	}
	var created item
	if err := resp.Decode(&created); err != nil {
		return "", &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Status: resp.Status, Err: err}
	}
	id, _ := created["ID"].(string)
	if id == "" {
		return "", &connectors.Error{System: System, Op: op, Kind: connectors.OutcomeUnknown, Status: resp.Status, Message: "created address has no ID"}
	}
	return id, nil
}

// bindNewAddresses creates the addresses a new relation's fields carry and
// replaces each by its binding {"ID": ...}, in place. It returns the IDs
// created, for a rollback.
func (c *Client) bindNewAddresses(ctx context.Context, rel map[string]any, flavour string) ([]string, error) {
	var made []string
	for _, nav := range addressNavs(flavour) {
		a, ok := rel[nav].(map[string]any)
		if !ok {
			continue
		}
		if id, _ := a["ID"].(string); id != "" {
			rel[nav] = map[string]any{"ID": id}
			continue
		}
		body, err := c.addressBody(ctx, a)
		if err != nil {
			return made, err
		}
		if !hasValue(body) {
			delete(rel, nav)
			continue
		}
		id, err := c.createAddress(ctx, body)
		if err != nil {
			return made, err
		}
		made = append(made, id)
		rel[nav] = map[string]any{"ID": id}
	}
	return made, nil
}

// hasValue reports whether an address body sets anything.
func hasValue(body map[string]any) bool {
	for _, v := range body {
		if v != nil && v != "" {
			return true
		}
	}
	return false
}

// dropAddresses deletes addresses created for a write that then failed
// (best effort: the write's own error is what the caller reports).
func (c *Client) dropAddresses(ctx context.Context, ids []string) {
	for _, id := range ids {
		_, _ = c.do(ctx, http.MethodDelete, c.entityURL(SetAddress, id), "DELETE "+SetAddress, nil)
	}
}

// writeRelation writes changed fields of an existing organisation or person.
// Its addresses are written as Address entities: an address it already has
// is updated (with the update method), a missing one is created and bound.
func (c *Client) writeRelation(ctx context.Context, set, id string, fields map[string]any) error {
	flavour := flavourOfRelationSet(set)
	own := make(map[string]any, len(fields))
	addrs := map[string]map[string]any{}
	for k, v := range fields {
		if m, ok := v.(map[string]any); ok && isAddressNav(flavour, k) {
			if aid, _ := m["ID"].(string); aid != "" && len(m) == 1 {
				own[k] = map[string]any{"ID": aid} // a rebinding
				continue
			}
			addrs[k] = m
			continue
		}
		own[k] = v
	}
	if len(addrs) > 0 {
		cur, err := c.getItem(ctx, set, id, query("$select", "ID", "$expand", addressIDs(flavour)), "GET "+set)
		if err != nil {
			return err
		}
		for _, nav := range addressNavs(flavour) {
			a, ok := addrs[nav]
			if !ok {
				continue
			}
			body, err := c.addressBody(ctx, a)
			if err != nil {
				return err
			}
			if old, _ := cur[nav].(map[string]any); old != nil {
				if aid, _ := old["ID"].(string); aid != "" {
					if len(body) > 0 {
						if err := c.write(ctx, SetAddress, aid, body); err != nil {
							return err
						}
					}
					continue
				}
			}
			if !hasValue(body) {
				continue
			}
			aid, err := c.createAddress(ctx, body)
			if err != nil {
				return err
			}
			own[nav] = map[string]any{"ID": aid}
		}
	}
	if len(own) == 0 {
		return nil
	}
	return c.write(ctx, set, id, own)
}

func isAddressNav(flavour, k string) bool {
	for _, n := range addressNavs(flavour) {
		if n == k {
			return true
		}
	}
	return false
}

// addressIDs expands only the IDs of a relation's addresses.
func addressIDs(flavour string) string {
	var parts []string
	for _, a := range addressNavs(flavour) {
		parts = append(parts, a+"($select=ID)")
	}
	return strings.Join(parts, ",")
}
