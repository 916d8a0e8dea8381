package overplane

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/crmsync/connectors"
)

// How a prospect-lead row gets its required "lead" link (Options.LeadLink).
// In ERPNext, Prospect Lead.lead is a required Link to a Lead
// (erpnext/crm/doctype/prospect_lead/prospect_lead.json); a value that names
// no Lead is refused (Frappe's LinkValidationError). Overplane names a Lead
// by its id only (the Lead doctype is named by a naming series, which
// Overplane's Lead object does not show), so the client sends the Lead's id.
const (
	// LeadLinkCreate (the default) finds the Lead whose email_id is the
	// row's email and creates one when there is none (Overplane's Lead page
	// documents POST /api/crm/lead).
	LeadLinkCreate = "create"
	// LeadLinkFind finds the Lead but never creates one: a row whose e-mail
	// no Lead has is refused for that record (a dead letter).
	LeadLinkFind = "find"
	// LeadLinkOff sends rows as given: the mapping must set lead itself.
	LeadLinkOff = "off"
)

// leadDocPath is Overplane's Lead collection (ODOC:crm/lead).
const leadDocPath = "/api/crm/lead"

// incrementalLeadPage is the first page of an incremental Lead read.
const incrementalLeadPage = 10

// leadIndex maps Lead e-mails to Lead ids, learnt from the Lead list (the
// API has no filter, so finding a Lead by e-mail means reading the list).
// ERPNext keeps a Lead's email_id unique unless CRM Settings allow
// duplicates (erpnext/crm/doctype/lead/lead.py check_email_id_is_unique).
type leadIndex struct {
	mu      sync.Mutex
	byEmail map[string]string // lower-cased email_id → Lead id
	newest  time.Time         // created_at of the newest Lead read
	read    bool              // the whole list was read once
	// ids are the Leads already known: an incremental read stops at the
	// first one no newer than newest (many Leads share a timestamp when
	// crmsync creates them fast, so the time alone would read on).
	ids map[string]bool
}

// resolveLeads fills the lead link of every row in in that has none (see
// fillLead). company is the prospect's company_name, for Leads created.
func (c *Client) resolveLeads(ctx context.Context, op string, in *childInput, company any) error {
	if in == nil || c.leadLink == LeadLinkOff {
		return nil
	}
	for i, row := range in.list {
		if err := c.fillLead(ctx, op, i, row, company); err != nil {
			return err
		}
	}
	for i, row := range in.byIndex {
		if row != nil {
			if err := c.fillLead(ctx, op, i, row, company); err != nil {
				return err
			}
		}
	}
	return nil
}

// fillLead sets row["lead"] to the id of the Lead whose email_id is
// row["email"] when the row gives no lead, creating the Lead under
// LeadLinkCreate (always, for a row without an e-mail). A row it cannot link is Rejected with the reason: it
// never goes out with a made-up link.
func (c *Client) fillLead(ctx context.Context, op string, i int, row map[string]any, company any) error {
	if c.leadLink == LeadLinkOff {
		return nil
	}
	if s, _ := row["lead"].(string); strings.TrimSpace(s) != "" {
		return nil
	}
	email, _ := row["email"].(string)
	email = strings.TrimSpace(email)
	if email == "" && c.leadLink == LeadLinkFind {
		return c.fail(op, connectors.Rejected, "leads row %d has no lead and no email to find its Lead by (Overplane requires lead, a link to a Lead; lead_link: find)", i)
	}
	c.leads.mu.Lock()
	defer c.leads.mu.Unlock()
	id := ""
	if email != "" { // a contact without an e-mail has no Lead to find: it gets a new one
		var err error
		if id, err = c.findLead(ctx, email); err != nil {
			return err
		}
	}
	if id == "" && c.leadLink == LeadLinkFind {
		return c.fail(op, connectors.Rejected, "leads row %d: no Overplane Lead has email_id %q (lead_link: find; create the Lead, or set lead_link: create)", i, email)
	}
	if id == "" {
		var err error
		if id, err = c.createLead(ctx, row, email, company); err != nil {
			return err
		}
	}
	row["lead"] = id
	return nil
}

