package emulator

import (
	"strings"
	"time"
)

// The vendor facts the emulator is built on, kept here and not taken from
// the client package: the emulator is an independent witness of TribeCRM,
// so a wrong fact in the client must not be repeated here by sharing code.
// Sources: the seed pages /work/shared/seeds/tribecrm-suspects.txt and
// tribecrm-hot-prospects.txt (set names, _Type, funnel order, fields) and
// /work/shared/research/apis.md §1(a) "Data model" and §7 "TribeCRM
// emulator" (Relation_* sets, Relationship_Organization_Identity, IDs,
// timestamps).

// Flavours of a commercial relationship: the kind of Relation it links.
const (
	flavourOrganization = "Organization"
	flavourPerson       = "Person"
)

// funnelStages are the stages of the commercial funnel, in funnel order
// ("Suspect → Lead → HotProspect → Prospect → Customer", seed S0).
var funnelStages = []string{"Suspect", "Lead", "HotProspect", "Prospect", "Customer"}

// Entity sets outside the funnel.
const (
	relationOrganization = "Relation_Organization"
	relationPerson       = "Relation_Person"
	organizationIdentity = "Relationship_Organization_Identity"
)

// funnelSet returns the entity-set name of one funnel stage and flavour.
func funnelSet(flavour, stage string) string {
	return "Relationship_" + flavour + "_CommercialRelationship_" + stage
}

// funnelSets returns the 10 funnel entity sets: the organisation stages in
// funnel order, then the person stages.
func funnelSets() []string {
	out := make([]string, 0, 2*len(funnelStages))
	for _, f := range []string{flavourOrganization, flavourPerson} {
		for _, s := range funnelStages {
			out = append(out, funnelSet(f, s))
		}
	}
	return out
}

// parseFunnelSet splits a funnel entity-set name into flavour and stage.
func parseFunnelSet(set string) (flavour, stage string, ok bool) {
	rest, found := strings.CutPrefix(set, "Relationship_")
	if !found {
		return "", "", false
	}
	flavour, rest, found = strings.Cut(rest, "_CommercialRelationship_")
	if !found || (flavour != flavourOrganization && flavour != flavourPerson) {
		return "", "", false
	}
	for _, s := range funnelStages {
		if s == rest {
			return flavour, s, true
		}
	}
	return "", "", false
}

// typeOfSet returns the dotted _Type of an entity set
// ("Relationship_Person_CommercialRelationship_Lead" ->
// "Relationship.Person.CommercialRelationship.Lead").
func typeOfSet(set string) string { return strings.ReplaceAll(set, "_", ".") }

// setOfType is the inverse of typeOfSet.
func setOfType(typ string) string { return strings.ReplaceAll(typ, ".", "_") }

// timeLayout is how the emulator writes DateTimeOffset values: RFC 3339 in
// UTC with milliseconds.
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
