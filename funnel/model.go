package funnel

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind says whether a record is an organisation or a person.
type Kind string

// The two kinds of funnel record.
const (
	Organization Kind = "organization"
	Person       Kind = "person"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k == Organization || k == Person }

// Stage is a funnel stage. Stages are ordered: Suspect < Lead < HotProspect
// < Prospect < Customer.
type Stage string

// The funnel stages, in order.
const (
	Suspect     Stage = "suspect"
	Lead        Stage = "lead"
	HotProspect Stage = "hot_prospect"
	Prospect    Stage = "prospect"
	Customer    Stage = "customer"
)

// Stages lists every stage in funnel order.
func Stages() []Stage { return []Stage{Suspect, Lead, HotProspect, Prospect, Customer} }

// Rank is the stage's position in the funnel (0 for suspect), or -1 for an
// unknown stage.
func (s Stage) Rank() int {
	for i, st := range Stages() {
		if st == s {
			return i
		}
	}
	return -1
}

// Valid reports whether s is a known stage.
func (s Stage) Valid() bool { return s.Rank() >= 0 }

// Before reports whether s comes strictly before o in the funnel.
func (s Stage) Before(o Stage) bool { return s.Rank() < o.Rank() }

// Type is the value type of a canonical field.
type Type int

// Field value types.
const (
	String Type = iota
	Bool
	Time
	KindType
	StageType
	Number
)

func (t Type) String() string {
	switch t {
	case String:
		return "string"
	case Bool:
		return "bool"
	case Time:
		return "time"
	case KindType:
		return "kind (organization|person)"
	case StageType:
		return "stage (suspect|lead|hot_prospect|prospect|customer)"
	case Number:
		return "number"
	}
	return "unknown"
}

// Canonical field names. Mappings refer to fields by these names.
const (
	FieldKind               = "kind"
	FieldStage              = "stage"
	FieldName               = "name"
	FieldFirstName          = "first_name"
	FieldMiddleName         = "middle_name"
	FieldLastName           = "last_name"
	FieldEmail              = "email"
	FieldPhone              = "phone"
	FieldMobile             = "mobile"
	FieldWebsite            = "website"
	FieldAddressLine1       = "address.line1"
	FieldAddressLine2       = "address.line2"
	FieldAddressPostalCode  = "address.postal_code"
	FieldAddressCity        = "address.city"
	FieldAddressCountry     = "address.country"
	FieldIndustry           = "industry"
	FieldOwner              = "owner"
	FieldActive             = "active"
	FieldClosed             = "closed"
	FieldRegistrationNumber = "registration_number"
	FieldVATNumber          = "vat_number"
	FieldBillingEmail       = "billing_email"
	FieldFax                = "fax"
	FieldNotes              = "notes"
	FieldRevenue            = "revenue"
	FieldEmployees          = "employees"
	FieldAccountNumber      = "account_number"
	FieldAcceptsEmail       = "accepts_email"
	FieldAcceptsCalls       = "accepts_calls"
	FieldCreatedAt          = "created_at"
	FieldUpdatedAt          = "updated_at"
)

// FieldSpec describes one canonical field.
type FieldSpec struct {
	Name string
	Type Type
	Doc  string
}

// Fields lists the canonical fields in a stable order. The slice is new on
// every call, so callers may keep or change it.
func Fields() []FieldSpec { return append([]FieldSpec(nil), fieldTable()...) }

// fieldTable and fieldIndex are built once and only read afterwards
// (Normalize runs for every value of every record).
var (
	fieldTable = sync.OnceValue(buildFields)
	fieldIndex = sync.OnceValue(func() map[string]FieldSpec {
		m := make(map[string]FieldSpec, len(fieldTable()))
		for _, f := range fieldTable() {
			m[f.Name] = f
		}
		return m
	})
	fieldNames = sync.OnceValue(func() []string {
		out := make([]string, len(fieldTable()))
		for i, f := range fieldTable() {
			out[i] = f.Name
		}
		return out
	})
)

func buildFields() []FieldSpec {
	return []FieldSpec{
		{FieldKind, KindType, "organization or person"},
		{FieldStage, StageType, "funnel stage"},
		{FieldName, String, "organisation name, or a person's display name (derived from first, middle and last name when empty)"},
		{FieldFirstName, String, "person: first name"},
		{FieldMiddleName, String, "person: middle name or surname prefix (\"de\" in \"Karin de Vries\")"},
		{FieldLastName, String, "person: last name"},
		{FieldEmail, String, "main e-mail address"},
		{FieldPhone, String, "main phone number"},
		{FieldMobile, String, "mobile phone number"},
		{FieldWebsite, String, "website URL"},
		{FieldAddressLine1, String, "address line 1"},
		{FieldAddressLine2, String, "address line 2"},
		{FieldAddressPostalCode, String, "postal code"},
		{FieldAddressCity, String, "city"},
		{FieldAddressCountry, String, "country"},
		{FieldIndustry, String, "industry or sector"},
		{FieldOwner, String, "owner / account manager / sales representative"},
		{FieldActive, Bool, "record is active"},
		{FieldClosed, Bool, "record is closed"},
		{FieldRegistrationNumber, String, "company registration number (chamber of commerce, SIREN, ...)"},
		{FieldVATNumber, String, "VAT / tax registration number"},
		{FieldBillingEmail, String, "billing / accounts e-mail address"},
		{FieldFax, String, "fax number"},
		{FieldNotes, String, "free-text internal notes or comment"},
		{FieldRevenue, Number, "annual revenue (a number, in the organisation's currency)"},
		{FieldEmployees, Number, "number of employees"},
		{FieldAccountNumber, String, "customer / debtor account number"},
		{FieldAcceptsEmail, Bool, "consent: accepts e-mail communications"},
		{FieldAcceptsCalls, Bool, "consent: accepts phone calls"},
		{FieldCreatedAt, Time, "when the record was created in its source system"},
		{FieldUpdatedAt, Time, "when the record last changed in its source system"},
	}
}

