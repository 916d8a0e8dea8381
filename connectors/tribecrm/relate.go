package tribecrm

// What Create adds to a new relationship besides the record's own fields
// (issue 9 item 5):
//   - Name: Tribe's pages list a relationship's Name ("Hot Prospect display
//     name", seeds S0, S1) and the vendor's n8n node sends it when it
//     creates a lead ("Display name of the lead relationship",
//     efficy-sa/n8n-nodes-tribecrm nodes/TribeCrm/resources/lead.ts). A
//     relationship created without one has Name null. Create sends the
//     organisation's Name, or the person's first, middle and last name.
//   - Status: an N:1 link to a Datastore row ("Hot Prospect status", S0,
//     S1). Neither the pages nor the vendor's clients give a value, so it is
//     a setting (Options.CreateStatus, a Datastore Code); a record that
//     carries Status as {"Code": ...} is bound the same way.
//   - An organisation or person that already exists in Tribe is linked,
//     not created again: "Create Hot Prospect from an Existing Relation.
//     Link an existing Organisation or Person as a hot prospect" (S0), and
//     the same Organisation can be a Supplier or Partner besides a funnel
//     stage (docs/api/relations/customers). The lookup is Find on
//     Relation_Organization / Relation_Person by Options.RelationMatch.

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/logkey"
)

// relationName is the display name of a relation as the record gives it:
// an organisation's Name, a person's first, middle and last name.
func relationName(flavour string, rel map[string]any) string {
	keys := []string{"Name"}
	if flavour == FlavourPerson {
		keys = []string{"FirstName", "MiddleName", "LastName"}
	}
	var parts []string
	for _, k := range keys {
		if s, _ := rel[k].(string); strings.TrimSpace(s) != "" {
			parts = append(parts, strings.TrimSpace(s))
		}
	}
	return strings.Join(parts, " ")
}

// existingRelation returns the ID of the one organisation or person in Tribe
// that matches rel by the first key of Options.RelationMatch that finds
// exactly one, or "" (the tenant's own organisation never counts). A key
// that finds several is logged and skipped: linking one of them at random
// would merge two records.
func (c *Client) existingRelation(ctx context.Context, flavour string, rel map[string]any, tenant string) (string, error) {
	set := relationSet(flavour)
	for _, key := range c.relMatch[flavour] {
		v, _ := rel[key].(string)
		if strings.TrimSpace(v) == "" {
			continue
		}
		found, err := c.Find(ctx, set, []connectors.Match{{Field: key, Value: v}})
		if err != nil {
			return "", err
		}
		var ids []string
		for _, r := range found {
			if !strings.EqualFold(r.ID, tenant) {
				ids = append(ids, r.ID)
			}
		}
		switch len(ids) {
		case 0:
			continue
		case 1:
			c.log.Debug().Str(logkey.Op, "create").Str("field", key).Str(logkey.TargetID, ids[0]).Msg("linking an existing " + set)
			return ids[0], nil
		default:
			c.log.Warn().Str("field", key).Int("count", len(ids)).Msg("several " + set + " match; not linking any by this key")
		}
	}
	return "", nil
}

// setStatus binds a new relationship's Status: a {"Code": ...} the record
// carries, or Options.CreateStatus when it carries none.
func (c *Client) setStatus(ctx context.Context, body map[string]any) error {
	code := c.status
	if m, ok := body["Status"].(map[string]any); ok {
		if id, _ := m["ID"].(string); id != "" {
			body["Status"] = map[string]any{"ID": id}
			return nil
		}
		code, _ = m["Code"].(string)
	} else if _, has := body["Status"]; has {
		return nil // null: no status
	}
	if strings.TrimSpace(code) == "" {
		delete(body, "Status")
		return nil
	}
	id, err := c.statusID(ctx, strings.TrimSpace(code))
	if err != nil {
		return err
	}
	body["Status"] = map[string]any{"ID": id}
	return nil
}

// statusID returns the ID of the one Datastore row with Code code, read once
// per code.
func (c *Client) statusID(ctx context.Context, code string) (string, error) {
	c.mu.Lock()
	id := c.statusIDs[code]
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	op := "GET Datastore"
	rows, err := c.getAll(ctx, c.root+"/Datastore"+query("$filter", "Code eq "+quote(code), "$select", "ID,Code"), op)
	if err != nil {
		return "", err
	}
	if len(rows) != 1 {
		return "", &connectors.Error{System: System, Op: op, Kind: connectors.Rejected, Status: http.StatusOK,
			Message: fmt.Sprintf("status %q: %d Datastore rows have that Code, need exactly one", code, len(rows))}
	}
	id, _ = rows[0]["ID"].(string)
	c.mu.Lock()
	if c.statusIDs == nil {
		c.statusIDs = map[string]string{}
	}
	c.statusIDs[code] = id
	c.mu.Unlock()
	return id, nil
}
