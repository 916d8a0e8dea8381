package tribecrm

import (
	"fmt"
	"testing"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/connectors/tribecrm/emulator"
)

// BenchmarkScale seeds 10,000 relationships, makes 20,000 writes over HTTP
// and pulls everything. Run with: go test -run '^$' -bench Scale -benchtime 1x
func BenchmarkScale(b *testing.B) {
	for i := 0; i < b.N; i++ {
		start := time.Now()
		e := newEnv(b, emulator.Options{Records: 10000}, nil)
		seeded := time.Since(start)
		ids := e.em.IDs(orgLead)
		start = time.Now()
		for w := 0; w < 20000; w++ {
			id := ids[w%len(ids)]
			st, _ := e.raw(b, "PUT", "/v1/odata/"+orgLead+"("+id+")", map[string]any{"Name": fmt.Sprintf("w%d", w)})
			if st != 200 {
				b.Fatal(st)
			}
		}
		writes := time.Since(start)
		start = time.Now()
		res := pullPass(b, e.c, nil, connectors.PullOptions{PageSize: 100})
		if len(res.latest) != 10000 {
			b.Fatal(len(res.latest))
		}
		b.Logf("seed %v, 20k writes %v, full pull %v (%d pages)", seeded, writes, time.Since(start), res.pages)
	}
}
