//go:build !linux

package state

import "go.etcd.io/bbolt"

// releaseMapped is Linux's only (see mapped_linux.go).
func releaseMapped(*bbolt.DB) {}
