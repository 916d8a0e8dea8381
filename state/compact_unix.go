//go:build unix

package state

import (
	"os"
	"syscall"
)

// chownLike gives path the owner and group of fi (a no-op when they are
// already the caller's; an error when the caller may not give them).
func chownLike(fi os.FileInfo, path string) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid() {
		return nil
	}
	return os.Chown(path, int(st.Uid), int(st.Gid))
}
