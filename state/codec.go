package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	fastjson "github.com/segmentio/encoding/json"

	"github.com/crmsync/crmsync/funnel"
)

// valueVersion is the "v" member of the JSON values whose format has not
// changed since schema version 1 (fingerprints, intents, dead letters,
// runs). recordVersion is the golden records' (2 since schema version 2;
// records written as 1 keep reading). A value format changes only together
// with SchemaVersion and a migration.
const (
	valueVersion  = 1
	recordVersion = 2
)

// The on-disk value shapes. They are declared here, apart from the exported
// types, so that renaming a Go field or a funnel JSON tag cannot silently
// change the file format; testdata/*.golden.json pins them.

type recordV1 struct {
	V       int                  `json:"v"`
	ID      string               `json:"id"`
	Fields  map[string]any       `json:"fields"`
	Links   map[string]string    `json:"links,omitempty"`
	Sources map[string]sourceV1  `json:"sources,omitempty"`
	Gone    map[string]time.Time `json:"gone,omitempty"`
}

type sourceV1 struct {
	System string    `json:"system"`
	At     time.Time `json:"at"`
}

// recordV2 is recordV1 without the id (the key is the id) and with the
// sources grouped: one entry per system and change time with the fields it
// set, instead of one entry per field. At most one group leaves out its
// fields: it owns every field of "fields" that no other group names (the
// common case, a record all of whose fields came from one read, stores one
// short group).
type recordV2 struct {
	V       int                  `json:"v"`
	Fields  map[string]any       `json:"fields"`
	Links   map[string]string    `json:"links,omitempty"`
	Sources []sourceGroupV2      `json:"sources,omitempty"`
	Gone    map[string]time.Time `json:"gone,omitempty"`
}

type sourceGroupV2 struct {
	System string    `json:"system"`
	At     time.Time `json:"at"`
	Fields []string  `json:"fields,omitempty"`
}

// recordLinksV1 decodes only the version and links of a stored record, in
// either format (PutRecord uses it to find links the record no longer has).
type recordLinksV1 struct {
	V     int               `json:"v"`
	Links map[string]string `json:"links,omitempty"`
}

type fingerprintV1 struct {
	V       int            `json:"v"`
	Hash    string         `json:"hash"`
	Entity  string         `json:"entity,omitempty"`
	Source  string         `json:"source,omitempty"`
	At      time.Time      `json:"at"`
	Payload map[string]any `json:"payload,omitempty"`
}

type intentV1 struct {
	V       int               `json:"v"`
	ID      string            `json:"id"`
	System  string            `json:"system"`
	Entity  string            `json:"entity,omitempty"`
	Flow    string            `json:"flow,omitempty"`
	At      time.Time         `json:"at"`
	Match   map[string]string `json:"match,omitempty"`
	Payload map[string]any    `json:"payload,omitempty"`
}

type deadLetterV1 struct {
	V            int             `json:"v"`
	Key          string          `json:"key"`
	Flow         string          `json:"flow"`
	System       string          `json:"system"`
	CanonicalID  string          `json:"canonical_id,omitempty"`
	SourceSystem string          `json:"source_system,omitempty"`
	SourceEntity string          `json:"source_entity,omitempty"`
	SourceID     string          `json:"source_id,omitempty"`
	Op           string          `json:"op,omitempty"`
	Pending      bool            `json:"pending,omitempty"`
	Dropped      bool            `json:"dropped,omitempty"`
	Error        string          `json:"error"`
	Attempts     int             `json:"attempts"`
	FirstAt      time.Time       `json:"first_at"`
	LastAt       time.Time       `json:"last_at"`
	Payload      json.RawMessage `json:"payload,omitempty"`
}

type runV1 struct {
	V        int                       `json:"v"`
	Flow     string                    `json:"flow"`
	Mode     string                    `json:"mode,omitempty"`
	Started  time.Time                 `json:"started"`
	Finished time.Time                 `json:"finished"`
	Error    string                    `json:"error,omitempty"`
	Counts   map[string]map[string]int `json:"counts,omitempty"`
}

// checkVersion rejects a value written in a format this build does not know.
func checkVersion(v int, what string) error {
	if v != valueVersion {
		return fmt.Errorf("%s value has format version %d, want %d", what, v, valueVersion)
	}
	return nil
}

