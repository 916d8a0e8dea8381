package state

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/crmsync/crmsync/funnel"
)

// valueVersion is the "v" member of every JSON value this package writes.
// It changes only together with SchemaVersion and a migration.
const valueVersion = 1

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

// recordLinksV1 decodes only the links of a stored record (PutRecord uses it
// to find links the record no longer has).
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

func encodeRecord(r *funnel.Record) ([]byte, error) {
	v := recordV1{V: valueVersion, ID: r.ID, Fields: r.Fields, Links: r.Links, Gone: r.Gone}
	if v.Fields == nil {
		v.Fields = map[string]any{}
	}
	if len(r.Sources) > 0 {
		v.Sources = make(map[string]sourceV1, len(r.Sources))
		for k, s := range r.Sources {
			v.Sources[k] = sourceV1{System: s.System, At: s.At.UTC()}
		}
	}
	return json.Marshal(v)
}

func decodeRecord(data []byte) (*funnel.Record, error) {
	var v recordV1
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if err := checkVersion(v.V, "record"); err != nil {
		return nil, err
	}
	r := &funnel.Record{ID: v.ID, Fields: v.Fields, Links: v.Links, Gone: v.Gone}
	if r.Fields == nil {
		r.Fields = map[string]any{}
	}
	if r.Links == nil {
		r.Links = map[string]string{}
	}
	if len(v.Sources) > 0 {
		r.Sources = make(map[string]funnel.Source, len(v.Sources))
		for k, s := range v.Sources {
			r.Sources[k] = funnel.Source{System: s.System, At: s.At}
		}
	}
	return r, nil
}

func decodeRecordLinks(data []byte) (map[string]string, error) {
	var v recordLinksV1
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if err := checkVersion(v.V, "record"); err != nil {
		return nil, err
	}
	return v.Links, nil
}

func encodeFingerprint(f Fingerprint) ([]byte, error) {
	return json.Marshal(fingerprintV1{V: valueVersion, Hash: f.Hash, Entity: f.Entity, Source: f.Source,
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
	return json.Marshal(intentV1{V: valueVersion, ID: in.ID, System: in.System, Entity: in.Entity, Flow: in.Flow,
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
