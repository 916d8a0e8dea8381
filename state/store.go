package state

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version this package writes and reads. It is
// stored in the meta bucket; see the package documentation.
const SchemaVersion = 3

// readableFrom is the oldest schema version whose files this build reads
// without migrating them first: every migration since is lazy (it only
// stamps the new version; values carry their own format version and are
// rewritten in the new format when next written), so a read-only Open of
// such a file works.
const readableFrom = 1

// formatName marks a bbolt file as a crmsync state file (meta/format).
const formatName = "crmsync-state"

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero or negative.
const DefaultTimeout = time.Second

// Bucket names, in the order Stats reports them.
var (
	bucketMeta         = []byte("meta")
	bucketCursors      = []byte("cursors")
	bucketRecords      = []byte("records")
	bucketLinks        = []byte("links")
	bucketFingerprints = []byte("fingerprints")
	bucketIntents      = []byte("intents")
	bucketDeadLetters  = []byte("deadletters")
	bucketRuns         = []byte("runs")
)

func allBuckets() [][]byte {
	return [][]byte{bucketMeta, bucketCursors, bucketRecords, bucketLinks, bucketFingerprints,
		bucketIntents, bucketDeadLetters, bucketRuns}
}

// Keys of the meta bucket.
var (
	metaFormat  = []byte("format")
	metaVersion = []byte("schema_version")
)

// ErrLocked is returned, wrapped, by Open when another process (or another
// Store in this process) holds the state file and the lock wait ran out.
// Test for it with errors.Is; the wrapping error names the file and the wait.
var ErrLocked = errors.New("state file is in use by another crmsync process")

// ErrCorrupt is returned, wrapped, when a file is not a crmsync state file,
// or is damaged (truncated, overwritten, bad pages). The wrapping error names
// the path and what was found.
var ErrCorrupt = errors.New("not a crmsync state file or corrupted")

// ErrSchemaTooNew is returned, wrapped, by Open when the file was written by
// a newer crmsync whose schema version this build does not know.
var ErrSchemaTooNew = errors.New("state file schema is newer than this crmsync")

// ErrFenced is returned, wrapped, by a commit made under a lease on a flow
// that has run out or passed to another replica: nothing was written.
var ErrFenced = errors.New("lease on the flow lost: another replica may hold it now; nothing written")

// ErrReadOnly is returned, wrapped, by writes on a Store opened with
// Options.ReadOnly.
var ErrReadOnly = errors.New("state file is open read-only")

// lockedError is the error Open returns when the lock wait runs out.
type lockedError struct {
	path string
	wait time.Duration
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("state file %s is in use by another crmsync process (waited %s); stop it or use --state to pick another file", e.path, e.wait)
}

func (e *lockedError) Unwrap() error { return ErrLocked }

// corruptError names the file and the cause; it matches ErrCorrupt.
type corruptError struct {
	path  string
	cause error
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("state file %s is not a crmsync state file or is corrupted: %v", e.path, e.cause)
}

func (e *corruptError) Is(target error) bool { return target == ErrCorrupt }

func (e *corruptError) Unwrap() error { return e.cause }

// schemaError is the error Open returns for a newer schema; it matches
// ErrSchemaTooNew.
type schemaError struct {
	path    string
	version int
}

func (e *schemaError) Error() string {
	return fmt.Sprintf("state file %s has schema version %d but this crmsync understands up to %d; upgrade crmsync or use --state to pick another file",
		e.path, e.version, SchemaVersion)
}

func (e *schemaError) Unwrap() error { return ErrSchemaTooNew }

// Options tune Open.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process before failing with ErrLocked. Zero or negative means
	// DefaultTimeout (1s); bbolt's "wait forever" is never used.
	Timeout time.Duration
	// ReadOnly opens the file with a shared lock and refuses writes. The
	// file must exist. A read-only Store still waits for (and fails on) a
	// read-write holder, because bbolt's writer holds an exclusive lock.
	ReadOnly bool
}

