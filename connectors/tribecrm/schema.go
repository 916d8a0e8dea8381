package tribecrm

// This file holds the API facts the client relies on: those the emulator
// shares are written once in connectors/tribecrm/api, with their sources.

import (
	"time"

	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// System is the system name of the TribeCRM connector.
const System = "tribecrm"

// The shared facts (connectors/tribecrm/api), under the names the client's
// callers use.
const (
	FlavourOrganization = api.FlavourOrganization
	FlavourPerson       = api.FlavourPerson
	SetOrganization     = api.SetOrganization
	SetPerson           = api.SetPerson
	SetIdentity         = api.SetIdentity
)

// funnelStages are the stages of the funnel, in funnel order.
var funnelStages = api.Stages()

// Stages returns the funnel stages in funnel order (Suspect first).
func Stages() []string { return api.Stages() }

// FunnelSet returns the entity-set name of one funnel stage and flavour.
func FunnelSet(flavour, stage string) string { return api.FunnelSet(flavour, stage) }

// FunnelSets returns the 10 funnel entity sets.
func FunnelSets() []string { return api.FunnelSets() }

// ParseFunnelSet splits a funnel entity-set name into flavour and stage.
func ParseFunnelSet(set string) (flavour, stage string, ok bool) { return api.ParseFunnelSet(set) }

// TypeOfSet returns the dotted _Type of an entity set.
func TypeOfSet(set string) string { return api.TypeOfSet(set) }

// SetOfType is the inverse of TypeOfSet.
func SetOfType(typ string) string { return api.SetOfType(typ) }

// navOf returns the navigation property that holds a funnel set's child
// relation ("Organization" or "Person"), or "" for other sets.
func navOf(set string) string {
	if f, _, ok := ParseFunnelSet(set); ok {
		return f
	}
	return ""
}

func formatTime(t time.Time) string { return t.UTC().Format(api.TimeLayout) }

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
