package pgstate

import (
	"fmt"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
)

// BenchmarkPlanPage is the client side of a commit alone: decoding a
// 100-record page's changes (Batch.Ops) and building its statements.
func BenchmarkPlanPage(b *testing.B) {
	payload := map[string]any{"name": "Acme B.V.", "email": "info@acme.example", "phone": "+31 30 123 4567",
		"address": map[string]any{"street": "Main St 1", "city": "Utrecht", "zip": "3511 AA"}, "status": float64(2)}
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	var batch state.Batch
	for i := 0; i < 100; i++ {
		r := funnel.New(fmt.Sprint("id-", i))
		_ = r.Set(funnel.FieldName, "Acme B.V.")
		_ = r.Set(funnel.FieldStage, "lead")
		_ = r.Set(funnel.FieldUpdatedAt, at)
		r.Sources = map[string]funnel.Source{funnel.FieldName: {System: "tribecrm", At: at}}
		r.Links["tribecrm"] = fmt.Sprint("t-", i)
		r.Links["overplane"] = fmt.Sprint("o-", i)
		batch.PutRecord(r)
		batch.PutFingerprint("overplane", fmt.Sprint("o-", i), state.Fingerprint{Hash: "h", Payload: payload, At: at})
	}
	b.ReportAllocs()
	for n := 0; n < b.N; n++ {
		ops, err := batch.Ops()
		if err != nil {
			b.Fatal(err)
		}
		var q queued
		if err := plan(&q, ops); err != nil {
			b.Fatal(err)
		}
	}
}
