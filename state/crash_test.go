package state

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	crashEnv     = "CRMSYNC_STATE_TEST_CRASH"
	crashPerPage = 50
)

// crashPage is page p of the crash test: crashPerPage records with links and
// fingerprints, plus the cursor "p".
func crashPage(b *Batch, p int) {
	for i := 0; i < crashPerPage; i++ {
		id := fmt.Sprintf("p%d-%d", p, i)
		r := sampleRecord(id)
		r.Links = map[string]string{"overplane": "o-" + id}
		b.PutRecord(r)
		b.PutFingerprint("overplane", "o-"+id, Fingerprint{Hash: id, Source: FingerprintWrite, At: t0})
	}
	b.PutRun(Run{Flow: "crash", Mode: "sync", Started: t0.Add(time.Duration(p) * time.Second)})
	b.SetCursor("flow/crash/overplane", []byte(strconv.Itoa(p)))
}

// TestHelperCommitForever is not a test: run by TestKillDuringCommits as a
// child process, it commits pages to $CRMSYNC_STATE_TEST_CRASH, printing
// each page number once its commit returned, until it is killed.
func TestHelperCommitForever(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		return
	}
	s, err := Open(path, Options{Timeout: 10 * time.Second})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	p := 0
	if c, _ := s.Cursor("flow/crash/overplane"); c != nil {
		p, _ = strconv.Atoi(string(c))
	}
	for p++; ; p++ {
		var b Batch
		crashPage(&b, p)
		if err := s.Commit(&b); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(2)
		}
		fmt.Println(p)
	}
}

// A process killed at an arbitrary point of its commits leaves a file that
// opens, holds every page it reported committed, and holds each page either
// entirely or not at all.
func TestKillDuringCommits(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	acked := 0
	for round, after := range []int{3, 7, 12} {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperCommitForever$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
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
		cancel()
		if t.Failed() {
			return
		}

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		c, _ := s.Cursor("flow/crash/overplane")
		last, _ := strconv.Atoi(string(c))
		if last < acked {
			t.Fatalf("round %d: cursor at page %d but page %d was reported committed", round, last, acked)
		}
		for p := 1; p <= last+1; p++ {
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
			want := crashPerPage
			if p == last+1 {
				want = 0
			}
			if present != want {
				t.Fatalf("round %d: page %d has %d of its records, want %d (cursor at %d)", round, p, present, want, last)
			}
		}
		runs, _ := s.Runs("crash", 0)
		if len(runs) != min(last, MaxRunsPerFlow) {
			t.Fatalf("round %d: %d runs for %d pages", round, len(runs), last)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
