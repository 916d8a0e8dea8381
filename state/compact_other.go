//go:build !unix

package state

import "os"

// chownLike does nothing here: files have no Unix owner to keep.
func chownLike(os.FileInfo, string) error { return nil }
