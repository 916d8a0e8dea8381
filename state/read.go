package state

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/crmsync/crmsync/funnel"
)

// Fingerprint is what crmsync last wrote to or read from one record of one
// system; the engine compares it with what comes back to suppress echoes.
type Fingerprint struct {
	// Hash is funnel.FingerprintValues of the native payload.
	Hash string
	// Payload is the native payload last written or read. Stored as JSON, so
	// numbers read back as float64, as connectors decode them.
	Payload map[string]any
	// Entity is the native entity the record lives in.
	Entity string
	// At is when the fingerprint was taken (stored in UTC; zero means now).
	At time.Time
	// Source is FingerprintRead or FingerprintWrite.
	Source string
}

// Values of Fingerprint.Source.
const (
	FingerprintRead  = "read"
	FingerprintWrite = "write"
)

// Intent is the write-ahead record of a create: stored and committed by
// PutIntents before the create is sent, deleted (Batch.DeleteIntent) in the
// page commit that records the created record's link. An intent found at
// start-up means the create's outcome is unknown: the engine runs Find with
// Match before creating again.
type Intent struct {
	// ID is the canonical id of the record being created.
	ID string
	// System is the target system of the create.
	System string
	// Entity is the native entity the record is created in.
	Entity string
	// Match holds the native field → value lookups that find the record if
	// the create did happen.
	Match map[string]string
	// Payload is the native payload sent.
	Payload map[string]any
	// Flow is the flow that sent the create.
	Flow string
	// At is when the intent was written (UTC; zero means now).
	At time.Time
}

// DeadLetter is a change that has not reached its target: a delivery entry
// of one flow, target and record. It is either pending (the target failed
// for a reason of its own: outage, 5xx, 429, 401/403, a lost answer, a
// cancelled request; retried by every run until it lands) or dead (the
// target refused the record itself; retried up to the flow's max_retries,
// then only by `deadletters replay`).
type DeadLetter struct {
	// Key identifies the dead letter; PutDeadLetter derives it with
	// DeadLetterKey, ignoring what is set here.
	Key string `json:"key"`
	// Flow and System are the flow and the target system of the change.
	Flow   string `json:"flow"`
	System string `json:"system"`
	// CanonicalID is the golden record's id, when there is one.
	CanonicalID string `json:"canonical_id,omitempty"`
	// SourceSystem, SourceEntity and SourceID name the record the change
	// came from (what a retry reads again).
	SourceSystem string `json:"source_system,omitempty"`
	SourceEntity string `json:"source_entity,omitempty"`
	SourceID     string `json:"source_id,omitempty"`
	// Op is the operation that failed (create, update, convert, delete).
	Op string `json:"op"`
	// Pending is true while the failure is the target's, not the record's:
	// the entry never expires and every run retries it.
	Pending bool `json:"pending,omitempty"`
	// Dropped is true once an operator dropped the entry: it is kept only
	// so the engine does not try the same content again (DeadLetters
	// leaves it out; DeadLetter returns it).
	Dropped bool `json:"dropped,omitempty"`
	// Error is the target's message (never secrets: the HTTP layer redacts).
	Error string `json:"error"`
	// Payload is the native payload that was rejected.
	Payload map[string]any `json:"payload,omitempty"`
	// Attempts counts how often the change was dead-lettered.
	Attempts int `json:"attempts"`
	// FirstAt and LastAt are the first and latest failure (UTC).
	FirstAt time.Time `json:"first_at"`
	LastAt  time.Time `json:"last_at"`
}

// DeadLetterKey is the key PutDeadLetter stores d under:
// "<flow>/<system>/<canonical id>", or "<flow>/<system>/<source system>:<source id>"
// when d has no canonical id. Failing again for the same record replaces
// the entry (counting the attempt) instead of adding one.
func DeadLetterKey(d DeadLetter) string {
	id := d.CanonicalID
	if id == "" {
		id = d.SourceSystem + ":" + d.SourceID
	}
	return d.Flow + "/" + d.System + "/" + id
}

// Run is one flow run, for `crmsync status`.
type Run struct {
	// Flow is the flow's name.
	Flow string `json:"flow"`
	// Started and Finished bound the run (UTC). Started is the key: a second
	// Run of the same flow with the same Started replaces the first.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Counts maps system → counter name → n.
	Counts map[string]map[string]int `json:"counts"`
	// Error is the error that ended the run, or "".
	Error string `json:"error,omitempty"`
	// Mode is sync, backfill or plan.
	Mode string `json:"mode"`
}

