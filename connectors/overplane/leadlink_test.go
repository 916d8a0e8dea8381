package overplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/overplane/emulator"
)

// prospectWithContact is what the example mapping writes for a new
// organisation with a contact: leads.0.email and leads.0.mobile_no, no lead.
func prospectWithContact(name, email string) connectors.Record {
	return connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": name, "company": emulator.DefaultCompany,
		"leads": map[string]any{"0": map[string]any{"email": email, "mobile_no": "+31 6 1234 5678"}},
	}}
}

func countWrites(e *env, method, path string) int {
	n := 0
	for _, w := range e.emu.Writes() {
		if w.Method == method && w.Path == path {
			n++
		}
	}
	return n
}

// TestLeadLinkUsesTheContactsLead (issue 9 item 7): a lead row the mapping
// writes without a lead links to the Lead whose email_id is the contact's
// e-mail; a contact with no Lead gets one, created once.
func TestLeadLinkUsesTheContactsLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 30}, nil)
	ctx := context.Background()
	seeded := e.emu.LinkedIDs("lead")[3]
	lead, _ := e.emu.Linked("lead", seeded)
	rec, err := e.c.Create(ctx, prospectWithContact("Known Contact BV", strings.ToUpper(lead["email_id"].(string))))
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, rec, "leads")[0]["lead"]; got != seeded {
		t.Fatalf("row links to %v, want the existing Lead %s", got, seeded)
	}
	if n := countWrites(e, http.MethodPost, "/api/crm/lead"); n != 0 {
		t.Fatalf("%d Leads created for a contact that has one", n)
	}

	for i, name := range []string{"New Contact BV", "Same Contact BV"} {
		rec, err := e.c.Create(ctx, prospectWithContact(name, "nina@new-contact.example"))
		if err != nil {
			t.Fatal(err)
		}
		row := rowsOf(t, rec, "leads")[0]
		l, ok := e.emu.Linked("lead", row["lead"].(string))
		if !ok || l["email_id"] != "nina@new-contact.example" || row["email"] != "nina@new-contact.example" {
			t.Fatalf("create %d: row %v, Lead %v", i, row, l)
		}
	}
	if n := countWrites(e, http.MethodPost, "/api/crm/lead"); n != 1 {
		t.Fatalf("%d Leads created for one new contact, want 1", n)
	}
}

// TestLeadLinkSeesLeadsMadeElsewhere: Leads created or deleted by someone
// else after the client read the list are found, or replaced, not
// duplicated or linked dead.
func TestLeadLinkSeesLeadsMadeElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 5}, nil)
	ctx := context.Background()
	if _, err := e.c.Create(ctx, prospectWithContact("First BV", "first@x.example")); err != nil {
		t.Fatal(err)
	}
	st, other := e.raw(t, http.MethodPost, "/api/crm/lead", map[string]any{"lead_name": "Olga", "email_id": "olga@x.example"})
	if st != 200 {
		t.Fatalf("POST lead: %d", st)
	}
	rec, err := e.c.Create(ctx, prospectWithContact("Second BV", "olga@x.example"))
	if err != nil {
		t.Fatal(err)
	}
	if rowsOf(t, rec, "leads")[0]["lead"] != other["id"] {
		t.Fatal("a Lead created elsewhere was not found")
	}
	// Deleted behind the client's back: a new Lead is made.
	e.raw(t, http.MethodDelete, "/api/crm/lead/"+other["id"].(string), nil)
	rec, err = e.c.Create(ctx, prospectWithContact("Third BV", "olga@x.example"))
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsOf(t, rec, "leads")[0]["lead"]; got == other["id"] || got == "" {
		t.Fatalf("row links to %v after its Lead was deleted", got)
	}
}

