package pgstate_test

import (
	"fmt"
	"testing"

	"github.com/crmsync/crmsync/state"
)

// indexStore is what BenchmarkMatchIndex needs of either engine.
type indexStore interface {
	committer
	IndexLookup(system string, values []state.IndexValue) ([][]state.IndexEntry, error)
}

// BenchmarkMatchIndex: on bbolt and PostgreSQL side by side, "page" commits
// the index rows of 100 created records (two values each: what a page of
// creates adds to the page commit, measured alone), "lookup" looks up the
// two values of a record among 10,000 indexed (what each create asks
// before it is sent).
func BenchmarkMatchIndex(b *testing.B) {
	for _, engine := range []string{"bbolt", "postgres"} {
		b.Run(engine+"/page", func(b *testing.B) {
			c, _ := openBench(b, engine)
			s := c.(indexStore)
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				commitIndexPage(b, s, n)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/record")
		})
		b.Run(engine+"/lookup", func(b *testing.B) {
			c, _ := openBench(b, engine)
			s := c.(indexStore)
			for p := 0; p < 100; p++ {
				commitIndexPage(b, s, p)
			}
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				i := n % 10000
				got, err := s.IndexLookup("bluerocktel", []state.IndexValue{
					{Key: "email", Value: fmt.Sprintf("info@company%d.example", i)}, {Key: "name", Value: fmt.Sprintf("COMPANY %d BV", i)}})
				if err != nil || len(got[0]) != 1 {
					b.Fatalf("lookup %d: %v, %v", i, got, err)
				}
			}
		})
	}
}

func commitIndexPage(b *testing.B, s indexStore, page int) {
	var batch state.Batch
	for i := page * 100; i < page*100+100; i++ {
		id := fmt.Sprint(i)
		batch.IndexRecord("bluerocktel", "prospects:"+id, state.IndexEntry{Entity: "prospects", ID: id}, []state.IndexValue{
			{Key: "email", Value: fmt.Sprintf("info@company%d.example", i)}, {Key: "name", Value: fmt.Sprintf("COMPANY %d BV", i)}})
	}
	if err := s.Commit(&batch); err != nil {
		b.Fatal(err)
	}
}