// Lookup returns the spec of the canonical field called name.
func Lookup(name string) (FieldSpec, bool) {
	f, ok := fieldIndex()[name]
	return f, ok
}

// FieldNames lists the canonical field names in stable order. The slice is
// new on every call.
func FieldNames() []string { return append([]string(nil), fieldNames()...) }

// metaFields are not part of a record's content: they change on every write
// without the record changing, so fingerprints and diffs ignore them.
func isMeta(name string) bool { return name == FieldCreatedAt || name == FieldUpdatedAt }

// Normalize converts v to the canonical representation of field name, or
// explains why it cannot. Strings are trimmed; the empty string stays empty.
func Normalize(name string, v any) (any, error) {
	spec, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("unknown canonical field %q", name)
	}
	switch spec.Type {
	case String:
		switch x := v.(type) {
		case string:
			return strings.TrimSpace(x), nil
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), nil
		case int:
			return strconv.Itoa(x), nil
		case int64:
			return strconv.FormatInt(x, 10), nil
		case bool:
			return strconv.FormatBool(x), nil
		}
	case Bool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return nil, fmt.Errorf("field %s: %q is not a boolean", name, x)
			}
			return b, nil
		case float64:
			return x != 0, nil
		case int:
			return x != 0, nil
		}
	case Time:
		switch x := v.(type) {
		case time.Time:
			return x.UTC().Format(time.RFC3339Nano), nil
		case string:
			t, err := ParseTime(x)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", name, err)
			}
			return t.UTC().Format(time.RFC3339Nano), nil
		}
	case Number:
		if f, ok := number(v); ok {
			return f, nil
		}
		if x, ok := v.(string); ok {
			return nil, fmt.Errorf("field %s: %q is not a number", name, x)
		}
	case KindType:
		s, _ := v.(string)
		if k, ok := v.(Kind); ok {
			s = string(k)
		}
		if !Kind(s).Valid() {
			return nil, fmt.Errorf("field kind: %v is not organization or person", v)
		}
		return s, nil
	case StageType:
		s, _ := v.(string)
		if st, ok := v.(Stage); ok {
			s = string(st)
		}
		if !Stage(s).Valid() {
			return nil, fmt.Errorf("field stage: %v is not one of suspect, lead, hot_prospect, prospect, customer", v)
		}
		return s, nil
	}
	return nil, fmt.Errorf("field %s: a %T value cannot be a %s", name, v, spec.Type)
}

// number reads a JSON number, a Go integer or a numeric text (a decimal
// point, not a comma) as a float64; NaN and infinities are not numbers.
func number(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case int:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint64:
		f = float64(x)
	case string:
		p, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false
		}
		f = p
	default:
		return 0, false
	}
	return f, !math.IsNaN(f) && !math.IsInf(f, 0)
}

// ParseTime accepts the timestamp forms the supported APIs send: RFC 3339
// with or without fraction or zone, and "2006-01-02 15:04:05".
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp (expected RFC 3339)", s)
}

// Record is one canonical funnel record.
type Record struct {
	// ID is crmsync's own id for the record (a UUID), stable across systems.
	ID string `json:"id"`
	// Fields maps canonical field names to normalised values.
	Fields map[string]any `json:"fields"`
	// Links maps a system name to the record's id in that system.
	Links map[string]string `json:"links,omitempty"`
	// Sources maps a canonical field name to where its current value came
	// from, for field-level merging.
	Sources map[string]Source `json:"sources,omitempty"`
	// Gone maps a system to when the record was deleted there (found by a
	// delete reconciliation, or deleted by crmsync): it is never created in
	// that system again.
	Gone map[string]time.Time `json:"gone,omitempty"`
}

// Source says which system last set a field, and when that system changed it.
type Source struct {
	System string    `json:"system"`
	At     time.Time `json:"at"`
}

// New returns an empty record with the given canonical id.
func New(id string) *Record {
	return &Record{ID: id, Fields: map[string]any{}, Links: map[string]string{}}
}

