package pgstate_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/pgstate"
)

const (
	crashEnv     = "CRMSYNC_PGSTATE_TEST_CRASH"
	crashPerPage = 50
)

var crashT0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// crashPage is page p: crashPerPage records with links and fingerprints, a
// run and the cursor "p".
func crashPage(b *state.Batch, p int) {
	for i := 0; i < crashPerPage; i++ {
		id := fmt.Sprintf("p%d-%d", p, i)
		r := funnel.New(id)
		r.Fields["name"] = "Acme " + id
		r.Links["overplane"] = "o-" + id
		b.PutRecord(r)
		b.PutFingerprint("overplane", "o-"+id, state.Fingerprint{Hash: id, Source: state.FingerprintWrite, At: crashT0})
	}
	b.PutRun(state.Run{Flow: "crash", Mode: "sync", Started: crashT0.Add(time.Duration(p) * time.Second)})
	b.SetCursor("flow/crash/overplane", []byte(strconv.Itoa(p)))
}

// TestHelperCommitForever is not a test: run by TestKillDuringCommits as a
// child process, it commits pages to the database $CRMSYNC_PGSTATE_TEST_CRASH
// names, printing each page number once its commit returned, until killed.
func TestHelperCommitForever(t *testing.T) {
	dsn := os.Getenv(crashEnv)
	if dsn == "" {
		return
	}
	s, err := pgstate.Open(context.Background(), dsn, pgstate.Options{})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	p := 0
	if c, _ := s.Cursor("flow/crash/overplane"); c != nil {
		p, _ = strconv.Atoi(string(c))
	}
	for p++; ; p++ {
		var b state.Batch
		crashPage(&b, p)
		if err := s.Commit(&b); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		fmt.Println(p)
	}
}

// A process killed (SIGKILL) at an arbitrary point of its commits leaves a
// database that holds every page it reported committed, and each page
// either entirely or not at all; the server rolls back the transaction of
// the dead client.
func TestKillDuringCommits(t *testing.T) {
	t.Parallel()
	dsn := pg.Get(t).Schema(t)
	acked := 0
	for round, after := range []int{3, 7, 12} {
		acked = killChildAfter(t, dsn, after, acked)
		if t.Failed() {
			return
		}
		s := openT(t, dsn, pgstate.Options{})
		c, _ := s.Cursor("flow/crash/overplane")
		last, _ := strconv.Atoi(string(c))
		if last < acked {
			t.Fatalf("round %d: cursor at page %d but page %d was reported committed", round, last, acked)
		}
		for p := 1; p <= last+1; p++ {
			want := crashPerPage
			if p == last+1 {
				want = 0
			}
			if got := pagePresent(t, s, p, round); got != want {
				t.Fatalf("round %d: page %d has %d of its records, want %d (cursor at %d)", round, p, got, want, last)
			}
		}
		runs, _ := s.Runs("crash", 0)
		if len(runs) != min(last, state.MaxRunsPerFlow) {
			t.Fatalf("round %d: %d runs for %d pages", round, len(runs), last)
		}
		_ = s.Close()
	}
}

// killChildAfter runs the committing child and kills it once it reported
// after more pages; it returns the last page reported.
func killChildAfter(t *testing.T, dsn string, after, acked int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperCommitForever$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dsn)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		seen := 0
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			p, err := strconv.Atoi(line)
			if err != nil {
				t.Errorf("child: %s", line)
				return
			}
			acked = p
			if seen++; seen == after {
				// Kill while the next commit is under way.
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}()
	wg.Wait()
	_ = cmd.Wait()
	return acked
}

// pagePresent counts the records of page p stored whole (record, link and
// fingerprint), failing on a half-written one.
func pagePresent(t *testing.T, s *pgstate.Store, p, round int) int {
	t.Helper()
	present := 0
	for i := 0; i < crashPerPage; i++ {
		id := fmt.Sprintf("p%d-%d", p, i)
		r, err := s.Record(id)
		if err != nil {
			t.Fatal(err)
		}
		l, _ := s.Link("overplane", "o-"+id)
		f, _ := s.Fingerprint("overplane", "o-"+id)
		if r != nil && l == id && f != nil {
			present++
		} else if r != nil || l != "" || f != nil {
			t.Fatalf("round %d: page %d record %s half written (record %v, link %q, fingerprint %v)", round, p, id, r != nil, l, f != nil)
		}
	}
	return present
}
