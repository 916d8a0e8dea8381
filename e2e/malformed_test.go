package e2e

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/crmsync/crmsync/connectors/bluerocktel"
	"github.com/crmsync/crmsync/connectors/tribecrm"
)

// TestMalformedPageFailsClearlyAndLosesNothing: a TribeCRM list page that
// is not JSON (a proxy's HTML error page with status 200) is sent again like
// a 5xx; while it stays broken the run ends with an error naming the system
// and the request, the cursor does not move past it, and once it heals the
// next run syncs every record, each exactly once.
func TestMalformedPageFailsClearlyAndLosesNothing(t *testing.T) {
	t.Parallel()
	const seed = 25
	var lists atomic.Int32
	var broken atomic.Bool
	broken.Store(true)
	e := newEnv(t, envOptions{Seed: seed, Front: map[string]func(http.Handler) http.Handler{
		tribecrm.System: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// From the 4th funnel-set list request on, garbage until healed.
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "_CommercialRelationship_") && lists.Add(1) >= 4 && broken.Load() {
					w.Header().Set("Content-Type", "text/html")
					_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	}})
	r := e.cli("sync", "--json")
	if r.Code == 0 {
		t.Fatalf("a sync that met a malformed page exited 0:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "tribecrm") || !strings.Contains(r.Stderr, "CommercialRelationship") {
		t.Errorf("the error does not name the system and the request:\n%s", r.Stderr)
	}
	broken.Store(false)
	res := e.sync() // the next run: the page is read again
	if c := counts(t, res, bluerocktel.System); c.Failed != 0 {
		t.Errorf("second run: %+v", c)
	}
	e.assertBlueRockTelHolds(t, seed, " after the retry")
}

// TestMalformedPageOnceIsSentAgain: one HTML page in a 200 among good ones
// is a passing fault, like a 503: the request is sent again and the run
// succeeds with every record once.
func TestMalformedPageOnceIsSentAgain(t *testing.T) {
	t.Parallel()
	const seed = 25
	var lists atomic.Int32
	e := newEnv(t, envOptions{Seed: seed, Front: map[string]func(http.Handler) http.Handler{
		tribecrm.System: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "_CommercialRelationship_") && lists.Add(1) == 4 {
					w.Header().Set("Content-Type", "text/html")
					_, _ = w.Write([]byte("<html><body>502 Bad Gateway</body></html>"))
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	}})
	e.sync()
	if n := len(e.blueRecords()); n != seed {
		t.Errorf("BlueRockTel holds %d records, want %d", n, seed)
	}
}
