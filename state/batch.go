package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/crmsync/crmsync/funnel"
)

type opKind uint8

const (
	opSetCursor opKind = iota
	opDeleteCursor
	opPutRecord
	opLink
	opUnlink
	opPutFingerprint
	opPutIntent
	opDeleteIntent
	opPutDeadLetter
	opDeleteDeadLetter
	opPutRun
	opRestoreDeadLetter
)

// op is one accumulated change, already encoded.
type op struct {
	kind  opKind
	key   []byte
	val   []byte
	id    string            // opPutRecord: canonical id
	links map[string]string // opPutRecord: the record's links (a copy)
	dl    *deadLetterV1     // opPutDeadLetter: merged with the stored one at commit (opRestoreDeadLetter: not)
	flow  string            // opPutRun: prefix for trimming
	ix    *IndexOp          // the match index ops (matchindex.go)
}

// Batch accumulates the changes of one handled page; Store.Commit applies
// them in one bbolt transaction, in the order they were added, or not at
// all. The zero value is an empty batch ready to use.
//
// Values are validated, copied and JSON-encoded when they are added, so the
// caller may change what it passed in right away. An invalid value (an empty
// id, a NUL in a system name, a payload json cannot encode) does not panic
// or write anything: it makes Commit fail with that error and write nothing.
//
// Timestamps left zero are set to time.Now() when the change is added. A
// Batch is not safe for concurrent use.
type Batch struct {
	ops []op
	err error
}

func (b *Batch) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// Empty reports whether nothing was added since the batch was made or Reset.
func (b *Batch) Empty() bool { return b == nil || (len(b.ops) == 0 && b.err == nil) }

// Len is the number of changes added.
func (b *Batch) Len() int {
	if b == nil {
		return 0
	}
	return len(b.ops)
}

// Reset empties the batch for reuse, keeping its allocated capacity.
func (b *Batch) Reset() {
	clear(b.ops)
	b.ops = b.ops[:0]
	b.err = nil
}

// SetCursor stores c under key (see Store.Cursor). A nil c deletes the
// cursor, so the next pull starts from the beginning.
func (b *Batch) SetCursor(key string, c []byte) {
	if key == "" {
		b.fail(errors.New("SetCursor: empty key"))
		return
	}
	if c == nil {
		b.ops = append(b.ops, op{kind: opDeleteCursor, key: []byte(key)})
		return
	}
	b.ops = append(b.ops, op{kind: opSetCursor, key: []byte(key), val: bytes.Clone(c)})
}

// PutRecord stores the golden record r under r.ID. In the same commit it
// links system/external id → r.ID for every entry of r.Links, and removes
// the links that the stored record had and r no longer has (unless another
// record has taken them over since).
func (b *Batch) PutRecord(r *funnel.Record) {
	if r == nil {
		b.fail(errors.New("PutRecord: nil record"))
		return
	}
	if r.ID == "" {
		b.fail(errors.New("PutRecord: record has an empty id"))
		return
	}
	links := make(map[string]string, len(r.Links))
	for sys, ext := range r.Links {
		if err := CheckPair("link", sys, ext); err != nil {
			b.fail(fmt.Errorf("PutRecord %s: %w", r.ID, err))
			return
		}
		links[sys] = ext
	}
	v, err := encodeRecord(r)
	if err != nil {
		b.fail(fmt.Errorf("PutRecord %s: encode: %w", r.ID, err))
		return
	}
	b.ops = append(b.ops, op{kind: opPutRecord, key: []byte(r.ID), val: v, id: r.ID, links: links})
}

// Link links externalID in system to canonicalID, replacing any link it had.
// It does not change the golden record's Links (PutRecord does both).
func (b *Batch) Link(system, externalID, canonicalID string) {
	if err := CheckPair("Link", system, externalID); err != nil {
		b.fail(err)
		return
	}
	if canonicalID == "" {
		b.fail(fmt.Errorf("Link %s/%s: empty canonical id", system, externalID))
		return
	}
	b.ops = append(b.ops, op{kind: opLink, key: pairKey(system, externalID), val: []byte(canonicalID)})
}

