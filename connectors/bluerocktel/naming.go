package bluerocktel

import "github.com/crmsync/crmsync/connectors/bluerocktel/api"

// Naming is a spelling of BlueRockTel's JSON property names. The vendor's
// documentation writes the columns in snake_case ("customer_account",
// "email_address", "charge_vat"; /work/shared/seeds/bluerocktel-prospects.txt,
// BDOC:prospects); the official PHP SDK (bluerocktel/php-sdk
// src/Entities/Prospect.php, Customer.php) and Insomnia collection use
// camelCase ("customerAccount", "emailAddress", "chargeVAT"). Foreign keys
// ("brand_id", "prospection_code_id") and timestamps ("created_at") are
// snake_case in both (research notes apis.md §0.1; docs/apis.md §3 "Write
// spelling"). The conversion rules are written once in connectors/bluerocktel/api.
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

// ToSnake converts a property name in either spelling to the documentation's
// snake_case (api.ToSnake).
func ToSnake(name string) string { return api.ToSnake(name) }

// ToCamel converts a snake_case property name to the SDK's spelling
// (api.ToCamel).
func ToCamel(name string) string { return api.ToCamel(name) }

// spell returns the snake_case name in naming n.
func spell(snake string, n Naming) string {
	if n == NamingCamel {
		return ToCamel(snake)
	}
	return snake
}

// Conversion is whether the server converts prospects to customers
// (Options.Conversion).
type Conversion string

// Conversion settings.
const (
	ConversionAuto Conversion = "auto" // try; a missing route turns it off
	ConversionOn   Conversion = "on"   // always try; a missing route is an error
	ConversionOff  Conversion = "off"  // never: every conversion is unsupported
)
