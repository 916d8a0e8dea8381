package state

import "context"

// Exporter is a state engine that can list everything it holds as the
// changes that rebuild it in an empty store of any engine (a Batch replays
// them with AddOp). `crmsync state migrate` copies state between engines
// with it, and verifies the copy by comparing two exports (CompareExports).
//
// Export calls fn once per change, streaming (nothing is held for more
// than one record), from one consistent snapshot, in this order:
// cursors (OpSetCursor), golden records (OpPutRecord, each followed by an
// OpUnlink for every link the record names that the link index does not
// hold), links (OpLink), fingerprints (OpPutFingerprint), create intents
// (OpPutIntent), dead letters and pending deliveries (OpRestoreDeadLetter,
// dropped ones included) and runs (OpPutRun); within a kind by key in byte
// order (runs by flow, then start time, starts before 1970 last). It stops
// at the first error fn returns and returns it, or when ctx ends. fn must
// not write to the store being exported.
type Exporter interface {
	Export(ctx context.Context, fn func(Op) error) error
}