// findLead returns the id of the Lead with email ("" when none). A known
// id is confirmed with one GET (the Lead may have been deleted or changed);
// otherwise the Leads created since the last read are read. Callers hold
// c.leads.mu.
func (c *Client) findLead(ctx context.Context, email string) (string, error) {
	key := strings.ToLower(email)
	if id := c.leads.byEmail[key]; id != "" {
		resp, err := c.do(ctx, http.MethodGet, leadDocPath+"/"+url.PathEscape(id), nil, nil)
		switch {
		case connectors.IsNotFound(err):
		case err != nil:
			return "", err
		default:
			var l map[string]any
			if err := resp.Decode(&l); err != nil {
				return "", c.fail("find lead", connectors.Retryable, "%v", err)
			}
			if got, _ := l["email_id"].(string); strings.EqualFold(strings.TrimSpace(got), email) {
				return id, nil
			}
		}
		delete(c.leads.byEmail, key)
	}
	if err := c.readLeads(ctx, !c.leads.read); err != nil {
		return "", err
	}
	return c.leads.byEmail[key], nil
}

// readLeads reads the Lead list, newest first: all of it when full, else
// only until it reaches Leads older than the newest one read before.
// Callers hold c.leads.mu.
func (c *Client) readLeads(ctx context.Context, full bool) error {
	if c.leads.byEmail == nil {
		c.leads.byEmail, c.leads.ids = map[string]string{}, map[string]bool{}
	}
	since, newest := c.leads.newest, c.leads.newest
	seen := map[string]bool{}
	// An incremental read usually finds a few new Leads (those created
	// since the last read, mostly crmsync's own): a small first page, then
	// full ones if it must go on.
	limit := maxLimit
	if !full {
		limit = incrementalLeadPage
	}
	for offset := 0; ; limit = maxLimit {
		lr, err := c.getList(ctx, leadDocPath, url.Values{"limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(offset)}})
		if err != nil {
			return err
		}
		older := false
		for _, l := range lr.Data {
			id, _ := l["id"].(string)
			email, _ := l["email_id"].(string)
			created, _ := parseTime(l["created_at"])
			if created.After(newest) {
				newest = created
			}
			older = older || (!full && (created.Before(since) || (!created.After(since) && c.leads.ids[id])))
			if id != "" {
				c.leads.ids[id] = true
			}
			key := strings.ToLower(strings.TrimSpace(email))
			if id == "" || key == "" || seen[key] {
				continue // the newest Lead of an e-mail wins
			}
			seen[key] = true
			c.leads.byEmail[key] = id
		}
		offset += len(lr.Data)
		if !lr.HasMore || len(lr.Data) == 0 || older {
			break
		}
	}
	c.leads.newest, c.leads.read = newest, true
	return nil
}

// createLead creates the Lead of a row: its e-mail (if any), name and
// mobile, and the prospect's company name (ERPNext names a Lead without
// lead_name after its company name, or refuses it when it has neither that
// nor an e-mail: lead.py set_lead_name). A 409 (another Lead has the
// e-mail: one the incremental read could not see) reads the whole list
// once more. Callers hold c.leads.mu.
func (c *Client) createLead(ctx context.Context, row map[string]any, email string, company any) (string, error) {
	body := map[string]any{}
	if email != "" {
		body["email_id"] = email
	}
	for _, f := range [][2]string{{"lead_name", "lead_name"}, {"mobile_no", "mobile_no"}} {
		if v, ok := row[f[0]].(string); ok && v != "" {
			body[f[1]] = v
		}
	}
	if s, ok := company.(string); ok && s != "" {
		body["company_name"] = s
	}
	resp, err := c.do(ctx, http.MethodPost, leadDocPath, nil, body)
	if err != nil {
		var ce *connectors.Error
		if errors.As(err, &ce) && ce.Status == http.StatusConflict {
			if rerr := c.readLeads(ctx, true); rerr != nil {
				return "", rerr
			}
			if id := c.leads.byEmail[strings.ToLower(email)]; id != "" {
				return id, nil
			}
		}
		return "", err
	}
	var l map[string]any
	if err := resp.Decode(&l); err != nil {
		return "", c.fail("create lead", connectors.OutcomeUnknown, "%v", err)
	}
	id, _ := l["id"].(string)
	if id == "" {
		return "", c.fail("create lead", connectors.OutcomeUnknown, "the reply to the Lead create has no id")
	}
	if email != "" {
		c.leads.byEmail[strings.ToLower(email)] = id
	}
	// newest stays that of the last read: a Lead someone else created
	// before this one is still found by the next incremental read, which
	// stops at the first known Lead no newer than that.
	return id, nil
}
