package emulator

import (
	"strings"
	"unicode"
)

// Naming is the spelling of the JSON property names the emulator answers
// with and accepts on writes (Options.Naming).
//
// The emulator owns its copy of these rules; the client has its own (the
// client package's naming.go). Sources: the vendor's documentation spells
// the columns in snake_case (/work/shared/seeds/bluerocktel-prospects.txt,
// BDOC:prospects, BDOC:customers: "customer_account", "email_address",
// "charge_vat"); the official PHP SDK (bluerocktel/php-sdk
// src/Entities/Prospect.php, Customer.php) and Insomnia collection use
// camelCase ("customerAccount", "emailAddress", "chargeVAT"). Foreign keys
// ("brand_id", "prospection_code_id") and timestamps ("created_at") are
// snake_case in both (research notes apis.md §0.1; docs/apis.md §3 "Write
// spelling").
type Naming string

const (
	// Camel is the official SDK's spelling, the emulator's default (the
	// live API very probably speaks it).
	Camel Naming = "camel"
	// Snake is the documentation's spelling.
	Snake Naming = "snake"
)

// camelOverrides lists the camelCase spellings that a plain conversion
// would get wrong (php-sdk Prospect::$chargeVAT).
var camelOverrides = map[string]string{
	"charge_vat": "chargeVAT",
}

// staySnake lists non-FK columns the SDK keeps in snake_case.
var staySnake = map[string]bool{
	"custom_note": true, "technical_url": true, "motive_for_balance": true,
	"sms_expeditor_name": true, "telco_exceptions_grid_to_redis": true,
	"telco_exceptions_grid_uploaded_by": true, "payment_plan": true,
}

// toSnake converts a property name in either spelling to the documentation's
// snake_case ("mainContactFirstName" -> "main_contact_first_name",
// "chargeVAT" -> "charge_vat"). Names already in snake_case are unchanged.
func toSnake(name string) string {
	if !hasUpper(name) {
		return name
	}
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if unicode.IsUpper(r) {
			// Start a new word at an upper-case letter that follows a
			// lower-case letter or digit, or that begins a word after an
			// acronym ("VATNumber" -> "vat_number").
			if i > 0 && rs[i-1] != '_' {
				prevLower := unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1])
				nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
				if prevLower || (unicode.IsUpper(rs[i-1]) && nextLower) {
					b.WriteByte('_')
				}
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// toCamel converts a documentation (snake_case) property name to the SDK's
// spelling: foreign keys (*_id), timestamps (*_at) and a few columns stay
// snake_case; the rest become camelCase ("charge_vat" -> "chargeVAT").
func toCamel(name string) string {
	if v, ok := camelOverrides[name]; ok {
		return v
	}
	if !strings.Contains(name, "_") || staySnake[name] ||
		strings.HasSuffix(name, "_id") || strings.HasSuffix(name, "_at") {
		return name
	}
	parts := strings.Split(name, "_")
	var b strings.Builder
	b.WriteString(parts[0])
	for _, p := range parts[1:] {
		if p == "" {
			continue
		}
		rs := []rune(p)
		rs[0] = unicode.ToUpper(rs[0])
		b.WriteString(string(rs))
	}
	return b.String()
}

// spell returns the snake_case name in naming n.
func spell(snake string, n Naming) string {
	if n == Camel {
		return toCamel(snake)
	}
	return snake
}

func hasUpper(s string) bool {
	for _, r := range s {
		if unicode.IsUpper(r) {
			return true
		}
	}
	return false
}

// laravelAttribute is how Laravel names an attribute in validation messages:
// Str::snake, then underscores become spaces ("chargeVAT" -> "charge v a t",
// "email_address" -> "email address").
func laravelAttribute(key string) string {
	var b strings.Builder
	for i, r := range key {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		if r == '_' {
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
