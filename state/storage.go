package state

import (
	"net/url"
	"strings"

	"github.com/crmsync/crmsync/funnel"
)

// Storage is what a state engine offers the engine, the CLI and the daemon:
// the methods of Store (bbolt), kept with the same meaning by every other
// engine (state/pgstate). state/statetest is its contract suite.
type Storage interface {
	Commit(b *Batch) error
	Cursor(key string) ([]byte, error)
	Link(system, externalID string) (string, error)
	Links(system string) (map[string]string, error)
	Record(id string) (*funnel.Record, error)
	Fingerprint(system, externalID string) (*Fingerprint, error)
	PutIntents(in []Intent) error
	Intents(system string) ([]Intent, error)
	DeadLetters(flow string) ([]DeadLetter, error)
	DeadLetter(key string) (*DeadLetter, error)
	DropDeadLetter(key string) error
	LastRun(flow string) (*Run, error)
	Runs(flow string, limit int) ([]Run, error)
	Stats() (map[string]int, error)
	// IndexLookup, IndexMeta and IndexEmpty read the match index
	// (matchindex.go).
	IndexLookup(system string, values []IndexValue) ([][]IndexEntry, error)
	IndexMeta(system string) (*IndexMeta, error)
	IndexEmpty(system string) (bool, error)
	Close() error
}

var _ Storage = (*Store)(nil)

// IsURL reports whether a configured state names a database
// (postgres:// or postgresql://) rather than a bbolt file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Describe names a configured state for messages and logs: a file as it
// is, a database URL without its password (and without its query, which
// may carry one).
func Describe(s string) string {
	if !IsURL(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable postgres:// URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	u.RawQuery = ""
	return u.String()
}
