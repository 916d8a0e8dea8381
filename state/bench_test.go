package state

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

// BenchmarkCommitPage measures one handled page: building the Batch (which
// encodes) and committing it, for pages of records that each carry a golden
// record, its links and a fingerprint, plus the cursor. "new" writes records
// never seen before (backfill); "update" rewrites the same records (steady
// sync), which also reads each stored record to diff its links. One op is
// one page; each commit is one fsync.
func BenchmarkCommitPage(b *testing.B) {
	for _, bc := range []struct {
		name   string
		size   int
		update bool
	}{
		{"new/100", 100, false},
		{"update/100", 100, true},
		{"new/500", 500, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := map[string]any{"name": "Acme B.V.", "email": "info@acme.example", "phone": "+31 30 123 4567",
				"address": map[string]any{"street": "Main St 1", "city": "Utrecht", "zip": "3511 AA"}, "status": float64(2)}
			recs := make([]*funnel.Record, bc.size)
			for i := range recs {
				r := sampleRecord("")
				r.Links = map[string]string{"tribecrm": "", "overplane": ""}
				recs[i] = r
			}
			hash := funnel.FingerprintValues(payload)
			var batch Batch
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				page := n
				if bc.update {
					page = 0
				}
				batch.Reset()
				for i, r := range recs {
					ext := fmt.Sprintf("%d-%d", page, i)
					r.ID = "id-" + ext
					r.Links["tribecrm"] = "t-" + ext
					r.Links["overplane"] = "o-" + ext
					batch.PutRecord(r)
					batch.PutFingerprint("overplane", "o-"+ext, Fingerprint{Hash: hash, Payload: payload, Entity: "prospect",
						At: t0, Source: FingerprintWrite})
				}
				batch.SetCursor("flow/leads/tribecrm", []byte(fmt.Sprintf(`{"ts":"2025-03-14T09:26:53Z","page":%d}`, n)))
				if err := s.Commit(&batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.size), "ns/record")
		})
	}
}
