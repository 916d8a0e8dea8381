// Package api holds the BlueRockTel facts that the client and the emulator
// both rely on, written once with their sources: the collection names, the
// two spellings of a property name and how one becomes the other, and the
// conversion route both assume. Everything else each side decides for
// itself, so the emulator stays an independent witness of the vendor.
//
// Sources: the vendor's documentation spells the columns in snake_case
// ("customer_account", "email_address", "charge_vat";
// ../shared/seeds/bluerocktel-prospects.txt, BDOC:prospects,
// BDOC:customers); the official PHP SDK (bluerocktel/php-sdk
// src/Entities/Prospect.php, Customer.php) and its Insomnia collection use
// camelCase ("customerAccount", "emailAddress", "chargeVAT"). Foreign keys
// ("brand_id", "prospection_code_id") and timestamps ("created_at") are
// snake_case in both (research apis.md §0.1; docs/apis.md §3 "Write
// spelling").
package api

import (
	"strings"
	"unicode"
)

// Collection names (GET/POST /api/v1/prospects, /api/v1/customers; seed
// "Base URL: /api/v1/prospects", BDOC:customers).
const (
	Prospects = "prospects"
	Customers = "customers"
)

// DefaultConvertPath is the prospect -> customer conversion route (POST,
// with "{id}"). It is NOT documented by the vendor: the docs promise
// "prospect-to-customer conversion" (seed intro, BDOC:prospects) but no copy
// shows its path or body (research apis.md §0.4 and §4(c), which guess this
// path or .../transform; docs/apis.md §3 "Open questions"). It is a guess,
// configurable on both the client (convert_path) and the emulator.
const DefaultConvertPath = "/api/v1/prospects/{id}/convert"

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

func hasUpper(s string) bool {
	for _, r := range s {
		if unicode.IsUpper(r) {
			return true
		}
	}
	return false
}
