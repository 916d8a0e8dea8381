package tribecrm

// This file holds the API facts the client relies on. The emulator
// (connectors/tribecrm/emulator) keeps its own copy of the facts it needs,
// so that it stays an independent witness of the vendor. Sources: the seed
// pages /work/shared/seeds/tribecrm-suspects.txt and
// tribecrm-hot-prospects.txt (S0, S1: set names, _Type, funnel order),
// /work/shared/research/apis.md §1(a) "Data model" and docs/apis.md §1
// (Relation_* sets, Relationship_Organization_Identity, timestamps).

import (
	"strings"
	"time"
)

// System is the system name of the TribeCRM connector.
const System = "tribecrm"

// Flavours of a commercial relationship: the kind of Relation it links.
const (
	FlavourOrganization = "Organization"
	FlavourPerson       = "Person"
)

// Stages of the TribeCRM commercial funnel, in funnel order: "Suspect →
// Lead → HotProspect → Prospect → Customer" (seed S0).
var funnelStages = []string{"Suspect", "Lead", "HotProspect", "Prospect", "Customer"}

// Entity-set names outside the funnel that the connector uses (apis.md
// §1(a): the Relations, and the identity set whose Relation is the tenant's
// own organisation).
const (
	SetOrganization = "Relation_Organization"
	SetPerson       = "Relation_Person"
	SetIdentity     = "Relationship_Organization_Identity"
)

// Stages returns the funnel stages in funnel order (Suspect first).
func Stages() []string { return append([]string(nil), funnelStages...) }

// FunnelSet returns the entity-set name of one funnel stage and flavour, e.g.
// FunnelSet("Organization", "Lead") = "Relationship_Organization_CommercialRelationship_Lead".
func FunnelSet(flavour, stage string) string {
	return "Relationship_" + flavour + "_CommercialRelationship_" + stage
}

// FunnelSets returns the 10 funnel entity sets: the five organisation stages
// in funnel order, then the five person stages.
func FunnelSets() []string {
	out := make([]string, 0, 10)
	for _, f := range []string{FlavourOrganization, FlavourPerson} {
		for _, s := range funnelStages {
			out = append(out, FunnelSet(f, s))
		}
	}
	return out
}

// ParseFunnelSet splits a funnel entity-set name into flavour and stage.
func ParseFunnelSet(set string) (flavour, stage string, ok bool) {
	rest, found := strings.CutPrefix(set, "Relationship_")
	if !found {
		return "", "", false
	}
	flavour, rest, found = strings.Cut(rest, "_CommercialRelationship_")
	if !found || (flavour != FlavourOrganization && flavour != FlavourPerson) {
		return "", "", false
	}
	for _, s := range funnelStages {
		if s == rest {
			return flavour, s, true
		}
	}
	return "", "", false
}

// TypeOfSet returns the dotted _Type of an entity set
// ("Relationship_Person_CommercialRelationship_Lead" ->
// "Relationship.Person.CommercialRelationship.Lead").
func TypeOfSet(set string) string { return strings.ReplaceAll(set, "_", ".") }

// SetOfType is the inverse of TypeOfSet.
func SetOfType(typ string) string { return strings.ReplaceAll(typ, ".", "_") }

// navOf returns the navigation property that holds a funnel set's child
// relation ("Organization" or "Person"), or "" for other sets.
func navOf(set string) string {
	if f, _, ok := ParseFunnelSet(set); ok {
		return f
	}
	return ""
}

// timeLayout is how the client writes DateTimeOffset values into a $filter:
// RFC 3339 in UTC with milliseconds (it reads any RFC 3339 form; docs/apis.md
// §1, "timestamps RFC 3339 with any offset").
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// isGUID reports whether s is a GUID in its 8-4-4-4-12 hex text form.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// isIdentStart and isIdentByte are the characters of an OData identifier, in
// the ASCII subset the client writes in $filter paths: a letter or '_', then
// letters, digits and '_' (OData v4.01 Part 2 URL Conventions, ABNF
// odataIdentifier).
func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isIdentByte(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') }