// Store is crmsync's persisted state: one bbolt file. It is safe for
// concurrent use; reads run in their own read transactions and writes are
// serialised by bbolt.
type Store struct {
	// mu guards db: every transaction holds it shared, a reopen (see
	// maybeReopen) and Close hold it alone.
	mu       sync.RWMutex
	db       *bbolt.DB
	broken   error // set when a reopen failed: the store is unusable
	wait     time.Duration
	opened   int64 // the db's page allocations (TxStats.PageCount) when it was opened
	reopenAt int64 // reopenPages (tests set fewer)
	reopens  atomic.Int64
	path     string
	readOnly bool
	dicts    *dictCache
	// updates counts write transactions, to release the mapped file's
	// pages every releaseEvery of them (see releaseMapped).
	updates atomic.Int64
}

// releaseEvery is how many write transactions pass between two releases
// of the mapped state file's pages: a 100-record page commit touches a few
// MB of them (random keys: TribeCRM GUIDs), so 16 let 26 MB pile up in a
// 10,000-record backfill and 4 let 35-47 MB pile up by 200,000 records of
// a 1,000,000-record one (peak RSS past 100 MiB): every one keeps it to the
// pages since the last commit, at the cost of faulting the B+tree's branch
// pages in again once per commit.
const releaseEvery = 1

// reopenPages is how many page allocations a session of the bbolt file
// makes before the store closes and reopens it. bbolt's freelist keeps an
// entry (page id to the transaction that wrote it) for every page written
// since the file was opened and not freed since, in a map on the heap: at
// 1,000,000 records a backfill's heap grew by about 15 MB that way, all of
// it bbolt's. A reopen reads the freelist from the file afresh (an empty
// map) and unmaps the file; it takes a few milliseconds, about once every
// 20,000 records of a bulk run.
const reopenPages = 100_000

// Open opens (creating when needed, unless read-only) the state file at path.
//
// It fails with an error wrapping ErrLocked when another process holds the
// file for longer than o.Timeout, ErrCorrupt when the file is not a crmsync
// state file or is damaged, and ErrSchemaTooNew when a newer crmsync wrote
// it. An older schema is migrated in one transaction (read-write only).
// Open never panics on a bad file.
func Open(path string, o Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open state file: empty path")
	}
	wait := o.Timeout
	if wait <= 0 {
		wait = DefaultTimeout
	}
	if !o.ReadOnly {
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("open state file %s: %w", path, err)
			}
		}
		// bbolt reads the freelist while opening read-write; on a truncated
		// file that page may be gone. A read-only open touches only the
		// meta pages, so check the length that way first.
		if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
			ro, err := openChecked(path, wait, true)
			if err != nil {
				return nil, err
			}
			if err := ro.db.Close(); err != nil {
				return nil, fmt.Errorf("open state file %s: %w", path, err)
			}
		}
	}
	s, err := openChecked(path, wait, o.ReadOnly)
	if err != nil {
		return nil, err
	}
	if err := s.prepareSchema(); err != nil {
		_ = s.db.Close()
		return nil, err
	}
	return s, nil
}

