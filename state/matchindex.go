package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/bbolt"
)

// The match index is what the engine knows of a target system's records
// before it creates one there: for each match key (e-mail, registration
// number, ...) and normalised value, the records that hold it. It lives in
// state, so a restarted run refreshes it from where the last one left off
// instead of reading the whole target again, and no run holds it in memory.
//
// Per target system it holds:
//   - forward rows: match key, normalised value, record reference → the
//     record's entity and id (several records per value are allowed);
//   - reverse rows: record reference → the values it is indexed under, so
//     a record's old rows go when it is indexed again or removed;
//   - one meta entry (IndexMeta): which match keys it covers, whether its
//     full read finished, and the target's pull cursor to go on from.
//
// A record reference is the engine's key of the target record (its id, or
// entity:id where ids are scoped by entity).

// IndexEntry is one target record a match value points at.
type IndexEntry struct {
	Entity, ID string
}

// IndexValue is one match key and normalised value a record is indexed under.
type IndexValue struct {
	Key, Value string
}

// IndexMeta describes one target system's match index.
type IndexMeta struct {
	// Keys are the match keys the index covers.
	Keys []string `json:"keys"`
	// Complete is true once a full read of the target finished; until then
	// Cursor is where the interrupted read goes on.
	Complete bool `json:"complete,omitempty"`
	// Cursor is the target's pull cursor after the last page indexed: a
	// refresh pulls from it (the records changed since).
	Cursor []byte `json:"cursor,omitempty"`
	// At is when the meta entry was written (zero: set by the batch).
	At time.Time `json:"at"`
}

// IndexOp is an index change of a Batch, decoded for another state engine
// (Op.Index).
type IndexOp struct {
	System string
	// Ref is the record reference (IndexRecord, UnindexRecord).
	Ref string
	// Entry and Values are IndexRecord's record and the values it is
	// indexed under (sorted by key; empty: the record is only unindexed).
	Entry  IndexEntry
	Values []IndexValue
	// Meta is SetIndexMeta's entry.
	Meta *IndexMeta
}

// The kinds of index Op (Op.Index holds the change).
const (
	// OpIndexRecord replaces the index rows of one record.
	OpIndexRecord OpKind = 100 + iota
	// OpUnindexRecord removes the index rows of one record.
	OpUnindexRecord
	// OpSetIndexMeta replaces a system's IndexMeta.
	OpSetIndexMeta
	// OpResetIndex removes every row and the meta entry of a system's index.
	OpResetIndex
)

const (
	opIndexRecord opKind = 100 + iota
	opUnindexRecord
	opSetIndexMeta
	opResetIndex
)

// bucketMatchIndex holds one nested bucket per target system. It is made
// by the first commit that indexes something (Stats does not list it).
var bucketMatchIndex = []byte("matchindex")

// Row prefixes inside a system's bucket.
const (
	rowForward = 'f'
	rowReverse = 'r'
	rowMeta    = 'm'
)

// IndexRecord indexes the target record ref (entity and id in e) of system
// under values, replacing whatever it was indexed under before. Values that
// are empty or hold a NUL byte are left out; with none left, the record is
// only removed from the index.
func (b *Batch) IndexRecord(system, ref string, e IndexEntry, values []IndexValue) {
	if err := checkIndexRef("IndexRecord", system, ref); err != nil {
		b.fail(err)
		return
	}
	vals := make([]IndexValue, 0, len(values))
	for _, v := range values {
		if v.Key == "" || strings.IndexByte(v.Key, 0) >= 0 {
			b.fail(fmt.Errorf("IndexRecord %s/%s: bad match key %q", system, ref, v.Key))
			return
		}
		if v.Value == "" || strings.IndexByte(v.Value, 0) >= 0 {
			continue
		}
		vals = append(vals, v)
	}
	sort.Slice(vals, func(i, j int) bool {
		if vals[i].Key != vals[j].Key {
			return vals[i].Key < vals[j].Key
		}
		return vals[i].Value < vals[j].Value
	})
	b.ops = append(b.ops, op{kind: opIndexRecord, ix: &IndexOp{System: system, Ref: ref, Entry: e, Values: vals}})
}

// UnindexRecord removes the target record ref of system from the index (it
// is gone from the target).
func (b *Batch) UnindexRecord(system, ref string) {
	if err := checkIndexRef("UnindexRecord", system, ref); err != nil {
		b.fail(err)
		return
	}
	b.ops = append(b.ops, op{kind: opUnindexRecord, ix: &IndexOp{System: system, Ref: ref}})
}

