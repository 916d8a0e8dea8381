// Package mapping compiles one YAML mapping file per system into a validated
// plan that converts that system's native records to canonical
// funnel.Records (inbound) and back (outbound).
//
// It owns the mapping file format, its validation and the conversion; it
// knows the canonical model (package funnel) and YAML, nothing of HTTP,
// connectors or state. Mapping files are edited by hand, so every problem
// is reported as "file:line: what is wrong; what was expected", all of them
// at once (Parse returns a *Errors), and nothing is ever dropped silently:
// a native value that no value-map entry matches, or that does not fit its
// canonical field, is an error for that record.
//
// # File format
//
// A mapping file is one YAML document with two keys:
//
//	system: tribecrm        # required: the connector's system name
//	rules:                  # required: a list of rules
//	  - native: Organization.Name
//	    canonical: name
//	    when: {kind: organization}
//	    required: true
//
// Each rule has these keys (unknown keys are errors):
//
//   - native: a native field path, dots for nesting (Organization.Name,
//     Organization.VisitingAddress.City), or the pseudo-field @entity, which
//     stands for Native.Entity (a TribeCRM entity set, "prospect", ...).
//   - canonical: a canonical field name (see funnel.Fields: kind, stage, name,
//     first_name, middle_name, last_name, email, phone, mobile, website, address.line1,
//     address.line2, address.postal_code, address.city, address.country,
//     industry, owner, active, closed, registration_number, vat_number,
//     billing_email, fax, notes, revenue, employees, account_number,
//     accepts_email, accepts_calls, created_at, updated_at).
//   - values: a value map, used instead of canonical. Each key is a native
//     value, compared as text ("1" matches the JSON number 1), and maps to
//     the canonical fields it sets (see the example below). Inbound a native value that matches no key is an error for that record.
//     Outbound the map is read backwards: the first entry (in file order)
//     whose fields all equal the record's is written; if the record has some
//     of those fields but no entry matches, that is an error; if it has none
//     of them the rule writes nothing (or its default). The values are
//     checked at load time with funnel.Normalize (stage: hotprospect is an
//     error naming the valid stages).
//   - when: canonical field → value; the rule applies only to records whose
//     fields equal these (when: {kind: person}), both ways. Inbound, the
//     rules without when run first, in file order, then the rules with when,
//     in file order, so a value map can set kind before kind-conditioned
//     rules run.
//   - default: inbound, the canonical value used when the native value is
//     absent (missing, null or blank); outbound, the native value sent when
//     the canonical value is absent. With canonical and no native it sets a
//     constant inbound ({canonical: kind, default: organization}); with
//     native and no canonical it sends a constant outbound
//     ({native: company, default: Acme}). On a value map the default is one
//     of its keys.
//   - required: true makes an absent value an error: the native value
//     inbound, the canonical value outbound. Not together with default.
//   - direction: both (the default), inbound (native → canonical only) or
//     outbound (canonical → native only).
//   - type: the native JSON type written outbound: string (the default, and
//     the only one for kind, stage, time fields and @entity), integer,
//     number, or boolean (the default for bool fields). Inbound the native
//     value must fit the type (a number, a numeric text, true/false, ...)
//     and is converted with funnel.Normalize. Numbers are written as
//     float64, as encoding/json decodes them.
//   - owner: true makes this system the owner of the canonical field(s) the
//     rule reads: in a merge its value always wins over a newer change from
//     another system (by default the newest change wins, field by field).
//   - lookup: a file of native: canonical pairs (relative to the mapping
//     file), with native and canonical: the rule translates ids through it
//     both ways, as a value map over its one canonical field (lookup.go).
//   - transform: a list of text transforms applied in order: trim, lower,
//     upper, digits (keeps digits and a leading +). Inbound they apply to
//     the canonical text, outbound to the native text; on a value map they
//     apply to native values and keys before matching.
//
// A value map and a constant:
//
//	rules:
//	  - native: "@entity"
//	    values:
//	      Relationship_Organization_CommercialRelationship_Lead: {kind: organization, stage: lead}
//	      Relationship_Person_CommercialRelationship_Lead: {kind: person, stage: lead}
//	  - native: prospection_code_id
//	    type: integer
//	    values:
//	      1: {stage: suspect}
//	      3: {stage: hot_prospect}
//	  - canonical: kind
//	    default: organization
//
// Absent values: a native value that is missing, null or blank text is
// absent; inbound the canonical field is then left unset. Outbound a
// canonical field the record lacks is left out of the payload, and the
// canonical fields a mapping has no rule for are not sent.
//
// # Checks at load time
//
// Parse reads the file through yamlx, the YAML layer it shares with the
// configuration (one document, syntax errors at the line at fault, keys
// written twice, unknown keys and wrong types checked against the plain
// structs fileYAML and ruleYAML), and reads the rules from the node tree for
// their lines. It reports: an empty file or a second document; invalid YAML;
// unknown keys (with a "did you mean"); values of the wrong type, naming the
// key and what it takes; keys written twice (once, with both lines); unknown
// canonical fields (with a suggestion or the list of valid names); bad
// when or value-map values; values together with canonical; rules that map
// nothing; required with default; an unknown type, transform or direction,
// or one that does not fit the field; two rules setting the same canonical
// field inbound, or writing the same (or a nested) native field outbound,
// for records their when conditions do not tell apart; and a mapping where
// no rule sets kind.
//
// A compiled Mapping is immutable and safe for concurrent use. Examples of
// complete files are in examples/mappings/.
package mapping
