package state

import (
	"syscall"

	"go.etcd.io/bbolt"
)

// releaseMapped tells the kernel this process no longer needs the pages of
// the state file it has mapped (madvise MADV_DONTNEED over bbolt's
// read-only shared mapping). bbolt maps the whole file and reads through
// the mapping, so every page a run touched stayed counted in the
// process's resident memory, which grew with the file (77 MB of a 20,000-
// record backfill's 165 MB). The pages stay in the page cache: the next
// read of one is a minor fault, and the data is the file's, so nothing
// can change or be lost. It runs inside a read transaction, which holds
// bbolt's mmap lock: the mapping cannot move or shrink meanwhile.
func releaseMapped(db *bbolt.DB) {
	_ = db.View(func(tx *bbolt.Tx) error {
		info := db.Info()
		if info == nil || info.Data == 0 || tx.Size() <= 0 {
			return nil
		}
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, info.Data, uintptr(tx.Size()), syscall.MADV_DONTNEED)
		return nil
	})
}
