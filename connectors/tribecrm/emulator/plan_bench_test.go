package emulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkCursorPages serves successive keyset pages of one funnel set, as
// crmsync's pull reads them ($filter on the (LastMutationDate, ID) cursor,
// $orderby LastMutationDate asc,ID asc, $top=100, the organisation
// expanded), answered by the indexes and by the full scan. One op is one
// page; pages/s is reported.
//
//	go test ./connectors/tribecrm/emulator -run '^$' -bench CursorPages -count 5
func BenchmarkCursorPages(b *testing.B) {
	set := funnelSet(flavourOrganization, "Lead")
	for _, n := range []int{10_000, 100_000} {
		em := New(Options{Records: n, SeedSets: []string{set}})
		for _, path := range []struct {
			name string
			scan bool
		}{{"indexed", false}, {"scan", true}} {
			b.Run(fmt.Sprintf("records=%d/%s", n, path.name), func(b *testing.B) {
				em.mu.Lock()
				em.scan = path.scan
				em.mu.Unlock()
				cursor := ""
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					cursor = servePage(b, em, set, cursor)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
			})
		}
	}
}

// servePage serves the page after cursor ("" = the first) and returns the
// cursor after it ("" again after the last page).
func servePage(b *testing.B, em *Emulator, set, cursor string) string {
	p := "/v1/odata/" + set + "?$orderby=" + esc("LastMutationDate asc,ID asc") + "&$top=100&$expand=" + flavourOrganization
	if cursor != "" {
		p += "&$filter=" + esc(cursor)
	}
	req := httptest.NewRequest(http.MethodGet, p, nil)
	req.Header.Set("Authorization", "Bearer dev-token")
	w := httptest.NewRecorder()
	em.ServeHTTP(w, req)
	var body struct {
		Value []struct {
			ID  string
			LMD string `json:"LastMutationDate"`
		} `json:"value"`
	}
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &body) != nil {
		b.Fatalf("GET %s: %d %s", p, w.Code, w.Body.String())
	}
	if len(body.Value) < 100 {
		return ""
	}
	last := body.Value[len(body.Value)-1]
	return fmt.Sprintf("LastMutationDate gt %s or (LastMutationDate eq %s and ID gt %s)", last.LMD, last.LMD, last.ID)
}