// SetIndexMeta replaces the meta entry of system's index. A zero m.At is
// set to now.
func (b *Batch) SetIndexMeta(system string, m IndexMeta) {
	if err := CheckPair("SetIndexMeta", system, "-"); err != nil {
		b.fail(err)
		return
	}
	if m.At.IsZero() {
		m.At = time.Now()
	}
	m.Keys = append([]string(nil), m.Keys...)
	m.Cursor = bytes.Clone(m.Cursor)
	b.ops = append(b.ops, op{kind: opSetIndexMeta, ix: &IndexOp{System: system, Meta: &m}})
}

// ResetIndex removes system's whole index (rows and meta), before it is
// built again.
func (b *Batch) ResetIndex(system string) {
	if err := CheckPair("ResetIndex", system, "-"); err != nil {
		b.fail(err)
		return
	}
	b.ops = append(b.ops, op{kind: opResetIndex, ix: &IndexOp{System: system}})
}

func checkIndexRef(what, system, ref string) error {
	if err := CheckPair(what, system, ref); err != nil {
		return err
	}
	if strings.IndexByte(ref, 0) >= 0 {
		return fmt.Errorf("%s %s: reference %q contains a NUL byte", what, system, ref)
	}
	return nil
}

func isIndexOp(k opKind) bool { return k >= opIndexRecord && k <= opResetIndex }

// exportIndex is export for the index ops.
func (o *op) exportIndex() (Op, error) {
	kinds := map[opKind]OpKind{opIndexRecord: OpIndexRecord, opUnindexRecord: OpUnindexRecord,
		opSetIndexMeta: OpSetIndexMeta, opResetIndex: OpResetIndex}
	k, ok := kinds[o.kind]
	if !ok || o.ix == nil {
		return Op{}, fmt.Errorf("unknown batch op %d", o.kind)
	}
	ix := *o.ix
	ix.Values = append([]IndexValue(nil), ix.Values...)
	if ix.Meta != nil {
		m := *ix.Meta
		m.Keys = append([]string(nil), m.Keys...)
		m.Cursor = bytes.Clone(m.Cursor)
		ix.Meta = &m
	}
	return Op{Kind: k, System: ix.System, ID: ix.Ref, Index: &ix}, nil
}

// applyIndex applies one index op in a bbolt write transaction.
func applyIndex(tx *bbolt.Tx, o *op) error {
	ix := o.ix
	top, err := tx.CreateBucketIfNotExists(bucketMatchIndex)
	if err != nil {
		return err
	}
	if o.kind == opResetIndex {
		if top.Bucket([]byte(ix.System)) == nil {
			return nil
		}
		return top.DeleteBucket([]byte(ix.System))
	}
	sb, err := top.CreateBucketIfNotExists([]byte(ix.System))
	if err != nil {
		return err
	}
	sb.FillPercent = fillPercent // keys arrive in the target's order, not the index's
	switch o.kind {
	case opSetIndexMeta:
		v, err := json.Marshal(ix.Meta)
		if err != nil {
			return fmt.Errorf("SetIndexMeta %s: %w", ix.System, err)
		}
		return sb.Put([]byte{rowMeta}, v)
	case opUnindexRecord:
		return unindex(sb, ix.Ref)
	case opIndexRecord:
		if err := unindex(sb, ix.Ref); err != nil {
			return err
		}
		return index(sb, ix)
	}
	return fmt.Errorf("unknown batch op %d", o.kind)
}

// forwardPrefix is the key prefix of every forward row of key=value.
func forwardPrefix(key, value string) []byte {
	k := make([]byte, 0, len(key)+len(value)+3)
	k = append(k, rowForward)
	k = append(k, key...)
	k = append(k, 0)
	k = append(k, value...)
	return append(k, 0)
}

func reverseKey(ref string) []byte { return append([]byte{rowReverse}, ref...) }

// entryValue is a forward row's value: entity NUL id.
func entryValue(e IndexEntry) []byte { return pairKey(e.Entity, e.ID) }