// checkRecordVersion accepts the record formats this build reads (1 and 2).
func checkRecordVersion(v int) error {
	if v != 1 && v != recordVersion {
		return fmt.Errorf("record value has format version %d, want 1 or %d", v, recordVersion)
	}
	return nil
}

// encodeRecord writes r in the current record format (2).
func encodeRecord(r *funnel.Record) ([]byte, error) {
	v := recordV2{V: recordVersion, Fields: r.Fields, Links: r.Links, Gone: r.Gone, Sources: groupSources(r)}
	if v.Fields == nil {
		v.Fields = map[string]any{}
	}
	return fastjson.Marshal(v)
}

type sourceKey struct {
	system string
	at     time.Time // in UTC, so equal instants compare equal
}

// groupSources folds r.Sources into one group per system and change time,
// sorted by system, time, then field. The largest group whose fields are
// exactly those of r.Fields that no other group names leaves its list out.
func groupSources(r *funnel.Record) []sourceGroupV2 {
	if len(r.Sources) == 0 {
		return nil
	}
	idx := map[sourceKey]int{}
	var groups []sourceGroupV2
	for field, s := range r.Sources {
		k := sourceKey{system: s.System, at: s.At.UTC()}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, sourceGroupV2{System: k.system, At: k.at})
		}
		groups[i].Fields = append(groups[i].Fields, field)
	}
	for i := range groups {
		slices.Sort(groups[i].Fields)
	}
	slices.SortFunc(groups, func(a, b sourceGroupV2) int {
		if c := strings.Compare(a.System, b.System); c != 0 {
			return c
		}
		return a.At.Compare(b.At)
	})
	if i := implicitGroup(r, groups); i >= 0 {
		groups[i].Fields = nil
	}
	return groups
}

// implicitGroup returns the index of the largest group that may leave its
// fields out, or -1. Decoding gives such a group every field of r.Fields no
// other group names, which is exactly its own fields when every field with a
// value has a source and every field of the group has a value (a field a
// system emptied keeps its source but has no value: its group stays
// explicit).
func implicitGroup(r *funnel.Record, groups []sourceGroupV2) int {
	for f := range r.Fields {
		if _, ok := r.Sources[f]; !ok {
			return -1
		}
	}
	best := -1
	for i, g := range groups {
		if best >= 0 && len(g.Fields) <= len(groups[best].Fields) {
			continue
		}
		if allHaveValues(r, g.Fields) {
			best = i
		}
	}
	return best
}

func allHaveValues(r *funnel.Record, fields []string) bool {
	for _, f := range fields {
		if _, ok := r.Fields[f]; !ok {
			return false
		}
	}
	return true
}

// decodeRecord reads a stored record of either format; id is its key.
func decodeRecord(id string, data []byte) (*funnel.Record, error) {
	var head struct {
		V int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, err
	}
	if err := checkRecordVersion(head.V); err != nil {
		return nil, err
	}
	var r *funnel.Record
	var err error
	if head.V == 1 {
		r, err = decodeRecordV1(data)
	} else {
		r, err = decodeRecordV2(id, data)
	}
	if err != nil {
		return nil, err
	}
	if r.Fields == nil {
		r.Fields = map[string]any{}
	}
	if r.Links == nil {
		r.Links = map[string]string{}
	}
	return r, nil
}

func decodeRecordV1(data []byte) (*funnel.Record, error) {
	var v recordV1
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	r := &funnel.Record{ID: v.ID, Fields: v.Fields, Links: v.Links, Gone: v.Gone}
	if len(v.Sources) > 0 {
		r.Sources = make(map[string]funnel.Source, len(v.Sources))
		for k, s := range v.Sources {
			r.Sources[k] = funnel.Source{System: s.System, At: s.At}
		}
	}
	return r, nil
}

var errTwoImplicitGroups = errors.New("record value has two source groups without fields")

func decodeRecordV2(id string, data []byte) (*funnel.Record, error) {
	var v recordV2
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	r := &funnel.Record{ID: id, Fields: v.Fields, Links: v.Links, Gone: v.Gone}
	if len(v.Sources) == 0 {
		return r, nil
	}
	r.Sources = make(map[string]funnel.Source, len(v.Fields))
	implicit := -1
	for i, g := range v.Sources {
		if len(g.Fields) == 0 {
			if implicit >= 0 {
				return nil, errTwoImplicitGroups
			}
			implicit = i
			continue
		}
		for _, f := range g.Fields {
			r.Sources[f] = funnel.Source{System: g.System, At: g.At}
		}
	}
	if implicit >= 0 {
		g := v.Sources[implicit]
		for f := range v.Fields {
			if _, named := r.Sources[f]; !named {
				r.Sources[f] = funnel.Source{System: g.System, At: g.At}
			}
		}
	}
	return r, nil
}