// Set normalises and stores a field value. An empty string or nil removes it.
func (r *Record) Set(name string, v any) error {
	if r.Fields == nil {
		r.Fields = map[string]any{}
	}
	if v == nil {
		delete(r.Fields, name)
		return nil
	}
	nv, err := Normalize(name, v)
	if err != nil {
		return err
	}
	if s, ok := nv.(string); ok && s == "" {
		delete(r.Fields, name)
		return nil
	}
	r.Fields[name] = nv
	return nil
}

// Get returns the value of a field and whether it is set.
func (r *Record) Get(name string) (any, bool) {
	v, ok := r.Fields[name]
	return v, ok
}

// Str returns a field as a string ("" when absent; bools as "true"/"false").
func (r *Record) Str(name string) string {
	switch v := r.Fields[name].(type) {
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// Kind returns the record's kind ("" when unset).
func (r *Record) Kind() Kind { return Kind(r.Str(FieldKind)) }

// Stage returns the record's stage ("" when unset).
func (r *Record) Stage() Stage { return Stage(r.Str(FieldStage)) }

// Time returns a time field, or the zero time.
func (r *Record) Time(name string) time.Time {
	t, err := ParseTime(r.Str(name))
	if err != nil {
		return time.Time{}
	}
	return t
}

// Complete fills derived values: a person's name from first, middle and
// last name ("Karin" "de" "Vries" is "Karin de Vries").
func (r *Record) Complete() {
	if r.Kind() == Person && r.Str(FieldName) == "" {
		var parts []string
		for _, f := range []string{FieldFirstName, FieldMiddleName, FieldLastName} {
			if s := strings.TrimSpace(r.Str(f)); s != "" {
				parts = append(parts, s)
			}
		}
		if n := strings.Join(parts, " "); n != "" {
			r.Fields[FieldName] = n
		}
	}
}

// Clone returns a deep copy.
func (r *Record) Clone() *Record {
	c := &Record{ID: r.ID, Fields: make(map[string]any, len(r.Fields)), Links: make(map[string]string, len(r.Links))}
	for k, v := range r.Fields {
		c.Fields[k] = v
	}
	for k, v := range r.Links {
		c.Links[k] = v
	}
	if r.Sources != nil {
		c.Sources = make(map[string]Source, len(r.Sources))
		for k, v := range r.Sources {
			c.Sources[k] = v
		}
	}
	if r.Gone != nil {
		c.Gone = make(map[string]time.Time, len(r.Gone))
		for k, v := range r.Gone {
			c.Gone[k] = v
		}
	}
	return c
}

// Fingerprint is a stable hash of the record's content: every field except
// created_at and updated_at. Two records with the same content have the same
// fingerprint whatever their ids, links or timestamps.
func (r *Record) Fingerprint() string { return FingerprintValues(r.Fields) }

// FingerprintValues hashes a flat or nested value map (such as a native
// payload) in a stable way, ignoring created_at and updated_at at the top.
func FingerprintValues(m map[string]any) string {
	h := sha256.New()
	buf := appendValue(make([]byte, 0, 512), m, true)
	_, _ = h.Write(buf)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// appendValue appends the hashed form of v: the form fmt gave it when
// fingerprints were first stored (keys %q, scalars "%T:%v"), which stays
// byte for byte the same, or every stored fingerprint would change and an
// upgrade would rewrite every record. The common scalars are formatted
// without fmt (a fingerprint is taken several times per record);
// TestFingerprintFormUnchanged compares both forms.
func appendValue(b []byte, v any, top bool) []byte {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			if top && isMeta(k) {
				continue
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, '{')
		for _, k := range keys {
			b = strconv.AppendQuote(b, k)
			b = append(b, ':')
			b = appendValue(b, x[k], false)
			b = append(b, ',')
		}
		return append(b, '}')
	case []any:
		b = append(b, '[')
		for _, e := range x {
			b = appendValue(b, e, false)
			b = append(b, ',')
		}
		return append(b, ']')
	case string:
		return append(append(b, "string:"...), x...)
	case bool:
		return strconv.AppendBool(append(b, "bool:"...), x)
	case nil:
		return append(b, "<nil>:<nil>"...)
	case int:
		return strconv.AppendInt(append(b, "int:"...), int64(x), 10)
	case int64:
		return strconv.AppendInt(append(b, "int64:"...), x, 10)
	case float64:
		if !math.IsInf(x, 0) && !math.IsNaN(x) {
			return strconv.AppendFloat(append(b, "float64:"...), x, 'g', -1, 64)
		}
	}
	return fmt.Appendf(b, "%T:%v", v, v)
}

// Diff lists the content fields whose values differ between a and b, sorted.
func Diff(a, b map[string]any) []string {
	var out []string
	seen := map[string]bool{}
	for k, av := range a {
		seen[k] = true
		if isMeta(k) {
			continue
		}
		if bv, ok := b[k]; !ok || fmt.Sprint(av) != fmt.Sprint(bv) {
			out = append(out, k)
		}
	}
	for k := range b {
		if !seen[k] && !isMeta(k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
