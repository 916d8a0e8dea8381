package connectors

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an error for the engine.
type Kind int

const (
	// Retryable: 5xx, 429, timeouts, connection resets. The flow stops for
	// this run and the cursor stays; the next run retries.
	Retryable Kind = iota + 1
	// Rejected: the API refused this record (4xx validation, 409 conflict).
	// The record goes to dead letters with the API's message; the flow goes on.
	Rejected
	// Auth: 401, the credentials are refused: nothing of the system can be
	// read or written. A source stops the run; a target is down for it.
	Auth
	// NotFound: the record does not exist (404).
	NotFound
	// OutcomeUnknown: a non-idempotent write (create) may or may not have
	// happened (timeout or reset after the request was sent). The engine
	// keeps its create intent and looks the record up before any new create.
	OutcomeUnknown
	// Forbidden: 403, the credentials are good but may not act on this
	// resource (a BlueRockTel sales user and a prospect not visible to
	// sales). On a target's record it is the target refusing that record:
	// a dead letter, and the run goes on; a source that may not list its
	// collection stops the run.
	Forbidden
	// Unsupported: the server lacks the capability (BlueRockTel without a
	// prospect -> customer conversion route). Not the record's fault: the
	// engine leaves the record where it is and reports the capability once
	// per run with the number of records it concerns.
	Unsupported
)

func (k Kind) String() string {
	switch k {
	case Retryable:
		return "retryable"
	case Rejected:
		return "rejected"
	case Auth:
		return "auth"
	case NotFound:
		return "not found"
	case OutcomeUnknown:
		return "outcome unknown"
	case Forbidden:
		return "forbidden"
	case Unsupported:
		return "unsupported"
	}
	return "unknown"
}

// Error is the typed error every connector returns for API failures.
// Its message never contains a credential.
type Error struct {
	System     string        // "tribecrm", ...
	Op         string        // "pull", "create", "GET /v1/odata/X", ...
	Kind       Kind          // how the engine should react
	Status     int           // HTTP status, 0 when there was no response
	Message    string        // the API's own message (validation text), if any
	RetryAfter time.Duration // server-requested wait on 429/503, if any
	Err        error         // underlying error, if any
}

func (e *Error) Error() string {
	s := e.System + ": " + e.Op
	if e.Status != 0 {
		s += fmt.Sprintf(": HTTP %d", e.Status)
	}
	s += " (" + e.Kind.String() + ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of the first *Error in err's chain, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// IsRetryable reports whether err is a transient failure worth a later retry.
func IsRetryable(err error) bool { return KindOf(err) == Retryable }

// IsRejected reports whether the API refused the record itself.
func IsRejected(err error) bool { return KindOf(err) == Rejected }

// IsAuth reports whether err is an authentication failure (401).
func IsAuth(err error) bool { return KindOf(err) == Auth }

// IsForbidden reports whether err is a refusal of one resource (403).
func IsForbidden(err error) bool { return KindOf(err) == Forbidden }

// IsUnsupported reports whether the server lacks the capability asked for.
func IsUnsupported(err error) bool { return KindOf(err) == Unsupported }

// IsNotFound reports whether the record does not exist.
func IsNotFound(err error) bool { return KindOf(err) == NotFound }

// IsOutcomeUnknown reports whether a write may or may not have happened.
func IsOutcomeUnknown(err error) bool { return KindOf(err) == OutcomeUnknown }