// TestLeadLinkFailuresAreDeadLetters: a row that cannot be linked refuses
// its record with the reason, before anything is written.
func TestLeadLinkFailuresAreDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 3}, func(o *Options) { o.LeadLink = LeadLinkFind })
	ctx := context.Background()
	n := len(e.emu.Writes())
	_, err := e.c.Create(ctx, prospectWithContact("Unknown BV", "nobody@x.example"))
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), `no Overplane Lead has email_id "nobody@x.example"`) {
		t.Fatalf("find, unknown e-mail: %v", err)
	}
	_, err = e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Mobile Only BV", "company": emulator.DefaultCompany, "leads": map[string]any{"0": map[string]any{"mobile_no": "+31 6"}}}})
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "no lead and no email") {
		t.Fatalf("row without e-mail, lead_link find: %v", err)
	}
	if w := e.emu.Writes()[n:]; len(w) != 0 || e.emu.Len() != 3 {
		t.Fatalf("writes for refused records: %+v", w)
	}
}

// TestLeadLinkContactWithoutEmailGetsItsOwnLead: a contact with only a
// mobile number cannot be found by e-mail; under create it gets a Lead named
// after the prospect (ERPNext's set_lead_name), and a Lead that ERPNext
// would refuse is a dead letter with ERPNext's reason.
func TestLeadLinkContactWithoutEmailGetsItsOwnLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 3}, nil)
	ctx := context.Background()
	rec, err := e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company_name": "Mobile Only BV", "company": emulator.DefaultCompany, "leads": map[string]any{"0": map[string]any{"mobile_no": "+31 6 7"}}}})
	if err != nil {
		t.Fatal(err)
	}
	row := rowsOf(t, rec, "leads")[0]
	if l, ok := e.emu.Linked("lead", row["lead"].(string)); !ok || l["lead_name"] != "Mobile Only BV" || l["mobile_no"] != "+31 6 7" || l["email_id"] != nil {
		t.Fatalf("row %v, Lead %v", row, l)
	}
	_, err = e.c.Create(ctx, connectors.Record{Entity: EntityProspect, Fields: map[string]any{
		"company": emulator.DefaultCompany, "leads": map[string]any{"0": map[string]any{"mobile_no": "+31 6 8"}}}})
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "A Lead requires either a person's name or an organization's name") || e.emu.Len() != 4 {
		t.Fatalf("nameless contact: %v (%d prospects)", err, e.emu.Len())
	}
}

// TestLeadLinkOffSendsTheRowAsMapped: with lead_link off the mapping's own
// value goes out; the old constant is refused by a server that validates
// links, and the new prospect is rolled back (what every create did before).
func TestLeadLinkOffSendsTheRowAsMapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 2}, func(o *Options) { o.LeadLink = LeadLinkOff })
	rec := prospectWithContact("Constant BV", "c@x.example")
	rec.Fields["leads"].(map[string]any)["0"].(map[string]any)["lead"] = "crmsync-contact"
	_, err := e.c.Create(context.Background(), rec)
	if !connectors.IsRejected(err) || !strings.Contains(errText(err), "Could not find Row #1: Lead: crmsync-contact") || e.emu.Len() != 2 {
		t.Fatalf("constant lead: %v (%d prospects)", err, e.emu.Len())
	}
	if _, err := New(Options{BaseURL: "http://x", Token: "t", HTTP: newHTTP(0), LeadLink: "guess"}); err == nil {
		t.Fatal("an unknown LeadLink was accepted")
	}
}

// TestRowsAreReorderedWithPatchOfIdx (issue 9 item 8): the client moves
// rows the documented way and never sends the undocumented reorder body.
func TestRowsAreReorderedWithPatchOfIdx(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 9}, nil)
	id := prospectWithLeads(t, e)
	rec, err := e.c.Get(context.Background(), EntityProspect, id)
	if err != nil {
		t.Fatal(err)
	}
	leads := rowsOf(t, rec, "leads")
	n := len(e.emu.Writes())
	if _, err := e.c.Update(context.Background(), EntityProspect, id, map[string]any{"leads": []any{leads[1], leads[0]}}); err != nil {
		t.Fatal(err)
	}
	after := e.emu.Children("prospect-lead", id)
	if after[0]["id"] != leads[1]["id"] || after[1]["id"] != leads[0]["id"] {
		t.Fatalf("not reordered: %v", after)
	}
	ws := e.emu.Writes()[n:]
	if len(ws) != 1 || ws[0].Method != http.MethodPatch || ws[0].Path != "/api/crm/prospect-lead/"+leads[1]["id"].(string) || len(ws[0].Body) != 1 || ws[0].Body["idx"] != 1.0 {
		t.Fatalf("writes: %+v, want one PATCH of idx", ws)
	}
}