func decodeRecordLinks(data []byte) (map[string]string, error) {
	var v recordLinksV1
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if err := checkRecordVersion(v.V); err != nil {
		return nil, err
	}
	return v.Links, nil
}

func encodeFingerprint(f Fingerprint) ([]byte, error) {
	return fastjson.Marshal(fingerprintV1{V: valueVersion, Hash: f.Hash, Entity: f.Entity, Source: f.Source,
		At: f.At.UTC(), Payload: f.Payload})
}

func decodeFingerprint(data []byte) (*Fingerprint, error) {
	var v fingerprintV1
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if err := checkVersion(v.V, "fingerprint"); err != nil {
		return nil, err
	}
	return &Fingerprint{Hash: v.Hash, Payload: v.Payload, Entity: v.Entity, At: v.At, Source: v.Source}, nil
}

func encodeIntent(in Intent) ([]byte, error) {
	return fastjson.Marshal(intentV1{V: valueVersion, ID: in.ID, System: in.System, Entity: in.Entity, Flow: in.Flow,
		At: in.At.UTC(), Match: in.Match, Payload: in.Payload})
}

func decodeIntent(data []byte) (Intent, error) {
	var v intentV1
	if err := json.Unmarshal(data, &v); err != nil {
		return Intent{}, err
	}
	if err := checkVersion(v.V, "intent"); err != nil {
		return Intent{}, err
	}
	return Intent{ID: v.ID, System: v.System, Entity: v.Entity, Match: v.Match, Payload: v.Payload, Flow: v.Flow, At: v.At}, nil
}

func toDeadLetterV1(d DeadLetter) (deadLetterV1, error) {
	v := deadLetterV1{V: valueVersion, Key: d.Key, Flow: d.Flow, System: d.System, CanonicalID: d.CanonicalID,
		SourceSystem: d.SourceSystem, SourceEntity: d.SourceEntity, SourceID: d.SourceID, Op: d.Op, Pending: d.Pending, Dropped: d.Dropped, Error: d.Error, Attempts: d.Attempts,
		FirstAt: d.FirstAt.UTC(), LastAt: d.LastAt.UTC()}
	if d.Payload != nil {
		raw, err := json.Marshal(d.Payload)
		if err != nil {
			return v, err
		}
		v.Payload = raw
	}
	return v, nil
}

func decodeDeadLetterV1(data []byte) (deadLetterV1, error) {
	var v deadLetterV1
	if err := json.Unmarshal(data, &v); err != nil {
		return v, err
	}
	return v, checkVersion(v.V, "dead letter")
}

func fromDeadLetterV1(v deadLetterV1) (DeadLetter, error) {
	d := DeadLetter{Key: v.Key, Flow: v.Flow, System: v.System, CanonicalID: v.CanonicalID, SourceSystem: v.SourceSystem, SourceEntity: v.SourceEntity,
		SourceID: v.SourceID, Op: v.Op, Pending: v.Pending, Dropped: v.Dropped, Error: v.Error, Attempts: v.Attempts, FirstAt: v.FirstAt, LastAt: v.LastAt}
	if len(v.Payload) > 0 {
		if err := json.Unmarshal(v.Payload, &d.Payload); err != nil {
			return d, err
		}
	}
	return d, nil
}

func decodeDeadLetter(data []byte) (DeadLetter, error) {
	v, err := decodeDeadLetterV1(data)
	if err != nil {
		return DeadLetter{}, err
	}
	return fromDeadLetterV1(v)
}

func encodeRun(r Run) ([]byte, error) {
	return json.Marshal(runV1{V: valueVersion, Flow: r.Flow, Mode: r.Mode, Started: r.Started.UTC(),
		Finished: r.Finished.UTC(), Error: r.Error, Counts: r.Counts})
}

func decodeRun(data []byte) (Run, error) {
	var v runV1
	if err := json.Unmarshal(data, &v); err != nil {
		return Run{}, err
	}
	if err := checkVersion(v.V, "run"); err != nil {
		return Run{}, err
	}
	return Run{Flow: v.Flow, Started: v.Started, Finished: v.Finished, Counts: v.Counts, Error: v.Error, Mode: v.Mode}, nil
}
