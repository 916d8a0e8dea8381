package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/s2"
	"go.etcd.io/bbolt"
)

// Values of the records, fingerprints and intents buckets are stored
// compressed (schema version 3) once their bucket has a dictionary: the
// byte packS2, the dictionary's id as a uvarint, then an S2 block
// (github.com/klauspost/compress/s2) of the value's JSON, compressed against
// the dictionary. A JSON value starts with '{', so readers tell the two
// apart by the first byte, and a value written by an older version, or
// before its bucket had a dictionary, reads as it is.
//
// A bucket's dictionary is made once, in the commit that brings it to
// dictMinValues values, from a sample spread over its stored values (up to
// dictMinValues of them, in key order) and the commit's, concatenated up to
// dictMaxBytes. It is stored in the meta bucket under
// "dict/<bucket>/<id as 8 hex digits>" and never changed;
// every value compressed against it names its id. The values of one record
// are short (a few hundred bytes) and share little with each other, so
// compressing each on its own gains little (s2 alone: 649 → 540 bytes for a
// golden record); against a dictionary of its neighbours' field names and
// common values it gains most (649 → 174, fingerprints 455 → 110).
//
// S2 rather than zstd or flate: with a dictionary it compresses these
// values about as well as zstd's fastest level (174 against 168 bytes for a
// golden record) at a fifth of the cost (3 µs against 15-25 µs to compress,
// 0.5 µs to decompress), because it has no entropy stage and sets up
// nothing per value; flate needs 50-150 µs to prime its window with the
// dictionary each time.
const packS2 byte = 0x01

const (
	// dictMinValues is how many values a bucket holds when its dictionary
	// is made from them.
	dictMinValues = 256
	// dictMaxBytes bounds a dictionary (s2 takes up to 64 KiB).
	dictMaxBytes = 32 << 10
	// maxUnpacked bounds what a compressed value may claim to decode to,
	// so that a damaged length cannot make a reader allocate gigabytes.
	maxUnpacked = 256 << 20
)

// dictFirstID is the id of a bucket's first dictionary.
const dictFirstID uint32 = 1

// packable reports whether the values of bucket may be stored compressed.
func packable(bucket []byte) bool {
	return bytes.Equal(bucket, bucketRecords) || bytes.Equal(bucket, bucketFingerprints) ||
		bytes.Equal(bucket, bucketIntents)
}

func dictPrefix(bucket []byte) []byte {
	return fmt.Appendf(nil, "dict/%s/", bucket)
}

func dictMetaKey(bucket []byte, id uint32) []byte {
	return fmt.Appendf(dictPrefix(bucket), "%08x", id)
}

// dict is one bucket's dictionary.
type dict struct {
	id uint32
	d  *s2.Dict
}

// dictCache holds the committed dictionaries of one Store, by bucket and id, and
// the newest of each bucket. A committed dictionary never changes, so an
// entry never goes stale; dictionaries made by a transaction are added
// only once it has committed.
type dictCache struct {
	mu     sync.Mutex
	byID   map[string]map[uint32]*s2.Dict // bucket → id → dictionary
	newest map[string]dict
}

func newDictCache() *dictCache {
	return &dictCache{byID: map[string]map[uint32]*s2.Dict{}, newest: map[string]dict{}}
}

func (c *dictCache) lookup(bucket []byte, id uint32) *s2.Dict {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[string(bucket)][id]
}

func (c *dictCache) newestOf(bucket []byte) (dict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.newest[string(bucket)]
	return d, ok
}

func (c *dictCache) add(bucket []byte, d dict) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := c.byID[string(bucket)]
	if ids == nil {
		ids = map[uint32]*s2.Dict{}
		c.byID[string(bucket)] = ids
	}
	ids[d.id] = d.d
	if cur, ok := c.newest[string(bucket)]; !ok || d.id > cur.id {
		c.newest[string(bucket)] = d
	}
}

