package state

import (
	"testing"

	"go.etcd.io/bbolt"
)

type bboltTx = bbolt.Tx

// writeAheadForBench is the engine's write-ahead: the golden records and
// the create intents in one commit. (Before schema version 2 the engine
// committed them in two: Commit, then PutIntents.)
func writeAheadForBench(tb testing.TB, s *Store, pre *Batch, intents []Intent) {
	for _, in := range intents {
		pre.PutIntent(in)
	}
	if err := s.Commit(pre); err != nil {
		tb.Fatal(err)
	}
}
