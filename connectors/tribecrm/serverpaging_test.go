package tribecrm

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// Issue 9 (server profiles): against a server that pages by itself with an
// opaque $skiptoken in links relative to the context URL, Pull (keyset
// paging, which never follows the link) loses nothing at a page boundary,
// and the lists read through @odata.nextLink (here the countries a create
// binds) are read to their end.
func TestServerDrivenPagingWithRelativeLinks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 60, PageCap: 4, ServerPaging: true, RelativeLinks: true}, nil)
	first := pullPass(t, e.c, nil, connectors.PullOptions{PageSize: 50})
	// Edit 12 organisations behind crmsync: only Relation_Organization's
	// LastMutationDate moves, so the relation step must find them, 4 a page.
	var want []string
	for id, r := range first.latest {
		if !strings.HasPrefix(r.Entity, "Relationship_Organization_") || len(want) == 12 {
			continue
		}
		org := r.Fields["Organization"].(map[string]any)["ID"]
		if st, body := e.raw(t, http.MethodPatch, fmt.Sprintf("/v1/odata/%s(%v)", SetOrganization, org), map[string]any{"PhoneNumber": "+31 6 0000 0099"}); st != http.StatusOK {
			t.Fatalf("edit: %d %v", st, body)
		}
		want = append(want, id)
	}
	e.resetRequests()
	again := pullPass(t, e.c, first.next, connectors.PullOptions{PageSize: 50})
	for _, id := range want {
		r, ok := again.latest[id]
		if !ok {
			t.Errorf("relationship %s, whose organisation was edited, was not pulled", id)
			continue
		}
		if ph := r.Fields["Organization"].(map[string]any)["PhoneNumber"]; ph != "+31 6 0000 0099" {
			t.Errorf("relationship %s pulled with phone %v", id, ph)
		}
	}
	// A create reads the country list (more than a page here) to bind
	// the address's Country.
	created, err := e.c.Create(context.Background(), connectors.Record{Entity: FunnelSet(FlavourOrganization, "Lead"), Fields: map[string]any{
		"Organization": map[string]any{"Name": "Paged Country BV", "VisitingAddress": map[string]any{StreetAndNumber: "Coolsingel 1", "City": "Rotterdam", "Country": map[string]any{"Name": "Netherlands"}}},
	}})
	if err != nil {
		t.Fatalf("create with a country: %v", err)
	}
	if got, err := e.c.Get(context.Background(), created.Entity, created.ID); err != nil || fmt.Sprint(got.Fields["Organization"]) == "" {
		t.Fatalf("read back: %v", err)
	}
	tokens := 0
	for _, q := range e.requests() {
		if strings.Contains(q.RawQuery, "skiptoken") {
			tokens++
		}
	}
	if tokens == 0 {
		t.Error("no request followed a $skiptoken link: the test proves nothing")
	}
}
