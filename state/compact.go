package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
)

// CompactResult is what Compact did.
type CompactResult struct {
	// Before and After are the file's sizes in bytes.
	Before, After int64
}

// compactTxSize is how many bytes of keys and values bbolt.Compact copies
// per transaction (it commits in steps so a large file is not held in
// memory).
const compactTxSize = 64 << 20

// Compact rewrites the state file at path without its free pages
// (bbolt.Compact), which a file that grew and then lost many records keeps
// otherwise. It holds the file's lock throughout (failing with ErrLocked
// when a daemon or another command has it, after o.Timeout), writes the copy
// to a temporary file in the same directory, checks that the copy exports
// exactly what the original does, fsyncs it and renames it over the
// original, then fsyncs the directory. A crash or an error at any point
// leaves the original as it was (and perhaps a ".crmsync-compact-*" file
// next to it, which may be deleted).
func Compact(ctx context.Context, path string, o Options) (CompactResult, error) {
	var res CompactResult
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("compact state file: %w", err)
	}
	res.Before = fi.Size()
	o.ReadOnly = false
	src, err := Open(path, o)
	if err != nil {
		return res, err
	}
	defer src.Close()
	tmp, err := compactInto(ctx, src)
	if err != nil {
		return res, fmt.Errorf("compact state file %s: %w (the file is unchanged)", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return res, fmt.Errorf("compact state file %s: %w (the file is unchanged)", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return res, fmt.Errorf("compact state file %s: replaced, but the directory did not sync: %w", path, err)
	}
	fi, err = os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("compact state file: %w", err)
	}
	res.After = fi.Size()
	return res, nil
}

// compactInto copies src into a new temporary file next to it, checks the
// copy and returns its path, fsynced and closed.
func compactInto(ctx context.Context, src *Store) (tmp string, err error) {
	f, err := os.CreateTemp(filepath.Dir(src.path), ".crmsync-compact-*")
	if err != nil {
		return "", err
	}
	tmp = f.Name()
	_ = f.Close()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	if err := boltCompact(src, tmp); err != nil {
		return "", err
	}
	if err := checkCopy(ctx, src, tmp); err != nil {
		return "", err
	}
	if err := sameOwnerAndMode(src.path, tmp); err != nil {
		return "", err
	}
	return tmp, syncFile(tmp)
}

// sameOwnerAndMode gives tmp the permissions (and, on Unix, the owner) of
// path, so that a compact run as root leaves a file the daemon's user can
// still open.
func sameOwnerAndMode(path, tmp string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, fi.Mode().Perm()); err != nil {
		return err
	}
	return chownLike(fi, tmp)
}

func boltCompact(src *Store, tmp string) error {
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return err
	}
	if fi, err := os.Stat(src.path); err == nil {
		dst.AllocSize = growStep(fi.Size()) // else the copy ends up to 16 MiB longer than its pages
	}
	err = func() (err error) {
		defer src.recoverCorrupt(&err)
		return bbolt.Compact(dst, src.db, compactTxSize)
	}()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkCopy opens the copy as a state file and compares its export with
// the original's.
func checkCopy(ctx context.Context, src *Store, tmp string) error {
	cp, err := Open(tmp, Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("the compacted copy does not open: %w", err)
	}
	defer cp.Close()
	if _, err := CompareExports(ctx, src, cp, CompareOptions{}); err != nil {
		var m *MismatchError
		if errors.As(err, &m) {
			return fmt.Errorf("the compacted copy differs from the file at %w", err)
		}
		return err
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// syncDir fsyncs a directory, so a rename in it survives a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