// MaxRunsPerFlow is how many runs per flow PutRun keeps; older ones are
// dropped in the same commit.
const MaxRunsPerFlow = 100

func pairKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, 0)
	return append(k, b...)
}

func runKey(flow string, started time.Time) []byte {
	k := make([]byte, 0, len(flow)+9)
	k = append(k, flow...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, uint64(started.UnixNano()))
}

// badValue reports a stored value that does not decode.
func (s *Store) badValue(bucket []byte, key []byte, err error) error {
	return &corruptError{path: s.path, cause: fmt.Errorf("%s/%q: %w", bucket, key, err)}
}

// get copies the value of key in bucket out of a read transaction.
func (s *Store) get(bucket, key []byte) ([]byte, error) {
	var out []byte
	err := s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		if v := b.Get(key); v != nil {
			out = bytes.Clone(v)
			if out == nil {
				out = []byte{}
			}
		}
		return nil
	})
	return out, err
}

// decodeAt calls decode with the value of key in bucket inside a read
// transaction, without copying it first (decode must copy what it keeps,
// as json.Unmarshal does). It reports whether the key was there; a decode
// error is reported as a corrupt value.
func (s *Store) decodeAt(bucket, key []byte, decode func(v []byte) error) (bool, error) {
	found := false
	err := s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		v := b.Get(key)
		if v == nil {
			return nil
		}
		found = true
		v, err := s.unpack(tx, bucket, v, nil)
		if err == nil {
			err = decode(v)
		}
		if err != nil {
			return s.badValue(bucket, key, err)
		}
		return nil
	})
	return found, err
}

