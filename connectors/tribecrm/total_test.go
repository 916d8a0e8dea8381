package tribecrm

import (
	"testing"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// A progress bar needs the pass's size from the first page: with WantTotal
// the client counts every funnel set up front.
func TestWantTotalGivesTheWholePassOnTheFirstPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, emulator.Options{Records: 300}, nil)
	page, err := e.c.Pull(t.Context(), nil, connectors.PullOptions{PageSize: 20, WantTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 300 {
		t.Fatalf("first page Total = %d, want 300 (every funnel set counted)", page.Total)
	}
	page, err = e.c.Pull(t.Context(), nil, connectors.PullOptions{PageSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total >= 300 {
		t.Fatalf("without WantTotal the first page should count only its own set, got %d", page.Total)
	}
}
