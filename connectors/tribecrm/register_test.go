package tribecrm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// TestWatchRelationsSetting: by default a pull also reads the changes of
// Relation_Organization and Relation_Person (an edit of a company does not
// move its relationship); watch_relations: false, for an application that
// may not read those sets, leaves them alone (issue 9 item 6).
func TestWatchRelationsSetting(t *testing.T) {
	t.Parallel()
	for _, watch := range []bool{true, false} {
		em := emulator.New(emulator.Options{Records: 12})
		var mu sync.Mutex
		relationReads := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v1/odata/Relation_") {
				mu.Lock()
				relationReads++
				mu.Unlock()
			}
			em.ServeHTTP(w, r)
		}))
		cfg := Type().NewOptions().(*Config)
		if !watch {
			cfg.WatchRelations = &watch
		}
		cfg.Default()
		if *cfg.WatchRelations != watch {
			t.Fatalf("watch_relations defaulted to %v", *cfg.WatchRelations)
		}
		c, err := Type().New(context.Background(), connectors.Settings{Name: "tribe", BaseURL: srv.URL, Token: "dev-token", Logger: zerolog.Nop()}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var cur connectors.Cursor
		for {
			page, err := c.Pull(context.Background(), cur, connectors.PullOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cur = page.Next
			if page.Done {
				break
			}
		}
		srv.Close()
		if watch && relationReads == 0 {
			t.Error("watch_relations (default): the pull never read Relation_Organization or Relation_Person")
		}
		if !watch && relationReads != 0 {
			t.Errorf("watch_relations: false: the pull read the Relation sets %d times", relationReads)
		}
	}
}
