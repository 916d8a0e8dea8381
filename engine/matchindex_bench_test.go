package engine

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/mapping"
	"github.com/crmsync/crmsync/state"
)

var indexBenchN = flag.Int("matchindex.n", 100_000, "records in the target of BenchmarkMatchIndex")

// benchTarget is a BlueRockTel-like target of n prospects, pulled in pages
// of 100 (an id cursor), each with a name and an e-mail.
type benchTarget struct {
	connectors.Connector // nil: only Pull and System are called
	n                    int
}

func (c benchTarget) System() string          { return "bluerocktel" }
func (c benchTarget) IDsScopedByEntity() bool { return true }

func (c benchTarget) Pull(_ context.Context, cur connectors.Cursor, _ connectors.PullOptions) (connectors.Page, error) {
	from, _ := strconv.Atoi(string(cur))
	to := min(from+100, c.n)
	recs := make([]connectors.Record, 0, to-from)
	for i := from; i < to; i++ {
		recs = append(recs, connectors.Record{Entity: "prospects", ID: strconv.Itoa(i + 1), Fields: map[string]any{
			"name": fmt.Sprintf("Company %d B.V.", i), "email_address": fmt.Sprintf("info@company%d.example", i), "prospection_code_id": float64(1)}})
	}
	return connectors.Page{Records: recs, Next: connectors.Cursor(strconv.Itoa(to)), Done: to >= c.n, Total: -1}, nil
}

// BenchmarkMatchIndex reads a target of -matchindex.n records into the
// match index, as a first bulk run does, and reports the heap the index
// holds afterwards (heap-B/rec: live heap after GC with the index in use,
// less before) and what it adds to the state file (state-B/rec).
//
//	go test ./engine -run '^$' -bench MatchIndex -benchtime 1x
func BenchmarkMatchIndex(b *testing.B) {
	m, err := mapping.Load(filepath.Join("..", "examples", "mappings", "bluerocktel.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	n := *indexBenchN
	for i := 0; i < b.N; i++ {
		path := filepath.Join(b.TempDir(), "state.db")
		st, err := state.Open(path, state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		fi0, _ := os.Stat(path)
		sys := &System{Name: "bluerocktel", Conn: benchTarget{n: n}, Map: m, PageSize: 100}
		e, err := New(Options{Systems: map[string]*System{"bluerocktel": sys}, Store: st, Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		r, err := e.newRun(Flow{Name: "bench", Source: "bluerocktel", Targets: []Target{{System: "bluerocktel"}}},
			RunOptions{Mode: ModeBackfill}, &Result{Systems: map[string]*Counts{}})
		if err != nil {
			b.Fatal(err)
		}
		r.bulk = true
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix, err := r.indexFor(context.Background(), r.targets[0])
		if err != nil || ix == nil {
			b.Fatalf("indexFor: %v, %v", ix, err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(ix)
		fi1, _ := os.Stat(path)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "heap-B/rec")
		b.ReportMetric(float64(fi1.Size()-fi0.Size())/float64(n), "state-B/rec")
		if is, err := st.IndexStats("bluerocktel"); err == nil {
			b.ReportMetric(float64(is.Bytes)/float64(n), "rows-B/rec")
		}
		_ = st.Close()
	}
}
