package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/crmsync/crmsync/connectors"
	"github.com/crmsync/crmsync/funnel"
	"github.com/crmsync/crmsync/mapping"
)

// System is one configured CRM: its connector and its mapping.
type System struct {
	Name     string
	Conn     connectors.Connector
	Map      *mapping.Mapping
	PageSize int
}

// Key is how state refers to a native record of this system: its id, or
// "entity:id" when the connector's ids are unique only per entity.
func (s *System) Key(rec connectors.Record) string {
	if scoped, ok := s.Conn.(connectors.EntityScopedIDs); ok && scoped.IDsScopedByEntity() {
		return rec.Entity + ":" + rec.ID
	}
	return rec.ID
}

// RawID turns a Key back into the id the connector expects.
func (s *System) RawID(key string) string {
	if scoped, ok := s.Conn.(connectors.EntityScopedIDs); ok && scoped.IDsScopedByEntity() {
		if _, id, found := strings.Cut(key, ":"); found {
			return id
		}
	}
	return key
}

// Flow is one sync flow.
type Flow struct {
	Name    string
	Source  string
	Targets []Target
	// WriteConcurrency is how many writes run at once per target (0:
	// DefaultWriteConcurrency).
	WriteConcurrency int
	// AllowStageBack lets a record's stage move backwards.
	AllowStageBack bool
	// MatchKeys are the canonical fields used, in order, to find an existing
	// record in a target before creating one (default: email,
	// registration_number, vat_number, name). The first key that finds
	// exactly one record links it; several matches dead-letter the record.
	MatchKeys []string
	// Deletes says what happens in the targets when a record disappears
	// from the source.
	Deletes DeletePolicy
	// MaxRetries caps automatic retries of a dead letter (default 10);
	// `crmsync deadletters replay` still retries it by hand.
	MaxRetries int
}

// DeleteMode is what a deletion at the source does in the targets.
type DeleteMode string

// The delete modes.
const (
	// DeleteIgnore leaves the targets alone (the default).
	DeleteIgnore DeleteMode = "ignore"
	// DeleteClose marks the target records closed and inactive.
	DeleteClose DeleteMode = "close"
	// DeleteDelete deletes the target records.
	DeleteDelete DeleteMode = "delete"
)

// DeleteModes lists the modes.
func DeleteModes() []DeleteMode { return []DeleteMode{DeleteIgnore, DeleteClose, DeleteDelete} }

// The defaults of a flow's settings, applied by the engine to zero values.
const (
	DefaultWriteConcurrency = 4
	MaxWriteConcurrency     = 64
	DefaultMaxRetries       = 10
	DefaultMaxDeletesPerRun = 50
	DefaultReconcileEvery   = 24 * time.Hour
)

// DeletePolicy configures delete propagation.
type DeletePolicy struct {
	// Mode is DeleteIgnore ("" too), DeleteClose or DeleteDelete.
	Mode DeleteMode
	// MaxPerRun stops a reconciliation that would act on more records
	// (0: DefaultMaxDeletesPerRun).
	MaxPerRun int
	// Every is how often a reconciliation (a complete scan of the source)
	// runs, at the end of a sync (0: DefaultReconcileEvery; it runs on the
	// first sync).
	Every time.Duration
}

// Target is one destination of a flow, with an optional filter.
type Target struct {
	System string
	Kinds  []funnel.Kind
	Stages []funnel.Stage
	// CheckBeforeWrite makes the engine read a linked record before
	// updating it, to merge edits made there since crmsync last saw it
	// (set for targets that are also a source of some flow: two-way sync).
	CheckBeforeWrite bool
}

// Accepts reports whether the target's filter lets r through.
func (t Target) Accepts(r *funnel.Record) bool {
	if len(t.Kinds) > 0 {
		ok := false
		for _, k := range t.Kinds {
			ok = ok || r.Kind() == k
		}
		if !ok {
			return false
		}
	}
	if len(t.Stages) > 0 {
		ok := false
		for _, s := range t.Stages {
			ok = ok || r.Stage() == s
		}
		if !ok {
			return false
		}
	}
	return true
}

// Mode is what a run does.
type Mode string

// Run modes.
const (
	ModeSync     Mode = "sync"
	ModePlan     Mode = "plan"
	ModeBackfill Mode = "backfill"
)

