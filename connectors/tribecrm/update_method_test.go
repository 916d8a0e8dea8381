package tribecrm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

var updateMethods = []string{"post", "patch", "put"}

// flatten writes a rendered row as dotted path -> value.
func flatten(prefix string, m map[string]any, out map[string]any) map[string]any {
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			flatten(prefix+k+".", sub, out)
			continue
		}
		out[prefix+k] = v
	}
	return out
}

// assertOnlyChanged fails unless after equals before except for the paths
// in want (which must hold their wanted value) and for LastMutationDate,
// which every write moves. Every other field is compared: Name, the links
// (Relation, Organization/Person, Status, each rendered whole) and every
// other property of the relationship and of its organisation or person.
func assertOnlyChanged(t *testing.T, before, after map[string]any, want map[string]any) {
	t.Helper()
	b, a := flatten("", before, nil), flatten("", after, nil)
	keys := map[string]bool{}
	for k := range b {
		keys[k] = true
	}
	for k := range a {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		if w, ok := want[k]; ok {
			if a[k] != w {
				t.Errorf("%s = %v, want %v", k, a[k], w)
			}
			continue
		}
		if strings.HasSuffix(k, "LastMutationDate") {
			continue
		}
		bv, inB := b[k]
		av, inA := a[k]
		if inB != inA || !reflect.DeepEqual(bv, av) {
			t.Errorf("%s changed: %v -> %v", k, bv, av)
		}
	}
}

type updateCase struct {
	name    string
	flavour string
	changed func(row map[string]any) (changed, want map[string]any)
}

var updateCases = []updateCase{
	{"organisation field", FlavourOrganization, func(map[string]any) (map[string]any, map[string]any) {
		return map[string]any{"Organization": map[string]any{"PhoneNumber": "+31 20 555 0001"}},
			map[string]any{"Organization.PhoneNumber": "+31 20 555 0001"}
	}},
	{"organisation address member", FlavourOrganization, func(map[string]any) (map[string]any, map[string]any) {
		return map[string]any{"Organization": map[string]any{"VisitingAddress": map[string]any{"City": "Leeds"}}},
			map[string]any{"Organization.VisitingAddress.City": "Leeds"}
	}},
	{"relationship field", FlavourOrganization, func(row map[string]any) (map[string]any, map[string]any) {
		v := !row["IsClosed"].(bool)
		return map[string]any{"IsClosed": v}, map[string]any{"IsClosed": v}
	}},
	{"relationship and organisation", FlavourOrganization, func(row map[string]any) (map[string]any, map[string]any) {
		v := !row["IsActive"].(bool)
		return map[string]any{"IsActive": v, "Organization": map[string]any{"EmailAddress": "both@changed.example"}},
			map[string]any{"IsActive": v, "Organization.EmailAddress": "both@changed.example"}
	}},
	{"person field", FlavourPerson, func(map[string]any) (map[string]any, map[string]any) {
		return map[string]any{"Person": map[string]any{"MobilePhoneNumber": "+31 6 5555 0002"}},
			map[string]any{"Person.MobilePhoneNumber": "+31 6 5555 0002"}
	}},
	{"relationship name of a person", FlavourPerson, func(map[string]any) (map[string]any, map[string]any) {
		return map[string]any{"Name": "Renamed relationship"}, map[string]any{"Name": "Renamed relationship"}
	}},
}

// TestUpdateKeepsUnsentFieldsOnReplacingServer: against a server whose PUT
// replaces the entity (OData v4.01 §11.4.3), an update of one field of the
// organisation or person (the nested map) or of the relationship leaves
// every other field as it was, whatever update_method is used.
func TestUpdateKeepsUnsentFieldsOnReplacingServer(t *testing.T) {
	t.Parallel()
	for _, method := range updateMethods {
		for _, tc := range updateCases {
			t.Run(method+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, emulator.Options{Records: 40, PutSemantics: emulator.PutReplace}, func(o *Options) { o.UpdateMethod = method })
				set, id, before := withStatus(t, e.em, tc.flavour)
				changed, want := tc.changed(before)
				rec, err := e.c.Update(context.Background(), set, id, changed)
				if err != nil {
					t.Fatalf("Update: %v", err)
				}
				after, _, _ := e.em.Entity(id)
				assertOnlyChanged(t, before, after, want)
				got := flatten("", rec.Fields, nil)
				for k, w := range want {
					if got[k] != w {
						t.Errorf("returned record: %s = %v, want %v", k, got[k], w)
					}
				}
			})
		}
	}
}

