package state

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/bbolt"
)

var _ Exporter = (*Store)(nil)

// RestoreDeadLetter stores d exactly as given under d.Key
// (DeadLetterKey(d) when empty), replacing a stored entry without merging
// with it: Attempts, FirstAt, LastAt, Pending and Dropped are kept as they
// are. PutDeadLetter is for a new failure (it counts an attempt and keeps
// the first time); this is for a copy of an entry from another store.
func (b *Batch) RestoreDeadLetter(d DeadLetter) {
	if d.Flow == "" || d.System == "" {
		b.fail(fmt.Errorf("RestoreDeadLetter: flow %q and system %q must both be set", d.Flow, d.System))
		return
	}
	if d.Key == "" {
		d.Key = DeadLetterKey(d)
	}
	v, err := toDeadLetterV1(d)
	if err != nil {
		b.fail(fmt.Errorf("RestoreDeadLetter %s: encode payload: %w", d.Key, err))
		return
	}
	b.ops = append(b.ops, op{kind: opRestoreDeadLetter, key: []byte(d.Key), dl: &v})
}

func applyRestoreDeadLetter(t *txBuckets, o *op) error {
	v, err := json.Marshal(o.dl)
	if err != nil {
		return fmt.Errorf("RestoreDeadLetter %s: encode: %w", o.key, err)
	}
	return t.deadLetters.Put(o.key, v)
}

// AddOp adds o to b as the Batch method of its kind does: it is the
// inverse of Ops, and how an export (Exporter) is replayed into a store.
// An Op without the value its kind needs makes Commit fail.
func (b *Batch) AddOp(o Op) {
	if err := checkOpValue(o); err != nil {
		b.fail(err)
		return
	}
	switch o.Kind {
	case OpSetCursor:
		b.SetCursor(o.Key, nonNilBytes(o.Cursor))
	case OpDeleteCursor:
		b.SetCursor(o.Key, nil)
	case OpPutRecord:
		b.PutRecord(o.Record)
	case OpLink:
		b.Link(o.System, o.ID, o.Target)
	case OpUnlink:
		b.Unlink(o.System, o.ID)
	case OpPutFingerprint:
		b.PutFingerprint(o.System, o.ID, *o.Fingerprint)
	case OpDeleteIntent:
		b.DeleteIntent(o.System, o.ID)
	case OpPutIntent:
		b.PutIntent(*o.Intent)
	case OpPutDeadLetter:
		b.PutDeadLetter(*o.DeadLetter)
	case OpRestoreDeadLetter:
		b.RestoreDeadLetter(*o.DeadLetter)
	case OpDeleteDeadLetter:
		b.DeleteDeadLetter(o.Key)
	case OpPutRun:
		b.PutRun(*o.Run)
	default:
		b.fail(fmt.Errorf("AddOp: unknown op kind %d", o.Kind))
	}
}

// checkOpValue reports an Op whose kind needs a value it lacks.
func checkOpValue(o Op) error {
	missing := (o.Kind == OpPutFingerprint && o.Fingerprint == nil) ||
		(o.Kind == OpPutIntent && o.Intent == nil) ||
		((o.Kind == OpPutDeadLetter || o.Kind == OpRestoreDeadLetter) && o.DeadLetter == nil) ||
		(o.Kind == OpPutRun && o.Run == nil)
	if missing {
		return fmt.Errorf("AddOp: op kind %d without its value", o.Kind)
	}
	return nil
}

func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Export calls fn with every change that rebuilds what s holds, from one
// read transaction; see Exporter for the order. The file stays readable
// (and, opened read-write, writable by others) meanwhile: bbolt's readers
// see the snapshot they started with.
func (s *Store) Export(ctx context.Context, fn func(Op) error) error {
	steps := []func(context.Context, *bbolt.Tx, func(Op) error) error{
		s.exportCursors, s.exportRecords, s.exportLinks, s.exportFingerprints,
		s.exportIntents, s.exportDeadLetters, s.exportRuns,
	}
	var fnErr error
	wrapped := func(o Op) error {
		if err := fn(o); err != nil {
			fnErr = err
			return err
		}
		return nil
	}
	err := s.view(func(tx *bbolt.Tx) error {
		for _, step := range steps {
			if err := step(ctx, tx, wrapped); err != nil {
				return err
			}
		}
		return nil
	})
	if fnErr != nil {
		return fnErr // as fn returned it
	}
	if err != nil {
		return fmt.Errorf("export state file %s: %w", s.path, err)
	}
	return nil
}

// exportCheckEvery is how many keys an export reads between looks at its
// context.
const exportCheckEvery = 1024