// scan calls fn with every key/value of bucket starting with prefix, in key
// order, inside a read transaction (fn must copy what it keeps).
func (s *Store) scan(bucket, prefix []byte, fn func(k, v []byte) error) error {
	return s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			v, err := s.unpack(tx, bucket, v, nil)
			if err != nil {
				return s.badValue(bucket, k, err)
			}
			if err := fn(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// Cursor returns the cursor stored under key ("flow/<flow>/<system>",
// "backfill/<flow>", ...), or nil when there is none.
func (s *Store) Cursor(key string) ([]byte, error) {
	v, err := s.get(bucketCursors, []byte(key))
	if err != nil {
		return nil, fmt.Errorf("read cursor %s: %w", key, err)
	}
	return v, nil
}

// Link returns the canonical id linked to externalID in system, or "".
func (s *Store) Link(system, externalID string) (string, error) {
	v, err := s.get(bucketLinks, pairKey(system, externalID))
	if err != nil {
		return "", fmt.Errorf("read link %s/%s: %w", system, externalID, err)
	}
	if v == nil {
		return "", nil
	}
	return decodeLinkValue(v), nil
}

// Links returns every link of system: external id -> canonical id.
func (s *Store) Links(system string) (map[string]string, error) {
	out := map[string]string{}
	prefix := pairKey(system, "")
	err := s.scan(bucketLinks, prefix, func(k, v []byte) error {
		out[string(k[len(prefix):])] = decodeLinkValue(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read links of %s: %w", system, err)
	}
	return out, nil
}

// Record returns the golden record with canonical id id, or nil.
func (s *Store) Record(id string) (*funnel.Record, error) {
	var r *funnel.Record
	_, err := s.decodeAt(bucketRecords, []byte(id), func(v []byte) (err error) {
		r, err = decodeRecord(id, v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read record %s: %w", id, err)
	}
	return r, nil
}

// Fingerprint returns the fingerprint of externalID in system, or nil.
func (s *Store) Fingerprint(system, externalID string) (*Fingerprint, error) {
	var f *Fingerprint
	_, err := s.decodeAt(bucketFingerprints, pairKey(system, externalID), func(v []byte) (err error) {
		f, err = decodeFingerprint(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read fingerprint %s/%s: %w", system, externalID, err)
	}
	return f, nil
}

// PutIntents writes intents in their own committed transaction; call it
// before sending the creates they describe (or add them to the write-ahead
// batch with Batch.PutIntent). An intent with the same system and canonical
// id replaces the previous one. It is all-or-nothing.
func (s *Store) PutIntents(in []Intent) error {
	if len(in) == 0 {
		return nil
	}
	var b Batch
	for _, it := range in {
		b.PutIntent(it)
	}
	if b.err != nil {
		return fmt.Errorf("put intents: %w", b.err)
	}
	if err := s.Commit(&b); err != nil {
		return fmt.Errorf("put intents: %w", err)
	}
	return nil
}

// encodeIntentKV validates and encodes one intent for the intents bucket.
func encodeIntentKV(it Intent) (key, val []byte, err error) {
	if err := CheckPair("intent", it.System, it.ID); err != nil {
		return nil, nil, err
	}
	if it.At.IsZero() {
		it.At = time.Now()
	}
	v, err := encodeIntent(it)
	if err != nil {
		return nil, nil, fmt.Errorf("encode intent %s/%s: %w", it.System, it.ID, err)
	}
	return pairKey(it.System, it.ID), v, nil
}

// Intents lists the pending create intents of system ("" = every system),
// sorted by system then canonical id.
func (s *Store) Intents(system string) ([]Intent, error) {
	var prefix []byte
	if system != "" {
		prefix = pairKey(system, "")
	}
	var out []Intent
	err := s.scan(bucketIntents, prefix, func(k, v []byte) error {
		in, err := decodeIntent(v)
		if err != nil {
			return s.badValue(bucketIntents, k, err)
		}
		out = append(out, in)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read intents: %w", err)
	}
	return out, nil
}

// DeadLetters lists the dead letters of flow ("" = every flow), sorted by
// key, without the dropped ones.
func (s *Store) DeadLetters(flow string) ([]DeadLetter, error) {
	var prefix []byte
	if flow != "" {
		prefix = []byte(flow + "/")
	}
	var out []DeadLetter
	err := s.scan(bucketDeadLetters, prefix, func(k, v []byte) error {
		d, err := decodeDeadLetter(v)
		if err != nil {
			return s.badValue(bucketDeadLetters, k, err)
		}
		if (flow == "" || d.Flow == flow) && !d.Dropped {
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	return out, nil
}

// DeadLetter returns the dead letter stored under key, or nil.
func (s *Store) DeadLetter(key string) (*DeadLetter, error) {
	var d DeadLetter
	found, err := s.decodeAt(bucketDeadLetters, []byte(key), func(v []byte) (err error) {
		d, err = decodeDeadLetter(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read dead letter %s: %w", key, err)
	}
	if !found {
		return nil, nil
	}
	return &d, nil
}

// DropDeadLetter marks the dead letter stored under key as dropped, in its
// own transaction (`deadletters drop`): it leaves every list and retry,
// and the engine does not send the same content again; a later change of
// the source record is tried afresh. Dropping a missing key is not an error.
func (s *Store) DropDeadLetter(key string) error {
	if key == "" {
		return nil
	}
	err := s.update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketDeadLetters)
		old := bk.Get([]byte(key))
		if old == nil {
			return nil
		}
		v, err := decodeDeadLetterV1(old)
		if err != nil {
			return s.badValue(bucketDeadLetters, []byte(key), err)
		}
		v.Dropped, v.Pending = true, false
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), data)
	})
	if err != nil {
		return fmt.Errorf("drop dead letter %s: %w", key, err)
	}
	return nil
}

// LastRun returns the latest run of flow, or nil when it never ran.
func (s *Store) LastRun(flow string) (*Run, error) {
	runs, err := s.Runs(flow, 1)
	if err != nil || len(runs) == 0 {
		return nil, err
	}
	return &runs[0], nil
}

// Runs returns up to limit runs of flow ("" = every flow), newest first
// (by Started). A limit of zero or less returns every kept run.
func (s *Store) Runs(flow string, limit int) ([]Run, error) {
	var prefix []byte
	if flow != "" {
		prefix = pairKey(flow, "")
	}
	var out []Run
	err := s.scan(bucketRuns, prefix, func(k, v []byte) error {
		r, err := decodeRun(v)
		if err != nil {
			return s.badValue(bucketRuns, k, err)
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	// Keys sort by flow, then start time: newest first within one flow.
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.After(out[j].Started)
		}
		return strings.Compare(out[i].Flow, out[j].Flow) < 0
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// CheckPair validates the two parts of a system/id key (links,
// fingerprints, intents), for every state engine.
func CheckPair(what, system, id string) error {
	switch {
	case system == "":
		return fmt.Errorf("%s: empty system", what)
	case strings.IndexByte(system, 0) >= 0:
		return fmt.Errorf("%s: system %q contains a NUL byte", what, system)
	case id == "":
		return fmt.Errorf("%s %s: empty id", what, system)
	}
	return nil
}