// txPacker compresses the values one write transaction stores, and reads
// back the ones it compressed with a dictionary it made itself.
type txPacker struct {
	s       *Store
	tx      *bbolt.Tx
	fresh   map[string]dict // by bucket name: made in this transaction
	scratch []byte
}

func (s *Store) newTxPacker(tx *bbolt.Tx) *txPacker {
	return &txPacker{s: s, tx: tx, fresh: map[string]dict{}}
}

// committed adds the dictionaries the transaction made to the Store's
// cache; call it once the transaction has committed.
func (p *txPacker) committed() {
	for name, d := range p.fresh {
		p.s.dicts.add([]byte(name), d)
	}
}

// pack returns v as bucket stores it: compressed when the bucket has a
// dictionary and that makes it shorter, else v itself. The result is not reused: bbolt keeps it until
// the transaction ends.
func (p *txPacker) pack(bucket []byte, v []byte) ([]byte, error) {
	d, ok, err := p.dictFor(bucket)
	if err != nil || !ok {
		return v, err
	}
	p.scratch = d.d.Encode(p.scratch[:cap(p.scratch)], v)
	var head [1 + binary.MaxVarintLen32]byte
	head[0] = packS2
	n := 1 + binary.PutUvarint(head[1:], uint64(d.id))
	if n+len(p.scratch) >= len(v) {
		return v, nil
	}
	out := make([]byte, 0, n+len(p.scratch))
	return append(append(out, head[:n]...), p.scratch...), nil
}

// dictFor returns the dictionary values of bucket are compressed with, or
// false when it has none yet.
func (p *txPacker) dictFor(bucket []byte) (dict, bool, error) {
	if d, ok := p.fresh[string(bucket)]; ok {
		return d, true, nil
	}
	if d, ok := p.s.dicts.newestOf(bucket); ok {
		return d, true, nil
	}
	return p.s.loadNewestDict(p.tx, bucket)
}

// prepare makes the first dictionary of each packable bucket that has none
// and that this commit brings to dictMinValues values, before any of them is
// stored, so that they are compressed too. vals returns the commit's values
// for a bucket, in the order they were added; it is called only for a
// bucket that lacks a dictionary.
func (p *txPacker) prepare(vals func(bucket []byte) [][]byte) error {
	for _, bucket := range [][]byte{bucketRecords, bucketFingerprints, bucketIntents} {
		if _, ok, err := p.dictFor(bucket); err != nil || ok {
			if err != nil {
				return err
			}
			continue
		}
		if err := p.makeDict(bucket, vals(bucket)); err != nil {
			return err
		}
	}
	return nil
}

// makeDict makes the first dictionary of bucket from a sample of vals (the
// commit's new values) and of the values stored in it, when they are
// dictMinValues together, and stores it in the meta bucket. The sample is
// spread over them rather than their first ones: a page's values come in
// groups (one system's fingerprints, then another's), the stored values
// sort by system, and in a first sync the stored records are the final
// ones while a write-ahead commit's records have no target links yet.
func (p *txPacker) makeDict(bucket []byte, vals [][]byte) error {
	c := p.tx.Bucket(bucket).Cursor()
	var stored [][]byte
	for k, v := c.First(); k != nil && len(stored) < dictMinValues; k, v = c.Next() {
		stored = append(stored, v)
	}
	if len(vals)+len(stored) < dictMinValues {
		return nil
	}
	sample := spreadSample(append(stored, vals...), dictMaxBytes)
	sd := s2.MakeDict(sample, []byte(`{"v":`))
	if sd == nil {
		return nil // too short to be one (values of a few bytes)
	}
	d := dict{id: dictFirstID, d: sd}
	if err := p.tx.Bucket(bucketMeta).Put(dictMetaKey(bucket, d.id), sd.Bytes()); err != nil {
		return fmt.Errorf("store the dictionary of %s: %w", bucket, err)
	}
	p.fresh[string(bucket)] = d
	return nil
}

