package emulator

import (
	"fmt"

	"github.com/crmsync/crmsync/connectors/bluerocktel/api"
)

// The emulated collections and the conversion route (a guess: the vendor
// documents the feature but not its path), shared with the client in
// connectors/bluerocktel/api.
const (
	Prospects          = api.Prospects
	Customers          = api.Customers
	DefaultConvertPath = api.DefaultConvertPath
)

// kind is a column's validation and storage type.
type kind int

const (
	kString kind = iota
	kEmail
	kInt
	kBool
)

// column is one writable model property, named as in the documentation.
type column struct {
	Name string
	Kind kind
}

// prospectColumns are the documented prospect properties (BDOC:prospects;
// "Model Properties" in /work/shared/seeds/bluerocktel-prospects.txt), in
// the documentation's order, without id and the timestamps.
var prospectColumns = []column{
	{"name", kString},
	{"brand_id", kInt},
	{"representative_id", kInt},
	{"customer_account", kString},
	{"accounts_reference", kString},
	{"registration_number", kString},
	{"tax_registration_number", kString},
	{"type", kString},
	{"capital", kString},
	{"activity_code", kString},
	{"sector_id", kInt},
	{"cluster_id", kInt},
	{"batch_id", kInt},
	{"email_address", kEmail},
	{"account_email_address", kEmail},
	{"phone", kString},
	{"mobile_phone", kString},
	{"fax", kString},
	{"main_contact_first_name", kString},
	{"main_contact_last_name", kString},
	{"main_address_line1", kString},
	{"main_address_line2", kString},
	{"main_address_postal_code", kString},
	{"main_address_city", kString},
	{"main_address_country", kString},
	{"website", kString},
	{"active", kBool},
	{"charge_vat", kBool},
	{"comment", kString},
	{"merge_invoices", kBool},
	{"prospection_code_id", kInt},
	{"accept_emails", kBool},
	{"accept_calls", kBool},
}

// customerColumns are the prospect columns plus a few customer-only ones the
// SDK's Customer entity carries (isReseller, language_id, vip).
var customerColumns = append(append([]column(nil), prospectColumns...),
	column{"is_reseller", kBool},
	column{"language_id", kInt},
	column{"vip", kBool},
)

// collection describes one emulated table.
type collection struct {
	Name     string // "prospects"
	Model    string // Laravel model class in 404 messages
	Prefix   string // account number prefix
	Columns  []column
	byName   map[string]column
	Deleted  string // DELETE success message
	Defaults map[string]any
}

func newCollection(name, model, prefix, deleted string, cols []column, defaults map[string]any) *collection {
	c := &collection{Name: name, Model: model, Prefix: prefix, Columns: cols, Deleted: deleted, Defaults: defaults, byName: map[string]column{}}
	for _, col := range cols {
		c.byName[col.Name] = col
	}
	return c
}

// account formats the auto-generated account number (PR000042, CL000123).
func (c *collection) account(id int64) string { return fmt.Sprintf("%s%06d", c.Prefix, id) }

func prospectDefaults() map[string]any {
	return map[string]any{
		"brand_id": int64(1), "main_address_country": "France", "active": true, "charge_vat": true,
		"merge_invoices": false, "prospection_code_id": int64(1), "accept_emails": true, "accept_calls": true,
	}
}

func customerDefaults() map[string]any {
	d := prospectDefaults()
	d["is_reseller"] = false
	d["language_id"] = int64(1)
	d["vip"] = false
	return d
}

// Column describes one writable column of a collection, as the emulator
// validates and stores it (Emulator.Columns).
type Column struct {
	// Name is the documented snake_case name.
	Name string
	// Type is "string", "email", "int" or "bool".
	Type string
	// Default is what a created record holds when the write leaves the
	// column out; nil for none.
	Default any
}

var kindNames = map[kind]string{kString: "string", kEmail: "email", kInt: "int", kBool: "bool"}

// ProspectionCode is one stage of BlueRockTel's sales pipeline (the
// prospection_codes table a prospect's prospection_code_id points to).
type ProspectionCode struct {
	ID   int64
	Name string
}

// defaultProspectionCodes is the emulator's seeded pipeline: the funnel
// stages suspect..customer as ids 1..5 (id 1 is the column default).
var defaultProspectionCodes = []ProspectionCode{
	{1, "Suspect"}, {2, "Lead"}, {3, "Hot prospect"}, {4, "Prospect"}, {5, "Customer"},
}
