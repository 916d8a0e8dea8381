// Package logkey names the fields of crmsync's log lines, once, so that
// every package writes the same key for the same thing and a JSON log
// consumer can rely on them (docs/operations.md lists them). It imports
// nothing.
package logkey

const (
	// Flow is the flow's configured name.
	Flow = "flow"
	// Mode is the run's mode (sync, backfill, replay, plan).
	Mode = "mode"
	// System is a system's configured name (the key of systems: in the
	// config), whichever role it plays.
	System = "system"
	// Connector is a system's type (tribecrm, overplane, bluerocktel).
	Connector = "connector"
	// Target is the configured name of the system being written.
	Target = "target"
	// Op is a write operation (create, update, convert, delete).
	Op = "op"
	// SourceID is a record's id in the flow's source system.
	SourceID = "source_id"
	// TargetID is a record's id in the target system.
	TargetID = "target_id"
	// RecordID is a record's id in the system whose connector logs it.
	RecordID = "record_id"
	// CanonicalID is the golden record's id.
	CanonicalID = "canonical_id"
	// DeadLetterKey is a dead letter's key (crmsync deadletters show KEY).
	DeadLetterKey = "dead_letter_key"
	// MatchKey is the value a record is matched on before a create.
	MatchKey = "match_key"
)