// Unlink removes the link of externalID in system, if any.
func (b *Batch) Unlink(system, externalID string) {
	if err := CheckPair("Unlink", system, externalID); err != nil {
		b.fail(err)
		return
	}
	b.ops = append(b.ops, op{kind: opUnlink, key: pairKey(system, externalID)})
}

// PutFingerprint stores f for externalID in system, replacing the previous
// one. A zero f.At is set to now.
func (b *Batch) PutFingerprint(system, externalID string, f Fingerprint) {
	if err := CheckPair("PutFingerprint", system, externalID); err != nil {
		b.fail(err)
		return
	}
	if f.At.IsZero() {
		f.At = time.Now()
	}
	v, err := encodeFingerprint(f)
	if err != nil {
		b.fail(fmt.Errorf("PutFingerprint %s/%s: encode: %w", system, externalID, err))
		return
	}
	b.ops = append(b.ops, op{kind: opPutFingerprint, key: pairKey(system, externalID), val: v})
}

// PutIntent stores the create intent in (replacing one with the same system
// and canonical id). The engine's write-ahead commits the intents of a page
// together with the golden records they refer to, in one transaction,
// before sending any create. A zero in.At is set to now.
func (b *Batch) PutIntent(in Intent) {
	key, v, err := encodeIntentKV(in)
	if err != nil {
		b.fail(err)
		return
	}
	b.ops = append(b.ops, op{kind: opPutIntent, key: key, val: v})
}

// DeleteIntent removes the create intent of canonicalID in system, if any;
// add it to the commit that records the created record's link.
func (b *Batch) DeleteIntent(system, canonicalID string) {
	if err := CheckPair("DeleteIntent", system, canonicalID); err != nil {
		b.fail(err)
		return
	}
	b.ops = append(b.ops, op{kind: opDeleteIntent, key: pairKey(system, canonicalID)})
}

// PutDeadLetter stores d under DeadLetterKey(d). When a dead letter already
// exists under that key, it is replaced but keeps its FirstAt and its
// Attempts count plus one; a new one starts at max(d.Attempts, 1). Zero
// LastAt is set to now, zero FirstAt to LastAt.
func (b *Batch) PutDeadLetter(d DeadLetter) {
	if d.Flow == "" || d.System == "" {
		b.fail(fmt.Errorf("PutDeadLetter: flow %q and system %q must both be set", d.Flow, d.System))
		return
	}
	if d.CanonicalID == "" && (d.SourceSystem == "" || d.SourceID == "") {
		b.fail(fmt.Errorf("PutDeadLetter %s/%s: needs a canonical id or a source system and id", d.Flow, d.System))
		return
	}
	d.Key = DeadLetterKey(d)
	if d.LastAt.IsZero() {
		d.LastAt = time.Now()
	}
	if d.FirstAt.IsZero() {
		d.FirstAt = d.LastAt
	}
	if d.Attempts < 1 {
		d.Attempts = 1
	}
	v, err := toDeadLetterV1(d)
	if err != nil {
		b.fail(fmt.Errorf("PutDeadLetter %s: encode payload: %w", d.Key, err))
		return
	}
	b.ops = append(b.ops, op{kind: opPutDeadLetter, key: []byte(d.Key), dl: &v})
}

// DeleteDeadLetter removes the dead letter stored under key, if any (after
// a successful replay).
func (b *Batch) DeleteDeadLetter(key string) {
	if key == "" {
		b.fail(errors.New("DeleteDeadLetter: empty key"))
		return
	}
	b.ops = append(b.ops, op{kind: opDeleteDeadLetter, key: []byte(key)})
}

