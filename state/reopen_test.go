package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/crmsync/funnel"
)

// A long run reopens the bbolt file now and then (reopenPages) to drop
// bbolt's per-session map of written pages. Reads going on meanwhile, the
// records, links and fingerprints written before and after, and the file's
// lock all survive it.
func TestReopenDuringARunKeepsEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.reopenAt = 150
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readErr := make(chan error, 4)
	for g := 0; g < 4; g++ {
		readers.Add(1)
		go func(g int) {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Link("tribecrm", fmt.Sprintf("k-%d", i%500)); err != nil {
					readErr <- err
					return
				}
			}
		}(g)
	}
	const pages, per = 40, 50
	for p := 0; p < pages; p++ {
		b := &Batch{}
		for i := 0; i < per; i++ {
			n := p*per + i
			r := funnel.New(fmt.Sprintf("rec-%05d", n))
			r.Fields[funnel.FieldName] = fmt.Sprintf("Org %d", n)
			r.Links["tribecrm"] = fmt.Sprintf("k-%d", n*7919%(pages*per))
			b.PutRecord(r)
			b.PutFingerprint("tribecrm", r.Links["tribecrm"], Fingerprint{Hash: fmt.Sprint(n), At: time.Unix(int64(n), 0)})
		}
		if err := s.Commit(b); err != nil {
			t.Fatalf("page %d: %v", p, err)
		}
	}
	close(stop)
	readers.Wait()
	select {
	case err := <-readErr:
		t.Fatalf("a read during the run: %v", err)
	default:
	}
	if s.reopens.Load() == 0 {
		t.Fatalf("%d commits, %d page allocations: never reopened", pages, pageAllocs(s.db))
	}
	for n := 0; n < pages*per; n++ {
		key := fmt.Sprintf("k-%d", n*7919%(pages*per))
		if id, err := s.Link("tribecrm", key); err != nil || id != fmt.Sprintf("rec-%05d", n) {
			t.Fatalf("link %s = %q, %v after %d reopens", key, id, err, s.reopens.Load())
		}
		if fp, err := s.Fingerprint("tribecrm", key); err != nil || fp == nil || fp.Hash != fmt.Sprint(n) {
			t.Fatalf("fingerprint %s = %+v, %v", key, fp, err)
		}
	}
	if _, err := Open(path, Options{Timeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a second open after %d reopens: %v; want ErrLocked (the lock is still held)", s.reopens.Load(), err)
	}
	t.Logf("%d reopens", s.reopens.Load())
}