// openChecked opens the bbolt file and checks its length against its meta
// page.
func openChecked(path string, wait time.Duration, readOnly bool) (*Store, error) {
	db, err := openBolt(path, &bbolt.Options{
		Timeout:      wait,
		ReadOnly:     readOnly,
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, classifyOpenError(path, wait, err)
	}
	s := &Store{db: db, path: path, readOnly: readOnly, dicts: newDictCache(), wait: wait, reopenAt: reopenPages}
	if err := s.checkSize(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// openBolt calls bbolt.Open, turning a panic or a memory fault on a damaged
// file into an error and releasing the file (and its lock) in that case.
func openBolt(path string, bo *bbolt.Options) (db *bbolt.DB, err error) {
	var file *os.File
	bo.OpenFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				unlockFile(file)
				_ = file.Close()
			}
			db, err = nil, &corruptError{path: path, cause: fmt.Errorf("bbolt: %v", r)}
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return bbolt.Open(path, 0o600, bo)
}

func classifyOpenError(path string, wait time.Duration, err error) error {
	var ce *corruptError
	var pe *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return &lockedError{path: path, wait: wait}
	case errors.As(err, &ce):
		return err
	case errors.As(err, &pe), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("open state file %s: %w", path, err)
	default:
		// bbolt's own validation: ErrInvalid, ErrVersionMismatch,
		// ErrChecksum, "file size too small", mmap of a bad size.
		return &corruptError{path: path, cause: err}
	}
}

// checkSize compares the file's length with the high-water mark recorded in
// its meta page: a truncated file would fault on first access to a lost page.
func (s *Store) checkSize() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("open state file %s: %w", s.path, err)
	}
	return s.view(func(tx *bbolt.Tx) error {
		if want := tx.Size(); fi.Size() < want {
			return &corruptError{path: s.path, cause: fmt.Errorf("file is %d bytes but its pages need %d (truncated?)", fi.Size(), want)}
		}
		return nil
	})
}

// migrations[v] upgrades a file from schema v to v+1, inside one write
// transaction (prepareSchema stamps the new version after the last one).
func migrations() map[int]func(tx *bbolt.Tx) error {
	return map[int]func(tx *bbolt.Tx) error{
		// 1 → 2: golden records are written in record format 2 (sources
		// grouped, no id) from now on. Format-1 records keep reading and are
		// rewritten when next written, so nothing is rewritten here: a
		// million-record file would otherwise be rewritten in one
		// transaction at the first start.
		1: func(*bbolt.Tx) error { return nil },
		// 2 → 3: records, fingerprints and intents are stored compressed
		// against a dictionary of their bucket (pack.go) once it has one.
		// Their JSON values keep reading as they are and are compressed
		// when next written; nothing is rewritten here, for the same reason.
		2: func(*bbolt.Tx) error { return nil },
	}
}

// prepareSchema checks the meta bucket and, read-write, creates missing
// buckets, stamps a new file and runs migrations — in one transaction.
func (s *Store) prepareSchema() error {
	var (
		version    int
		needUpdate bool
	)
	err := s.view(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			var names []string
			_ = tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
				names = append(names, string(name))
				return nil
			})
			if len(names) > 0 {
				return &corruptError{path: s.path, cause: fmt.Errorf("it holds buckets %q but no meta bucket", names)}
			}
			version, needUpdate = 0, true // a new, empty file
			return nil
		}
		if f := meta.Get(metaFormat); string(f) != formatName {
			return &corruptError{path: s.path, cause: fmt.Errorf("meta/format is %q, want %q", f, formatName)}
		}
		raw := meta.Get(metaVersion)
		v, err := strconv.Atoi(string(raw))
		if err != nil || v < 1 {
			return &corruptError{path: s.path, cause: fmt.Errorf("meta/schema_version is %q", raw)}
		}
		version = v
		for _, name := range allBuckets() {
			if tx.Bucket(name) == nil {
				needUpdate = true
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if version > SchemaVersion {
		return &schemaError{path: s.path, version: version}
	}
	if version < SchemaVersion && version > 0 {
		needUpdate = true
	}
	if !needUpdate {
		return nil
	}
	if s.readOnly {
		if version == 0 {
			return nil // empty file: every read finds nothing
		}
		if version < readableFrom {
			return fmt.Errorf("state file %s has schema version %d and needs a migration to %d; open it once read-write: %w",
				s.path, version, SchemaVersion, ErrReadOnly)
		}
		return nil // missing buckets read as empty
	}
	return s.update(func(tx *bbolt.Tx) error {
		if version > 0 {
			for v := version; v < SchemaVersion; v++ {
				m, ok := migrations()[v]
				if !ok {
					return fmt.Errorf("state file %s: no migration from schema version %d", s.path, v)
				}
				if err := m(tx); err != nil {
					return fmt.Errorf("migrate state file %s from schema version %d to %d: %w", s.path, v, v+1, err)
				}
			}
		}
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(metaFormat, []byte(formatName)); err != nil {
			return err
		}
		return meta.Put(metaVersion, []byte(strconv.Itoa(SchemaVersion)))
	})
}

// Close releases the file and its lock. Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path the Store was opened with.
func (s *Store) Path() string { return s.path }

// view runs fn in a read transaction, converting a bbolt panic or a memory
// fault on a damaged file into an ErrCorrupt error.
func (s *Store) view(fn func(tx *bbolt.Tx) error) (err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.broken != nil {
		return s.broken
	}
	defer s.recoverCorrupt(&err)
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	return s.db.View(fn)
}

// update runs fn in a write transaction (rolled back when fn fails or
// panics), converting a panic into an ErrCorrupt error.
func (s *Store) update(fn func(tx *bbolt.Tx) error) (err error) {
	if s.readOnly {
		return fmt.Errorf("write state file %s: %w", s.path, ErrReadOnly)
	}
	defer s.maybeReopen() // after the RUnlock below
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.broken != nil {
		return s.broken
	}
	defer s.recoverCorrupt(&err)
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	if s.updates.Add(1)%releaseEvery == 0 {
		defer releaseMapped(s.db)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		// Only a writer reads AllocSize (when its commit grows the file),
		// and bbolt lets one writer in at a time.
		s.db.AllocSize = growStep(tx.Size())
		return fn(tx)
	})
}

