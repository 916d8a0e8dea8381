package state_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/crmsync/crmsync/state"
	"github.com/crmsync/crmsync/state/statetest"
)

// The bbolt engine keeps the contract every state engine shares.
func TestContract(t *testing.T) {
	t.Parallel()
	statetest.Run(t, statetest.Engine{
		New: func(t *testing.T) func(t *testing.T) statetest.Store {
			path := filepath.Join(t.TempDir(), "crmsync.db")
			return func(t *testing.T) statetest.Store {
				s, err := state.Open(path, state.Options{})
				if err != nil {
					t.Fatalf("Open(%s): %v", path, err)
				}
				return s
			}
		},
		Resolution: time.Nanosecond,
	})
}
