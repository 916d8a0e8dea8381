package emulator

import (
	"time"

	"github.com/crmsync/crmsync/connectors/tribecrm/api"
)

// The vendor facts the emulator is built on. It never imports the client:
// it is an independent witness of TribeCRM. The few facts both need (the
// entity-set names and their order) are written once, with their sources,
// in connectors/tribecrm/api; everything else (fields, rules, answers) is
// the emulator's own reading of the seed pages and research/apis.md §7.

// The facts shared with the client, written once in
// connectors/tribecrm/api with their sources.
const (
	flavourOrganization  = api.FlavourOrganization
	flavourPerson        = api.FlavourPerson
	relationOrganization = api.SetOrganization
	relationPerson       = api.SetPerson
	organizationIdentity = api.SetIdentity
	timeLayout           = api.TimeLayout
)

var funnelStages = api.Stages()

func funnelSet(flavour, stage string) string                     { return api.FunnelSet(flavour, stage) }
func funnelSets() []string                                       { return api.FunnelSets() }
func parseFunnelSet(set string) (flavour, stage string, ok bool) { return api.ParseFunnelSet(set) }
func typeOfSet(set string) string                                { return api.TypeOfSet(set) }
func setOfType(typ string) string                                { return api.SetOfType(typ) }

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