// Counts are one system's counters for one run.
type Counts struct {
	Pulled    int `json:"pulled"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Converted int `json:"converted"`
	Unchanged int `json:"unchanged"`
	Skipped   int `json:"skipped"`
	Failed    int `json:"failed"`
	Deleted   int `json:"deleted"`
	Closed    int `json:"closed"`
	Linked    int `json:"linked"`  // matched to an existing record instead of created
	Retried   int `json:"retried"` // dead letters retried
}

func (c *Counts) asMap() map[string]int {
	return map[string]int{"pulled": c.Pulled, "created": c.Created, "updated": c.Updated, "converted": c.Converted,
		"unchanged": c.Unchanged, "skipped": c.Skipped, "failed": c.Failed, "deleted": c.Deleted, "closed": c.Closed,
		"linked": c.Linked, "retried": c.Retried}
}

// Writes is the number of writes the counts stand for.
func (c *Counts) Writes() int { return c.Created + c.Updated + c.Converted + c.Deleted + c.Closed }

// Change is one planned or performed write, for plan output and logs.
type Change struct {
	Target      string      `json:"target"`
	Op          Op          `json:"op"`
	CanonicalID string      `json:"canonical_id"`
	TargetID    string      `json:"target_id,omitempty"`
	Entity      string      `json:"entity,omitempty"`
	ToEntity    string      `json:"to_entity,omitempty"`
	Name        string      `json:"name,omitempty"`
	Fields      []FieldDiff `json:"fields,omitempty"`
	Error       string      `json:"error,omitempty"`
}

// FieldDiff is one native field's change.
type FieldDiff struct {
	Field string `json:"field"`
	Old   any    `json:"old"`
	New   any    `json:"new"`
}

// Result is the outcome of one flow run.
type Result struct {
	Flow     string             `json:"flow"`
	Mode     Mode               `json:"mode"`
	Started  time.Time          `json:"started"`
	Finished time.Time          `json:"finished"`
	Pages    int                `json:"pages"`
	Systems  map[string]*Counts `json:"systems"`
	Plan     []Change           `json:"plan,omitempty"`
	Stopped  bool               `json:"stopped,omitempty"` // ended early on a stop request
	Error    string             `json:"error,omitempty"`
	// Undelivered is what the flow still owes its targets after the run:
	// pending writes (retried by every run) and dead letters.
	Undelivered []Delivery `json:"undelivered,omitempty"`
	// Unsupported lists, once per target and capability, the writes a
	// target cannot do at all (BlueRockTel without a conversion route) and
	// how many records stayed as they were because of it.
	Unsupported []Unsupported `json:"unsupported,omitempty"`
}

// Unsupported is one capability a target lacks, reported once per run:
// "bluerocktel: convert prospects to customers: conversion not supported
// by this server" for Records records, which stay where they are.
type Unsupported struct {
	Target  string `json:"target"`
	Message string `json:"message"`
	Records int    `json:"records"`
}

func (r *Result) counts(system string) *Counts {
	c, ok := r.Systems[system]
	if !ok {
		c = &Counts{}
		r.Systems[system] = c
	}
	return c
}

// Progress reports a run's advance after each committed page.
type Progress struct {
	Flow    string
	Records int // records pulled so far
	Pages   int
	Total   int // the source's reported total, -1 when unknown
	// Reading, when set, names a target the run is reading once, before
	// its first creates, to match records that exist there already; Read
	// is how many it has read, and Done says the read is complete.
	Reading string
	Read    int
	Done    bool
}

// TwoWay returns f with CheckBeforeWrite set on every target that is the
// source of some flow (sources lists the source of every configured flow):
// such a target is edited by people too, so a linked record is read before
// each update and edits made there are merged instead of overwritten.
func TwoWay(f Flow, sources []string) Flow {
	out := f
	out.Targets = make([]Target, len(f.Targets))
	for i, t := range f.Targets {
		t.CheckBeforeWrite = t.CheckBeforeWrite || slices.Contains(sources, t.System)
		out.Targets[i] = t
	}
	return out
}

// CheckSystems checks the rules that span the systems' mappings: a
// canonical field has at most one owner (owner: true), so two systems never
// both win a conflict over it.
func CheckSystems(systems map[string]*System) error {
	names := slices.Sorted(maps.Keys(systems))
	var errs []error
	for _, field := range funnel.FieldNames() {
		var owners []string
		for _, name := range names {
			if m := systems[name].Map; m != nil && m.Owns(field) {
				owners = append(owners, m.File)
			}
		}
		if len(owners) > 1 {
			errs = append(errs, fmt.Errorf("canonical field %s has more than one owner (owner: true in %s); at most one system may own a field", field, strings.Join(owners, " and ")))
		}
	}
	return errors.Join(errs...)
}