// each calls fn with every key/value of bucket in key order (fn must copy
// what it keeps), stopping when ctx ends.
func each(ctx context.Context, tx *bbolt.Tx, bucket []byte, fn func(k, v []byte) error) error {
	b := tx.Bucket(bucket)
	if b == nil {
		return nil
	}
	c := b.Cursor()
	n := 0
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n++; n%exportCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// eachUnpacked is each with the values decompressed (pack.go).
func (s *Store) eachUnpacked(ctx context.Context, tx *bbolt.Tx, bucket []byte, fn func(k, v []byte) error) error {
	return each(ctx, tx, bucket, func(k, v []byte) error {
		v, err := s.unpack(tx, bucket, v, nil)
		if err != nil {
			return s.badValue(bucket, k, err)
		}
		return fn(k, v)
	})
}

func (s *Store) exportCursors(ctx context.Context, tx *bbolt.Tx, fn func(Op) error) error {
	return each(ctx, tx, bucketCursors, func(k, v []byte) error {
		return fn(Op{Kind: OpSetCursor, Key: string(k), Cursor: nonNilBytes(bytes.Clone(v))})
	})
}

func (s *Store) exportRecords(ctx context.Context, tx *bbolt.Tx, fn func(Op) error) error {
	links := tx.Bucket(bucketLinks)
	return s.eachUnpacked(ctx, tx, bucketRecords, func(k, v []byte) error {
		r, err := decodeRecord(string(k), v)
		if err != nil {
			return s.badValue(bucketRecords, k, err)
		}
		if err := fn(Op{Kind: OpPutRecord, Record: r}); err != nil {
			return err
		}
		for _, sys := range sortedKeys(r.Links) {
			ext := r.Links[sys]
			if sys == "" || ext == "" || (links != nil && links.Get(pairKey(sys, ext)) != nil) {
				continue
			}
			if err := fn(Op{Kind: OpUnlink, System: sys, ID: ext}); err != nil {
				return err
			}
		}
		return nil
	})
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (s *Store) exportLinks(ctx context.Context, tx *bbolt.Tx, fn func(Op) error) error {
	return each(ctx, tx, bucketLinks, func(k, v []byte) error {
		sys, ext, _ := bytes.Cut(k, []byte{0})
		return fn(Op{Kind: OpLink, System: string(sys), ID: string(ext), Target: decodeLinkValue(v)})
	})
}

func (s *Store) exportFingerprints(ctx context.Context, tx *bbolt.Tx, fn func(Op) error) error {
	return s.eachUnpacked(ctx, tx, bucketFingerprints, func(k, v []byte) error {
		f, err := decodeFingerprint(v)
		if err != nil {
			return s.badValue(bucketFingerprints, k, err)
		}
		sys, ext, _ := bytes.Cut(k, []byte{0})
		return fn(Op{Kind: OpPutFingerprint, System: string(sys), ID: string(ext), Fingerprint: f})
	})
}

func (s *Store) exportIntents(ctx context.Context, tx *bbolt.Tx, fn func(Op) error) error {
	return s.eachUnpacked(ctx, tx, bucketIntents, func(k, v []byte) error {
		in, err := decodeIntent(v)
		if err != nil {
			return s.badValue(bucketIntents, k, err)
		}
		return fn(Op{Kind: OpPutIntent, System: in.System, ID: in.ID, Intent: &in})
	})
}

func (s *Store) exportDeadLetters(ctx context.Context, tx *bbolt.Tx, fn func(Op) error) error {
	return each(ctx, tx, bucketDeadLetters, func(k, v []byte) error {
		d, err := decodeDeadLetter(v)
		if err != nil {
			return s.badValue(bucketDeadLetters, k, err)
		}
		d.Key = string(k)
		return fn(Op{Kind: OpRestoreDeadLetter, Key: d.Key, DeadLetter: &d})
	})
}

func (s *Store) exportRuns(ctx context.Context, tx *bbolt.Tx, fn func(Op) error) error {
	return each(ctx, tx, bucketRuns, func(k, v []byte) error {
		r, err := decodeRun(v)
		if err != nil {
			return s.badValue(bucketRuns, k, err)
		}
		return fn(Op{Kind: OpPutRun, Run: &r})
	})
}

// Committer is what Copy writes to: any state engine (Storage).
type Committer interface {
	Commit(b *Batch) error
}

// DefaultCopyBatch is how many changes Copy commits at once when asked for
// zero or fewer.
const DefaultCopyBatch = 500

// Copy replays the export of src into dst, committing every batchSize
// changes (DefaultCopyBatch when zero or less), and returns how many of
// each kind it copied, under the names Stats uses (cursors, records,
// links, fingerprints, intents, deadletters, runs; the unlinks that keep a
// record's unindexed links out of the index are not counted). progress,
// when not nil, is called with the counts so far after each commit. dst
// holds a partial copy when Copy fails.
func Copy(ctx context.Context, src Exporter, dst Committer, batchSize int, progress func(map[string]int)) (map[string]int, error) {
	if batchSize <= 0 {
		batchSize = DefaultCopyBatch
	}
	counts := map[string]int{}
	for _, k := range CopiedKinds() {
		counts[k] = 0
	}
	var b Batch
	commit := func() error {
		if err := dst.Commit(&b); err != nil {
			return err
		}
		b.Reset()
		if progress != nil {
			progress(maps.Clone(counts))
		}
		return nil
	}
	err := src.Export(ctx, func(o Op) error {
		b.AddOp(o)
		if name := kindName(o.Kind); name != "" {
			counts[name]++
		}
		if b.Len() < batchSize {
			return nil
		}
		return commit()
	})
	if err == nil && b.Len() > 0 {
		err = commit()
	}
	return counts, err
}

// CopiedKinds returns the names Copy counts under, in export order.
func CopiedKinds() []string {
	return []string{"cursors", "records", "links", "fingerprints", "intents", "deadletters", "runs"}
}

func kindName(k OpKind) string {
	switch k {
	case OpSetCursor:
		return "cursors"
	case OpPutRecord:
		return "records"
	case OpLink:
		return "links"
	case OpPutFingerprint:
		return "fingerprints"
	case OpPutIntent:
		return "intents"
	case OpRestoreDeadLetter, OpPutDeadLetter:
		return "deadletters"
	case OpPutRun:
		return "runs"
	}
	return ""
}
