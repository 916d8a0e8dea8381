package emulator

import (
	"strings"
	"unicode"

	"github.com/crmsync/crmsync/connectors/bluerocktel/api"
)

// Naming is the spelling of the JSON property names the emulator answers
// with and accepts on writes (Options.Naming).
//
// The conversion between the spellings is shared with the client and
// written once in connectors/bluerocktel/api. Sources: the vendor's documentation spells
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

// toSnake and toCamel are the spelling rules shared with the client,
// written once in connectors/bluerocktel/api with their sources.
func toSnake(name string) string { return api.ToSnake(name) }
func toCamel(name string) string { return api.ToCamel(name) }

// spell returns the snake_case name in naming n.
func spell(snake string, n Naming) string {
	if n == Camel {
		return toCamel(snake)
	}
	return snake
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
