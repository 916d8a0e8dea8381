package bluerocktel

import (
	"strings"
	"unicode"
)

// Naming is a spelling of BlueRockTel's JSON property names. The vendor's
// documentation writes the columns in snake_case ("customer_account",
// "email_address", "charge_vat"; /work/shared/seeds/bluerocktel-prospects.txt,
// BDOC:prospects); the official PHP SDK (bluerocktel/php-sdk
// src/Entities/Prospect.php, Customer.php) and Insomnia collection use
// camelCase ("customerAccount", "emailAddress", "chargeVAT"). Foreign keys
// ("brand_id", "prospection_code_id") and timestamps ("created_at") are
// snake_case in both (research notes apis.md §0.1; docs/apis.md §3 "Write
// spelling"). These rules are the client's own; the emulator keeps a copy.
type Naming string

const (
	// NamingSnake is the documentation's spelling.
	NamingSnake Naming = "snake"
	// NamingCamel is the official SDK's spelling, the one it decodes and
	// writes; the client's default.
	NamingCamel Naming = "camel"
	// NamingAuto writes in the spelling the server used in its
	// last answer, and camelCase until the server has answered once.
	NamingAuto Naming = "auto"
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

// ToSnake converts a property name in either spelling to the documentation's
// snake_case ("mainContactFirstName" -> "main_contact_first_name",
// "chargeVAT" -> "charge_vat"). Names already in snake_case are unchanged.
func ToSnake(name string) string {
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

// ToCamel converts a documentation (snake_case) property name to the SDK's
// spelling: foreign keys (*_id), timestamps (*_at) and a few columns stay
// snake_case; the rest become camelCase ("charge_vat" -> "chargeVAT").
func ToCamel(name string) string {
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
	if n == NamingCamel {
		return ToCamel(snake)
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
