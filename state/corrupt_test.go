package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// fillStore writes n records with links and fingerprints, so the file spans
// many pages, and returns its size.
func fillStore(t *testing.T, path string, n int) int64 {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 200 {
		var b Batch
		for j := i; j < i+200 && j < n; j++ {
			r := sampleRecord(fmt.Sprintf("id-%06d", j))
			r.Links["overplane"] = fmt.Sprint(j)
			r.Links["tribecrm"] = fmt.Sprintf("t-%06d", j)
			b.PutRecord(r)
			b.PutFingerprint("overplane", fmt.Sprint(j), Fingerprint{Hash: "h", Payload: map[string]any{"name": strings.Repeat("x", 100)}})
		}
		if err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func wantCorrupt(t *testing.T, path string, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("Open succeeded on a damaged file")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not match ErrCorrupt", err)
	}
	if want := "state file " + path + " is not a crmsync state file or is corrupted: "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q does not start with %q", err, want)
	}
}

func TestOpenRandomBytes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{10, 1000, 4096, 8192, 64 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "random.db")
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(rng.UintN(256))
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				_, err := Open(path, Options{ReadOnly: ro})
				wantCorrupt(t, path, err)
			}
			// Nothing was written over the user's file.
			if got, _ := os.ReadFile(path); string(got) != string(data) {
				t.Fatal("Open changed a file that is not a state file")
			}
		})
	}
}

func TestOpenTruncatedFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.db")
	size := fillStore(t, orig, 1500)
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int64{100, 4096, 2 * 4096, 3 * 4096, size / 4, size / 2, size - 4096} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			t.Parallel() // each cut writes a file of its own
			path := filepath.Join(t.TempDir(), "truncated.db")
			if err := os.WriteFile(path, data[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{true, false} {
				s, err := Open(path, Options{ReadOnly: ro, Timeout: 100 * time.Millisecond})
				// Some cuts only drop free pages at the end; those files are
				// intact. Every other cut must be reported, not panic.
				if err != nil {
					wantCorrupt(t, path, err)
				} else {
					_ = s.Close()
				}
			}
			// The failed Opens released the file: no ErrLocked now.
			s, err := Open(path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
			if errors.Is(err, ErrLocked) {
				t.Fatalf("a failed Open kept the lock: %v", err)
			}
			if err == nil {
				_ = s.Close()
			}
		})
	}
	// The cut at size/2 loses live pages for sure.
	path := filepath.Join(dir, "half.db")
	if err := os.WriteFile(path, data[:size/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	wantCorrupt(t, path, err)
}

// Damage in the middle of a file with intact meta pages is found when read:
// reads through an open Store fail with ErrCorrupt instead of panicking, and
// a later Open reports the file.
func TestDamagedPagesDoNotPanic(t *testing.T) {
	t.Parallel()
	// One healthy file, filled once; each seed damages a copy of it.
	orig := filepath.Join(t.TempDir(), "orig.db")
	fillStore(t, orig, 1500)
	healthy, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "damaged.db")
			if err := os.WriteFile(path, healthy, 0o600); err != nil {
				t.Fatal(err)
			}
			size := int64(len(healthy))
			s, err := Open(path, Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Overwrite every page after the first four, under the open Store.
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(seed, 4))
			junk := make([]byte, size-4*4096)
			for i := range junk {
				junk[i] = byte(rng.UintN(256))
			}
			if _, err := f.WriteAt(junk, 4*4096); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()

			var errs []error
			_, err = s.Record("id-000001")
			errs = append(errs, err)
			_, err = s.Link("overplane", "1")
			errs = append(errs, err)
			_, err = s.Fingerprint("overplane", "1")
			errs = append(errs, err)
			_, err = s.Stats()
			errs = append(errs, err)
			_, err = s.Intents("")
			errs = append(errs, err)
			reported := 0
			for _, err := range errs {
				if err != nil {
					reported++
					if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
						t.Errorf("read error %v does not match ErrCorrupt or name the file", err)
					}
				}
			}
			if reported == 0 {
				t.Error("no read reported the damage")
			}
			_ = s.Close()
			_, err = Open(path, Options{})
			wantCorrupt(t, path, err)
		})
	}
}

func TestOpenOtherBboltFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("widgets"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	_, err = Open(path, Options{})
	wantCorrupt(t, path, err)
	if !strings.Contains(err.Error(), "widgets") {
		t.Errorf("message %q does not say what the file holds", err)
	}
}

func TestEmptyFilesAreInitialised(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.db")
	if err := os.WriteFile(zero, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare.db")
	db, err := bbolt.Open(bare, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	for _, path := range []string{zero, bare} {
		s := openT(t, path)
		commit(t, s, func(b *Batch) { b.SetCursor("k", []byte("v")) })
	}
	// A bare bbolt file read-only reads as empty.
	bare2 := filepath.Join(dir, "bare2.db")
	db, err = bbolt.Open(bare2, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	s, err := Open(bare2, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if c, err := s.Cursor("k"); c != nil || err != nil {
		t.Fatalf("Cursor on bare file = %q, %v", c, err)
	}
	if st, err := s.Stats(); err != nil || st["records"] != 0 {
		t.Fatalf("Stats on bare file = %v, %v", st, err)
	}
}

func setMeta(t *testing.T, path string, key, val string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), []byte(val))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaVersion(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crmsync.db")
	fillStore(t, path, 1)

	newer := strconv.Itoa(SchemaVersion + 1)
	setMeta(t, path, "schema_version", newer)
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("Open of a v%s file = %v, want ErrSchemaTooNew", newer, err)
		}
		for _, want := range []string{path, "schema version " + newer, "up to " + strconv.Itoa(SchemaVersion), "upgrade crmsync"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q lacks %q", err, want)
			}
		}
	}

	setMeta(t, path, "schema_version", "one")
	_, err := Open(path, Options{})
	wantCorrupt(t, path, err)

	setMeta(t, path, "schema_version", "2")
	setMeta(t, path, "format", "something-else")
	_, err = Open(path, Options{})
	wantCorrupt(t, path, err)

	setMeta(t, path, "format", "crmsync-state")
	s := openT(t, path)
	if r, err := s.Record("id-000000"); err != nil || r == nil {
		t.Fatalf("record after restoring meta = %v, %v", r, err)
	}
}

// A value written in a future value format is refused, not guessed at.
func TestNewerValueVersionIsReported(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFingerprints).Put(pairKey("overplane", "1"), []byte(`{"v":2,"hash":"h"}`))
	}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Fingerprint("overplane", "1")
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "format version 2") {
		t.Fatalf("Fingerprint with v2 value = %v", err)
	}
}

// When bbolt panics half-way through opening (here: read-write on a file
// whose freelist page was cut off, which Open itself avoids by checking the
// length first), the file and its lock are released.
func TestPanicDuringOpenReleasesLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.db")
	fillStore(t, orig, 300)
	data, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cut.db")
	if err := os.WriteFile(path, data[:2*4096], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = openBolt(path, &bbolt.Options{Timeout: 100 * time.Millisecond})
	wantCorrupt(t, path, err)
	if !strings.Contains(err.Error(), "bbolt: ") {
		t.Fatalf("want the recovered bbolt panic, got %v", err)
	}
	_, err = Open(path, Options{Timeout: 100 * time.Millisecond})
	wantCorrupt(t, path, err) // not ErrLocked
	if !strings.Contains(err.Error(), "truncated") {
		t.Errorf("Open's own message should say the file looks truncated: %v", err)
	}
}
