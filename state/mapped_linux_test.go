package state

import (
	"bufio"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/crmsync/crmsync/funnel"
)

// mappedRSS is how many bytes of path this process has resident through
// its mappings (/proc/self/smaps).
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			in = len(fields) == 6 && fields[5] == path
		case in && len(fields) == 3 && fields[0] == "Rss:":
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// TestMappedStatePagesAreReleased: the pages of the state file a run reads
// and writes do not stay in the process's resident memory (they did: the
// whole file, 77 MB of a 20,000-record backfill's 165 MB peak).
func TestMappedStatePagesAreReleased(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewSource(1))
	for p := 0; p < 40; p++ {
		b := &Batch{}
		for i := 0; i < 200; i++ {
			r := funnel.New(fmt.Sprintf("rec-%03d-%03d", p, i))
			r.Fields[funnel.FieldName] = randomText(rng, 2000) // values are compressed: make them incompressible
			b.PutRecord(r)
		}
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 200; i += 7 { // reads touch the mapping too
			if _, err := s.Record(fmt.Sprintf("rec-%03d-%03d", p, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	rss := mappedRSS(t, path)
	t.Logf("state file %d MB, %d KB of it resident", fi.Size()>>20, rss>>10)
	if fi.Size() < 8<<20 {
		t.Fatalf("the test wrote only %d bytes; it needs a file of several MB", fi.Size())
	}
	if rss > fi.Size()/4 {
		t.Errorf("%d of the state file's %d bytes stay resident after the commits; want at most a quarter", rss, fi.Size())
	}
}

func randomText(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + rng.Intn(26))
	}
	return string(b)
}
