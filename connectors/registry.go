package connectors

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/crmsync/crmsync/connectors/emukit"
)

// Paging defaults every connector shares (a system's page_size and overlap
// keys; 0 in a Settings means these).
const (
	// DefaultPageSize is the records asked for per list page.
	DefaultPageSize = 100
	// MaxPageSize is the largest page_size a configuration may ask for.
	MaxPageSize = 1000
	// DefaultOverlap is how far behind its saved position a time-based pull
	// starts again, so that writes stamped with the cursor's own time after
	// it was read are not lost.
	DefaultOverlap = time.Second
)

// Secret is a credential. It prints as [REDACTED]; use Value for the real one.
type Secret string

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[REDACTED]"
}

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Settings are the keys every configured system has, whatever its type,
// decoded from the configuration. Zero values mean the defaults of the layer
// that uses them (DefaultPageSize, DefaultOverlap, httpx's for HTTP).
type Settings struct {
	// Name is the system's name in the configuration: the "system" of logs,
	// errors and metrics.
	Name    string
	BaseURL string
	Token   Secret
	// PageSize is the records per list page (0: DefaultPageSize).
	PageSize int
	// Overlap is the re-read window behind a time cursor (0: DefaultOverlap).
	Overlap time.Duration
	HTTP    HTTPSettings
	Logger  zerolog.Logger
	// UsesNative reports whether the system's mapping reads or writes the
	// native field (a connector may skip requests for fields nobody uses);
	// nil means every field is used.
	UsesNative func(field string) bool
}

// HTTPSettings are the HTTP client keys of a system (see httpx.Options).
type HTTPSettings struct {
	Timeout       time.Duration
	Retries       int
	RetryAfterMax time.Duration
	RateLimit     float64
	Burst         int
	// Observe is called after every attempt (metrics); optional.
	Observe func(method string, status int, d time.Duration)
}

// Problem is one thing wrong with a system's type-specific keys. Key is the
// path of the offending key below the system ("stages.2", "oauth"), or ""
// for the system itself; the configuration layer turns it into file:line.
type Problem struct {
	Key string
	Msg string
}

// Options are a system type's own configuration keys: a pointer to a struct
// whose yaml tags name them, decoded strictly from the system's keys that
// Settings does not have.
type Options interface {
	// Default fills in every unset key with its default.
	Default()
	// Check returns the problems of the (defaulted) options; s holds the
	// common keys, for rules that span both (credentials).
	Check(s Settings) []Problem
}

// EmulatorOptions configure one emulator started by `crmsync emulate`, demo
// and the tests.
type EmulatorOptions struct {
	// Token is the accepted static bearer token.
	Token string
	// Records is how many records to seed (deterministically).
	Records int
	Faults  emukit.Faults
	// PageCap caps the rows of one list reply (0: the emulator's default).
	PageCap int
	// Ties, when set, stamps the seeded records and every later write with
	// this one time (thousands of ties).
	Ties time.Time
	// EditDuringPaging makes the emulator edit n records after every list
	// page it answers, as colleagues would while a client pages.
	EditDuringPaging int
	// Params are type-specific knobs (`crmsync emulate --emulator-option
	// type.key=value`); a type names the ones it reads in EmulatorType.Params.
	Params map[string]string
}

// Knobs are what every emulator offers for the shared options: one clock
// for every later write (Ties), and edits while a client pages.
type Knobs interface {
	Freeze(t time.Time)
	EditDuringPaging(n int)
}

// Apply sets the shared knobs of o on em.
func (o EmulatorOptions) Apply(em Knobs) {
	if !o.Ties.IsZero() {
		em.Freeze(o.Ties)
	}
	if o.EditDuringPaging > 0 {
		em.EditDuringPaging(o.EditDuringPaging)
	}
}

// EmulatorType says how to start a type's emulator.
type EmulatorType struct {
	// Addr is its default listen address (`crmsync emulate`).
	Addr string
	// Params documents the knobs New reads from EmulatorOptions.Params.
	Params map[string]string
	// New builds the emulator; an unknown or bad Params value is an error.
	New func(o EmulatorOptions) (http.Handler, error)
}

// Type is one kind of system crmsync can sync: what its package registers.
type Type struct {
	// Name is the value of a system's type key ("tribecrm").
	Name string
	// Title is the vendor's name for people ("TribeCRM").
	Title string
	// NewOptions returns a new, zero Options of the type.
	NewOptions func() Options
	// New builds a connector for one configured system; o came from
	// NewOptions, decoded, defaulted and checked.
	New func(ctx context.Context, s Settings, o Options) (Connector, error)
	// Emulator starts the type's emulator.
	Emulator EmulatorType
	// Webhooks is set when the type's system pushes change events.
	Webhooks *Webhooks
}

// Registry is the set of system types a build knows. It is built once (see
// connectors/builtin) and only read afterwards.
type Registry struct {
	types map[string]Type
}

// NewRegistry builds a registry of types. A type without a name or a
// constructor, or a name given twice, is an error.
func NewRegistry(types ...Type) (*Registry, error) {
	r := &Registry{types: map[string]Type{}}
	for _, t := range types {
		if t.Name == "" || t.New == nil || t.NewOptions == nil {
			return nil, fmt.Errorf("connectors: type %q lacks a name, New or NewOptions", t.Name)
		}
		if _, dup := r.types[t.Name]; dup {
			return nil, fmt.Errorf("connectors: type %q registered twice", t.Name)
		}
		r.types[t.Name] = t
	}
	return r, nil
}

// Lookup returns the type called name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t, ok := r.types[name]
	return t, ok
}

// Names lists the registered type names, sorted.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.types))
	for n := range r.types {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Types lists the registered types, sorted by name.
func (r *Registry) Types() []Type {
	out := make([]Type, 0, len(r.types))
	for _, n := range r.Names() {
		out = append(out, r.types[n])
	}
	return out
}