// TestFrappeErrorBodyIsRead: if Overplane passes on Frappe's own error body
// (frappe/utils/response.py), the dead letter still says why.
func TestFrappeErrorBodyIsRead(t *testing.T) {
	t.Parallel()
	body := `{"exception":"frappe.exceptions.LinkValidationError: Could not find Row #1: Lead: crmsync-contact","exc_type":"LinkValidationError",` +
		`"_server_messages":"[\"{\\\"message\\\": \\\"Could not find Row #1: Lead: crmsync-contact\\\", \\\"title\\\": \\\"Message\\\", \\\"indicator\\\": \\\"red\\\"}\"]"}`
	if got := ErrorMessage(417, []byte(body)); got != "Could not find Row #1: Lead: crmsync-contact" {
		t.Fatalf("ErrorMessage = %q", got)
	}
	if got := ErrorMessage(417, []byte(`{"exc_type":"LinkValidationError","exception":"frappe.exceptions.LinkValidationError: Could not find Lead: x"}`)); got != "frappe.exceptions.LinkValidationError: Could not find Lead: x" {
		t.Fatalf("ErrorMessage without _server_messages = %q", got)
	}
}

func TestConfigChecksLeadLink(t *testing.T) {
	t.Parallel()
	c := &Config{}
	c.Default()
	if c.LeadLink != LeadLinkCreate {
		t.Fatalf("default lead_link %q", c.LeadLink)
	}
	c.LeadLink = "maybe"
	ps := c.Check(connectors.Settings{Token: "t"})
	if len(ps) != 1 || ps[0].Key != "lead_link" || !strings.Contains(ps[0].Msg, `"maybe" must be create, find or off`) {
		t.Fatalf("problems %+v", ps)
	}
}

// leadsRead counts the Leads the client is sent by GET /api/crm/lead.
type leadsRead struct {
	h     http.Handler
	mu    sync.Mutex
	items int
}

func (l *leadsRead) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/api/crm/lead" {
		l.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.h.ServeHTTP(rec, r)
	var list struct {
		Data []json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &list)
	l.mu.Lock()
	l.items += len(list.Data)
	l.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// Issue 10: linking each new contact's lead row costs a few Leads read, not
// the whole list again: 150 creates with new contacts read the list once
// and then a small page each (the old incremental read fetched a full page
// of 100 per create, reading every Lead created in the same second again).
func TestLeadLinkReadsStayLinear(t *testing.T) {
	t.Parallel()
	emu := emulator.New(emulator.Options{Records: 30})
	counter := &leadsRead{h: emu}
	srv := httptest.NewServer(counter)
	t.Cleanup(srv.Close)
	c, err := New(Options{BaseURL: srv.URL + "/", Token: "dev-token", HTTP: newHTTP(4), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	const n = 150
	for i := 0; i < n; i++ {
		if _, err := c.Create(context.Background(), prospectWithContact(fmt.Sprintf("Linear %03d BV", i), fmt.Sprintf("c%03d@linear.example", i))); err != nil {
			t.Fatal(err)
		}
	}
	seeded := len(emu.LinkedIDs("lead")) - n
	if most := seeded + n*incrementalLeadPage; counter.items > most {
		t.Errorf("%d creates read %d Leads (%d seeded); want at most %d", n, counter.items, seeded, most)
	}
}