// spreadSample concatenates values taken at even steps over vs, up to
// limit bytes, leaving out compressed ones.
func spreadSample(vs [][]byte, limit int) []byte {
	total := 0
	for _, v := range vs {
		total += len(v)
	}
	step := 1
	if total > limit {
		step = (total + limit - 1) / limit
	}
	var out []byte
	for i := 0; i < len(vs); i += step {
		v := vs[i]
		if len(v) == 0 || v[0] == packS2 || len(out)+len(v) > limit {
			continue
		}
		out = append(out, v...)
	}
	return out
}

// loadNewestDict reads the newest committed dictionary of bucket from the
// meta bucket into the cache.
func (s *Store) loadNewestDict(tx *bbolt.Tx, bucket []byte) (dict, bool, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return dict{}, false, nil
	}
	prefix := dictPrefix(bucket)
	var last []byte
	c := meta.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		last = k
	}
	if last == nil {
		return dict{}, false, nil
	}
	var id uint32
	if _, err := fmt.Sscanf(string(last[len(prefix):]), "%08x", &id); err != nil || id == 0 {
		return dict{}, false, &corruptError{path: s.path, cause: fmt.Errorf("meta/%q is not a dictionary key", last)}
	}
	sd, err := s.dictByID(tx, bucket, id, nil)
	if err != nil {
		return dict{}, false, err
	}
	d := dict{id: id, d: sd}
	s.dicts.add(bucket, d)
	return d, true, nil
}

// dictByID returns dictionary id of bucket: one the current transaction
// made (fresh), a cached one, or one read from the meta bucket (committed,
// since fresh does not have it, so it is cached).
func (s *Store) dictByID(tx *bbolt.Tx, bucket []byte, id uint32, fresh map[string]dict) (*s2.Dict, error) {
	if d, ok := fresh[string(bucket)]; ok && d.id == id {
		return d.d, nil
	}
	if d := s.dicts.lookup(bucket, id); d != nil {
		return d, nil
	}
	key := dictMetaKey(bucket, id)
	var raw []byte
	if meta := tx.Bucket(bucketMeta); meta != nil {
		raw = meta.Get(key)
	}
	if raw == nil {
		return nil, fmt.Errorf("compressed with dictionary %d of %s, which the file does not hold", id, bucket)
	}
	d := s2.NewDict(bytes.Clone(raw))
	if d == nil {
		return nil, &corruptError{path: s.path, cause: fmt.Errorf("meta/%q is not a valid dictionary", key)}
	}
	s.dicts.add(bucket, dict{id: id, d: d})
	return d, nil
}

var errBadPacked = errors.New("compressed value with a bad header")

// unpack returns the JSON of a stored value of bucket: v itself when it is
// not compressed, else a fresh copy decompressed. fresh holds the
// dictionaries the current write transaction made (nil in a read).
func (s *Store) unpack(tx *bbolt.Tx, bucket, v []byte, fresh map[string]dict) ([]byte, error) {
	if len(v) == 0 || v[0] != packS2 || !packable(bucket) {
		return v, nil
	}
	id, n := binary.Uvarint(v[1:])
	if n <= 0 || id == 0 || id > math.MaxUint32 {
		return nil, errBadPacked
	}
	d, err := s.dictByID(tx, bucket, uint32(id), fresh)
	if err != nil {
		return nil, err
	}
	block := v[1+n:]
	size, err := s2.DecodedLen(block)
	if err != nil {
		return nil, fmt.Errorf("compressed value: %w", err)
	}
	if size > maxUnpacked {
		return nil, fmt.Errorf("compressed value claims %d bytes", size)
	}
	out, err := d.Decode(make([]byte, size), block)
	if err != nil {
		return nil, fmt.Errorf("compressed value: %w", err)
	}
	return out, nil
}
