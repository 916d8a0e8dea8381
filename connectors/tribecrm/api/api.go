// Package api holds the TribeCRM facts that the client and the emulator
// both rely on, written once with their sources: the entity-set names of
// the funnel, their order and how a set's name becomes its _Type. Anything
// else each side decides for itself, so the emulator stays an independent
// witness of the vendor rather than a copy of the client.
//
// Sources: the seed pages ../shared/seeds/tribecrm-suspects.txt and
// tribecrm-hot-prospects.txt (S0, S1: the set names
// Relationship_{Organization|Person}_CommercialRelationship_{Stage}, the
// dotted _Type, the funnel order), ../shared/research/apis.md §1(a) "Data
// model" (Relation_Organization, Relation_Person and the identity set
// Relationship_Organization_Identity) and docs/apis.md §1.
package api

import "strings"

// Flavours of a commercial relationship: the kind of Relation it links,
// also the name of its navigation property.
const (
	FlavourOrganization = "Organization"
	FlavourPerson       = "Person"
)

// Entity sets outside the funnel.
const (
	SetOrganization = "Relation_Organization"
	SetPerson       = "Relation_Person"
	SetIdentity     = "Relationship_Organization_Identity"
	// SetAddress holds the Address entities that organisations
	// (VisitingAddress, PostalAddress) and persons (Address) link to
	// (developer.tribecrm.nl docs/api/entities/addresses: "GET
	// /v1/odata/Address").
	SetAddress = "Address"
	// SetCountry holds the countries an Address links to
	// (docs/api/datastores/countries: "GET /v1/odata/Datastore_Country").
	SetCountry = "Datastore_Country"
)

// TimeLayout is the DateTimeOffset form written into a $filter and by the
// emulator: RFC 3339 in UTC with milliseconds (readers accept any RFC 3339
// form; docs/apis.md §1, "timestamps").
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Stages returns the funnel stages in funnel order: "Suspect → Lead →
// HotProspect → Prospect → Customer" (seed S0).
func Stages() []string { return []string{"Suspect", "Lead", "HotProspect", "Prospect", "Customer"} }

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
		for _, s := range Stages() {
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
	for _, s := range Stages() {
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