// TestCreateBindingExistingRelationKeepsItsFields: a create that binds an
// existing organisation and changes some of its fields updates it with the
// configured method, and leaves its other fields alone on a replacing
// server.
func TestCreateBindingExistingRelationKeepsItsFields(t *testing.T) {
	t.Parallel()
	for _, method := range updateMethods {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, emulator.Options{Records: 40, PutSemantics: emulator.PutReplace}, func(o *Options) { o.UpdateMethod = method })
			_, _, row := withStatus(t, e.em, FlavourOrganization)
			orgID := field(row, "Organization.ID").(string)
			orgURL := "/v1/odata/" + SetOrganization + "(" + orgID + ")?$expand=VisitingAddress($expand=Country),PostalAddress($expand=Country)"
			_, before := e.raw(t, "GET", orgURL, nil)
			delete(before, "@odata.context")
			_, err := e.c.Create(context.Background(), connectors.Record{Entity: orgLead, Fields: map[string]any{
				"Name": "Second relationship", "Organization": map[string]any{"ID": orgID, "PhoneNumber": "+31 20 555 0003"},
			}})
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			st, after := e.raw(t, "GET", orgURL, nil)
			if st != 200 {
				t.Fatalf("GET organisation: %d %v", st, after)
			}
			delete(after, "@odata.context")
			assertOnlyChanged(t, before, after, map[string]any{"PhoneNumber": "+31 20 555 0003"})
		})
	}
}

// TestUpdateMethodVerbs: each update_method sends its own verb, and post and
// patch send only the changed fields (post with the ID in the body, as the
// vendor's n8n node and MCP server do).
func TestUpdateMethodVerbs(t *testing.T) {
	t.Parallel()
	for _, method := range updateMethods {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, emulator.Options{Records: 40}, func(o *Options) { o.UpdateMethod = method })
			set, id, row := withStatus(t, e.em, FlavourOrganization)
			orgID := field(row, "Organization.ID").(string)
			addrID := field(row, "Organization.VisitingAddress.ID").(string)
			e.resetRequests()
			if _, err := e.c.Update(context.Background(), set, id, map[string]any{
				"Name":         "Only the name",
				"Organization": map[string]any{"PhoneNumber": "+31 20 999 9999", "VisitingAddress": map[string]any{"City": "Leeds"}},
			}); err != nil {
				t.Fatal(err)
			}
			var writes []string
			for _, r := range e.requests() {
				if r.Method == http.MethodGet {
					continue
				}
				var b map[string]any
				if err := json.Unmarshal(r.Body, &b); err != nil {
					t.Fatalf("%s %s: body %s", r.Method, r.Path, r.Body)
				}
				writes = append(writes, r.Method+" "+strings.TrimPrefix(r.Path, "/v1/odata/"))
				org := strings.Contains(r.Path, SetOrganization)
				addr := strings.Contains(r.Path, SetAddress)
				switch method {
				case "post", "patch":
					keys := []string{"Name"}
					if org {
						keys = []string{"PhoneNumber"}
					}
					if addr {
						keys = []string{"City"}
					}
					if method == "post" {
						keys = append(keys, "ID")
					}
					if got := sortedKeys(b); !reflect.DeepEqual(got, sortedStrings(keys)) {
						t.Errorf("%s %s sent %v, want %v", r.Method, r.Path, got, sortedStrings(keys))
					}
				case "put":
					// The whole entity: every property the GET returned
					// (server-set ones aside), and for a relationship its links.
					want := []string{"ImportId", "SortIndex", "Name", "IsActive", "IsClosed", "Relation", "Organization", "Status"}
					if org {
						// The address stays bound by its ID: it is an entity.
						want = []string{"ImportId", "SortIndex", "Name", "EmailAddress", "PhoneNumber", "Website", "VatNumber", "ChamberOfCommerceNumber", "VisitingAddress"}
					}
					if addr {
						want = []string{"ImportId", "SortIndex", "Street", "HouseNumber", "HouseNumberSuffix", "Extra", "Postalcode", "City", "Latitude", "Longitude", "Country"}
					}
					if got := sortedKeys(b); !reflect.DeepEqual(got, sortedStrings(want)) {
						t.Errorf("%s %s sent %v, want %v", r.Method, r.Path, got, sortedStrings(want))
					}
					if addr && (b["Street"] == nil || b["City"] != "Leeds") {
						t.Errorf("address change not merged into the whole Address: %v", b)
					}
					if org && len(b["VisitingAddress"].(map[string]any)) != 1 {
						t.Errorf("VisitingAddress not re-bound by ID alone: %v", b["VisitingAddress"])
					}
				}
			}
			wantWrites := map[string][]string{
				"post":  {"POST " + set, "POST " + SetAddress, "POST " + SetOrganization},
				"patch": {"PATCH " + set + "(" + id + ")", "PATCH " + SetAddress + "(" + addrID + ")", "PATCH " + SetOrganization + "(" + orgID + ")"},
				"put":   {"PUT " + set + "(" + id + ")", "PUT " + SetAddress + "(" + addrID + ")", "PUT " + SetOrganization + "(" + orgID + ")"},
			}[method]
			if !reflect.DeepEqual(writes, wantWrites) {
				t.Errorf("writes %v, want %v", writes, wantWrites)
			}
		})
	}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// TestUpdatePutSendsIfMatch: with update_method put, a server that gives