func pageAllocs(db *bbolt.DB) int64 {
	st := db.Stats()
	return st.TxStats.GetPageCount()
}

// maybeReopen closes and reopens the bbolt file once this session has
// allocated reopenPages pages (see reopenPages). It waits for the
// transactions open to end, and new ones wait for it (a few ms): no
// caller holds one of this store's transactions while it writes (a
// TryLock instead never got its turn while 4 goroutines read). A failed
// reopen (another process took the file's lock in
// the moment it was free) leaves the store failing every call with that
// error; what was committed stays committed.
func (s *Store) maybeReopen() {
	if s.readOnly {
		return
	}
	s.mu.RLock()
	due := s.db != nil && s.broken == nil && pageAllocs(s.db)-s.opened >= s.reopenAt
	s.mu.RUnlock()
	if !due {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil || s.broken != nil || pageAllocs(s.db)-s.opened < s.reopenAt {
		return // closed, or another writer reopened it meanwhile
	}
	if err := s.db.Close(); err != nil {
		s.broken = fmt.Errorf("reopen state file %s: %w", s.path, err)
		return
	}
	db, err := openBolt(s.path, &bbolt.Options{Timeout: s.wait, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		s.db, s.broken = nil, fmt.Errorf("reopen state file %s: %w", s.path, classifyOpenError(s.path, s.wait, err))
		return
	}
	s.db, s.opened = db, pageAllocs(db)
	s.reopens.Add(1)
}

// growStep is how much bbolt grows a file of size bytes by when a commit
// needs more room: a thirty-second of it, from 1 MiB up to bbolt's default
// of 16 MiB. With the default alone a file is 16 MiB longer than its pages
// (1,600 bytes a record at 10,000 records), and under 16 MiB as long as
// bbolt's map (the next power of two). Each step costs one ftruncate and
// one fsync, about one for every 3 % of growth.
func growStep(size int64) int {
	const lo, hi = 1 << 20, 16 << 20
	return int(min(max(size/32, lo), hi))
}

func (s *Store) recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = &corruptError{path: s.path, cause: fmt.Errorf("bbolt: %v", r)}
	}
}

// Stats counts the keys in each bucket, for `crmsync status`. The map has
// one entry per bucket name (meta, cursors, records, links, fingerprints,
// intents, deadletters, runs).
func (s *Store) Stats() (map[string]int, error) {
	out := make(map[string]int, len(allBuckets()))
	err := s.view(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets() {
			n := 0
			if b := tx.Bucket(name); b != nil {
				n = b.Stats().KeyN
			}
			out[string(name)] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read state stats: %w", err)
	}
	return out, nil
}