// index writes ix's forward rows and its reverse row.
func index(sb *bbolt.Bucket, ix *IndexOp) error {
	if len(ix.Values) == 0 {
		return nil
	}
	ev := entryValue(ix.Entry)
	rev := make([]byte, 0, 64)
	for _, v := range ix.Values {
		if err := sb.Put(append(forwardPrefix(v.Key, v.Value), ix.Ref...), ev); err != nil {
			return err
		}
		rev = append(rev, v.Key...)
		rev = append(rev, 0)
		rev = append(rev, v.Value...)
		rev = append(rev, 0)
	}
	return sb.Put(reverseKey(ix.Ref), rev)
}

// unindex removes ref's forward rows (as its reverse row lists them) and
// the reverse row.
func unindex(sb *bbolt.Bucket, ref string) error {
	rk := reverseKey(ref)
	rev := sb.Get(rk)
	if rev == nil {
		return nil
	}
	parts := bytes.Split(bytes.TrimSuffix(rev, []byte{0}), []byte{0})
	if len(parts)%2 != 0 {
		return fmt.Errorf("match index row %q: %d parts", rk, len(parts))
	}
	var dels [][]byte
	for i := 0; i < len(parts); i += 2 {
		dels = append(dels, append(forwardPrefix(string(parts[i]), string(parts[i+1])), ref...))
	}
	for _, k := range dels {
		if err := sb.Delete(k); err != nil {
			return err
		}
	}
	return sb.Delete(rk)
}

// IndexLookup returns, for each match key and normalised value of values,
// the target records of system indexed under it, in reference order (none
// when there is no index), in one read.
func (s *Store) IndexLookup(system string, values []IndexValue) ([][]IndexEntry, error) {
	out := make([][]IndexEntry, len(values))
	err := s.view(func(tx *bbolt.Tx) error {
		sb := systemIndex(tx, system)
		if sb == nil {
			return nil
		}
		c := sb.Cursor()
		for i, v := range values {
			p := forwardPrefix(v.Key, v.Value)
			for k, ev := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, ev = c.Next() {
				entity, id, ok := bytes.Cut(ev, []byte{0})
				if !ok {
					return fmt.Errorf("match index row %q: bad value", k)
				}
				out[i] = append(out[i], IndexEntry{Entity: string(entity), ID: string(id)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up %d values in the match index of %s: %w", len(values), system, err)
	}
	return out, nil
}

// IndexEmpty reports whether system's index holds no record (its meta
// entry aside): then every lookup finds nothing, and the engine skips
// them while a first sync fills an empty target.
func (s *Store) IndexEmpty(system string) (bool, error) {
	empty := true
	err := s.view(func(tx *bbolt.Tx) error {
		sb := systemIndex(tx, system)
		if sb == nil {
			return nil
		}
		c := sb.Cursor()
		k, _ := c.First()
		if bytes.Equal(k, []byte{rowMeta}) {
			k, _ = c.Next()
		}
		empty = k == nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("read the match index of %s: %w", system, err)
	}
	return empty, nil
}

// IndexMeta returns the meta entry of system's index, or nil when it has
// none (never built, or reset).
func (s *Store) IndexMeta(system string) (*IndexMeta, error) {
	var m *IndexMeta
	err := s.view(func(tx *bbolt.Tx) error {
		sb := systemIndex(tx, system)
		if sb == nil {
			return nil
		}
		v := sb.Get([]byte{rowMeta})
		if v == nil {
			return nil
		}
		m = &IndexMeta{}
		return json.Unmarshal(v, m)
	})
	if err != nil {
		return nil, fmt.Errorf("read the match index of %s: %w", system, err)
	}
	return m, nil
}

func systemIndex(tx *bbolt.Tx, system string) *bbolt.Bucket {
	top := tx.Bucket(bucketMatchIndex)
	if top == nil {
		return nil
	}
	return top.Bucket([]byte(system))
}

// IndexStats counts a system's index rows: forward rows (one per record
// and value) and reverse rows (one per indexed record), and the bytes of
// their keys and values (for the bytes-per-record figure).
type IndexStats struct {
	Forward, Reverse int
	Bytes            int64
}

// IndexStats returns the row counts of system's index.
func (s *Store) IndexStats(system string) (IndexStats, error) {
	var st IndexStats
	err := s.view(func(tx *bbolt.Tx) error {
		sb := systemIndex(tx, system)
		if sb == nil {
			return nil
		}
		return sb.ForEach(func(k, v []byte) error {
			switch k[0] {
			case rowForward:
				st.Forward++
			case rowReverse:
				st.Reverse++
			}
			st.Bytes += int64(len(k) + len(v))
			return nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("count the match index of %s: %w", system, err)
	}
	return st, nil
}