// the entity an ETag gets it back in If-Match, so an edit made between the
// client's GET and its PUT is refused (412) instead of overwritten.
func TestUpdatePutSendsIfMatch(t *testing.T) {
	t.Parallel()
	const id = "5a0c3b9e-1d2f-4e6a-8b7c-9d0e1f2a3b4c"
	var mu sync.Mutex
	var ifMatch []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		mu.Lock()
		if r.Method == http.MethodPut {
			ifMatch = append(ifMatch, r.Header.Get("If-Match"))
		}
		mu.Unlock()
		_, _ = fmt.Fprintf(w, `{"@odata.etag":"W/\"42\"","ID":%q,"_Type":"Relation.Organization","Name":"Polar Print GmbH","PhoneNumber":null,"LastMutationDate":"2026-05-01T10:00:00Z"}`, id)
	}))
	defer srv.Close()
	c, err := New(Options{BaseURL: srv.URL, Token: "t", HTTP: newHTTP(t), Logger: zerolog.Nop(), UpdateMethod: "put"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(context.Background(), SetOrganization, id, map[string]any{"PhoneNumber": "+49 30 1"}); err != nil {
		t.Fatal(err)
	}
	if len(ifMatch) != 1 || ifMatch[0] != `W/"42"` {
		t.Errorf("If-Match on the PUT: %q", ifMatch)
	}
}

func TestUpdateMethodOption(t *testing.T) {
	t.Parallel()
	for _, m := range []string{"", "post", "patch", "put"} {
		if _, err := New(Options{BaseURL: "http://x", Token: "t", HTTP: newHTTP(t), UpdateMethod: m}); err != nil {
			t.Errorf("%q: %v", m, err)
		}
	}
	for _, m := range []string{"PUT", "merge", "replace"} {
		if _, err := New(Options{BaseURL: "http://x", Token: "t", HTTP: newHTTP(t), UpdateMethod: m}); err == nil || !strings.Contains(err.Error(), "UpdateMethod") {
			t.Errorf("%q accepted: %v", m, err)
		}
	}
}