// PutRun records a run of r.Flow (a zero r.Started is set to now). Only the
// newest MaxRunsPerFlow runs of each flow are kept.
func (b *Batch) PutRun(r Run) {
	if r.Flow == "" || strings.IndexByte(r.Flow, 0) >= 0 {
		b.fail(fmt.Errorf("PutRun: bad flow name %q", r.Flow))
		return
	}
	if r.Started.IsZero() {
		r.Started = time.Now()
	}
	v, err := encodeRun(r)
	if err != nil {
		b.fail(fmt.Errorf("PutRun %s: encode: %w", r.Flow, err))
		return
	}
	b.ops = append(b.ops, op{kind: opPutRun, key: runKey(r.Flow, r.Started), val: v, flow: r.Flow})
}

// Commit applies every change of b in one bbolt transaction: all of them
// are durable (fsynced) when it returns nil, and none is when it returns an
// error. An empty or nil batch commits nothing. Commit does not change b.
func (s *Store) Commit(b *Batch) error {
	if b.Empty() {
		return nil
	}
	if b.err != nil {
		return fmt.Errorf("commit state batch: nothing written: %w", b.err)
	}
	var pk *txPacker
	err := s.update(func(tx *bbolt.Tx) error {
		pk = s.newTxPacker(tx)
		t := txBuckets{
			tx:           tx,
			pack:         pk,
			cursors:      tx.Bucket(bucketCursors),
			records:      tx.Bucket(bucketRecords),
			links:        tx.Bucket(bucketLinks),
			fingerprints: tx.Bucket(bucketFingerprints),
			intents:      tx.Bucket(bucketIntents),
			deadLetters:  tx.Bucket(bucketDeadLetters),
			runs:         tx.Bucket(bucketRuns),
		}
		for _, bk := range []*bbolt.Bucket{t.records, t.links, t.fingerprints} {
			bk.FillPercent = fillPercent
		}
		if err := pk.prepare(b.packedValues); err != nil {
			return err
		}
		for i := range b.ops {
			if err := s.apply(&t, &b.ops[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit state batch: nothing written: %w", err)
	}
	pk.committed()
	return nil
}

// packedValues returns the values of b that go to bucket (records,
// fingerprints or intents), in the order added.
func (b *Batch) packedValues(bucket []byte) [][]byte {
	kind := opPutIntent
	switch {
	case bytes.Equal(bucket, bucketRecords):
		kind = opPutRecord
	case bytes.Equal(bucket, bucketFingerprints):
		kind = opPutFingerprint
	}
	var out [][]byte
	for i := range b.ops {
		if b.ops[i].kind == kind {
			out = append(out, b.ops[i].val)
		}
	}
	return out
}

// fillPercent is how full bbolt packs the pages it splits in the buckets
// keyed by random ids (records, links, fingerprints). With random keys a
// split page goes on taking inserts on both sides, so packing the first
// one full only leaves the second one nearly empty: in a first sync of
// 10,000 records (scripts/bench.sh) these buckets were 47-61 % full at 0.9,
// 60-68 % at 0.5, 64-68 % at 0.6 and 0.7, 57-61 % at 0.8 (1,835 bytes of
// file a record at 0.7, 2,375 at 0.9). BenchmarkEnginePage, whose pages
// each bring a new slice of keys, prefers 0.9 slightly (1,378 against
// 1,394 bytes); the real run decides.
const fillPercent = 0.7

type txBuckets struct {
	tx                                                                *bbolt.Tx
	pack                                                              *txPacker
	cursors, records, links, fingerprints, intents, deadLetters, runs *bbolt.Bucket
}

func (s *Store) apply(t *txBuckets, o *op) error {
	switch o.kind {
	case opSetCursor:
		return t.cursors.Put(o.key, o.val)
	case opDeleteCursor:
		return t.cursors.Delete(o.key)
	case opPutRecord:
		return s.applyRecord(t, o)
	case opLink:
		return t.links.Put(o.key, encodeLinkValue(string(o.val)))
	case opUnlink:
		return t.links.Delete(o.key)
	case opPutFingerprint:
		return t.packPut(bucketFingerprints, t.fingerprints, o.key, o.val)
	case opPutIntent:
		return t.packPut(bucketIntents, t.intents, o.key, o.val)
	case opDeleteIntent:
		return t.intents.Delete(o.key)
	case opPutDeadLetter:
		return s.applyDeadLetter(t, o)
	case opDeleteDeadLetter:
		return t.deadLetters.Delete(o.key)
	case opPutRun:
		return applyRun(t, o)
	case opRestoreDeadLetter:
		return applyRestoreDeadLetter(t, o)
	}
	if isIndexOp(o.kind) {
		return applyIndex(t.tx, o)
	}
	return fmt.Errorf("unknown batch op %d", o.kind)
}

// packPut stores val under key in b (named name), compressed when b has a
// dictionary.
func (t *txBuckets) packPut(name []byte, b *bbolt.Bucket, key, val []byte) error {
	v, err := t.pack.pack(name, val)
	if err != nil {
		return err
	}
	return b.Put(key, v)
}

func (s *Store) applyRecord(t *txBuckets, o *op) error {
	var oldLinks map[string]string
	if old := t.records.Get(o.key); old != nil {
		l, err := s.oldLinks(t, o.key, old)
		if err != nil {
			return fmt.Errorf("PutRecord %s: %w", o.id, s.badValue(bucketRecords, o.key, err))
		}
		oldLinks = l
	}
	if err := t.packPut(bucketRecords, t.records, o.key, o.val); err != nil {
		return fmt.Errorf("PutRecord %s: %w", o.id, err)
	}
	for sys, ext := range o.links {
		if old, ok := oldLinks[sys]; ok && old == ext {
			if v := t.links.Get(pairKey(sys, ext)); v != nil && decodeLinkValue(v) == o.id {
				continue // unchanged: rewriting the row would only dirty its page
			}
		}
		if err := t.links.Put(pairKey(sys, ext), encodeLinkValue(o.id)); err != nil {
			return fmt.Errorf("PutRecord %s: link %s/%s: %w", o.id, sys, ext, err)
		}
	}
	for sys, ext := range oldLinks {
		if o.links[sys] == ext || sys == "" || ext == "" {
			continue
		}
		k := pairKey(sys, ext)
		if v := t.links.Get(k); v != nil && decodeLinkValue(v) == o.id {
			if err := t.links.Delete(k); err != nil {
				return fmt.Errorf("PutRecord %s: unlink %s/%s: %w", o.id, sys, ext, err)
			}
		}
	}
	return nil
}

// oldLinks decodes the links of the stored record old.
func (s *Store) oldLinks(t *txBuckets, key, old []byte) (map[string]string, error) {
	raw, err := s.unpack(t.pack.tx, bucketRecords, old, t.pack.fresh)
	if err != nil {
		return nil, err
	}
	return decodeRecordLinks(raw)
}

func (s *Store) applyDeadLetter(t *txBuckets, o *op) error {
	d := *o.dl
	if old := t.deadLetters.Get(o.key); old != nil {
		prev, err := decodeDeadLetterV1(old)
		if err != nil {
			return fmt.Errorf("PutDeadLetter %s: %w", o.key, s.badValue(bucketDeadLetters, o.key, err))
		}
		d.Attempts = prev.Attempts + 1
		if !prev.FirstAt.IsZero() {
			d.FirstAt = prev.FirstAt
		}
	}
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("PutDeadLetter %s: encode: %w", o.key, err)
	}
	return t.deadLetters.Put(o.key, v)
}

func applyRun(t *txBuckets, o *op) error {
	if err := t.runs.Put(o.key, o.val); err != nil {
		return err
	}
	prefix := pairKey(o.flow, "")
	c := t.runs.Cursor()
	n := 0
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	if n <= MaxRunsPerFlow {
		return nil
	}
	// Keys sort oldest first within a flow: drop the first n-Max.
	drop := make([][]byte, 0, n-MaxRunsPerFlow)
	for k, _ := c.Seek(prefix); k != nil && len(drop) < n-MaxRunsPerFlow; k, _ = c.Next() {
		drop = append(drop, bytes.Clone(k))
	}
	for _, k := range drop {
		if err := t.runs.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
