package emukit

import (
	"fmt"
	"strings"
)

// Profile is one realistic, deterministic fake party used to seed emulators.
// Profile(i) is the same in every emulator, so seeds can overlap on purpose
// (the same company present in two CRMs) for matching tests.
type Profile struct {
	Index              int
	Company            string // unique per index
	Domain             string
	FirstName          string
	LastName           string
	Email              string // person's e-mail at the company domain
	CompanyEmail       string // info@domain
	Phone              string
	Mobile             string
	Website            string
	Street             string
	PostalCode         string
	City               string
	Country            string
	Industry           string
	RegistrationNumber string
	VATNumber          string
}

var (
	adjectives = []string{"Blue", "Bright", "North", "Silver", "Green", "Rapid", "Prime", "Noble", "Urban", "Solid",
		"Clear", "Golden", "Swift", "Alpine", "Coastal", "Royal", "Atlas", "Lunar", "Civic", "Vivid",
		"Iron", "Maple", "Cedar", "Harbor", "Summit", "Delta", "Polar", "Amber", "Crystal", "Metro"}
	nouns = []string{"River", "Bridge", "Forge", "Field", "Stone", "Wave", "Peak", "Works", "Labs", "Systems",
		"Logistics", "Foods", "Energy", "Media", "Health", "Capital", "Textiles", "Robotics", "Telecom", "Farms",
		"Motors", "Design", "Analytics", "Studio", "Dynamics", "Garden", "Pharma", "Marine", "Freight", "Print"}
	suffixes   = []string{"BV", "Ltd", "SAS", "GmbH", "Inc", "NV", "SARL", "AG"}
	firsts     = []string{"Anna", "Bram", "Chloé", "Daan", "Emma", "Finn", "Greta", "Hugo", "Iris", "Jules", "Karin", "Lucas", "Marie", "Noah", "Olga", "Pieter", "Quinn", "Rosa", "Sven", "Tess", "Ugo", "Vera", "Wim", "Xavier", "Yara", "Zoé"}
	lasts      = []string{"de Vries", "Janssen", "Martin", "Bernard", "Müller", "Schmidt", "Dubois", "Bakker", "Visser", "Smit", "Lefèvre", "Moreau", "Fischer", "Weber", "Meyer", "Dijkstra", "Laurent", "Girard", "Peeters", "Mertens", "Roux", "Fontaine", "Vermeulen", "Hoffmann"}
	cities     = []string{"Amsterdam|1012 AB|Netherlands", "Rotterdam|3011 AD|Netherlands", "Utrecht|3511 LX|Netherlands", "Paris|75002|France", "Lyon|69002|France", "Nantes|44000|France", "Berlin|10115|Germany", "Hamburg|20095|Germany", "Antwerp|2000|Belgium", "Ghent|9000|Belgium", "London|EC1A 1BB|United Kingdom", "Leeds|LS1 4AP|United Kingdom"}
	streets    = []string{"Keizersgracht", "Main Street", "Rue de la Paix", "Hauptstraße", "Stationsplein", "Market Square", "Avenue Foch", "Lindenallee", "Coolsingel", "Meir"}
	industries = []string{"Software", "Manufacturing", "Retail", "Healthcare", "Logistics", "Finance", "Energy", "Education", "Hospitality", "Construction", "Telecommunications", "Agriculture"}
)

// Fake returns profile number i (i >= 0). Company names are unique for every i.
func Fake(i int) Profile {
	n := len(adjectives) * len(nouns) * len(suffixes)
	k := i % n
	adj := adjectives[k%len(adjectives)]
	noun := nouns[(k/len(adjectives))%len(nouns)]
	suf := suffixes[(k/(len(adjectives)*len(nouns)))%len(suffixes)]
	company := adj + " " + noun + " " + suf
	if i >= n {
		company = fmt.Sprintf("%s %s %d %s", adj, noun, i/n+1, suf)
	}
	slug := strings.ToLower(strings.NewReplacer(" ", "", "é", "e", "ü", "u", "è", "e").Replace(company))
	domain := slug + ".example"
	first := firsts[(i*7)%len(firsts)]
	last := lasts[(i*11)%len(lasts)]
	city := strings.Split(cities[(i*5)%len(cities)], "|")
	localPart := strings.ToLower(strings.NewReplacer(" ", "", "é", "e", "ü", "u", "è", "e", "ö", "o").Replace(first + "." + last))
	return Profile{
		Index:              i,
		Company:            company,
		Domain:             domain,
		FirstName:          first,
		LastName:           last,
		Email:              fmt.Sprintf("%s.%d@%s", localPart, i, domain),
		CompanyEmail:       "info@" + domain,
		Phone:              fmt.Sprintf("+31 20 %03d %04d", (i/10000)%1000, i%10000),
		Mobile:             fmt.Sprintf("+31 6 %04d %04d", (i*37)%10000, i%10000),
		Website:            "https://www." + domain,
		Street:             fmt.Sprintf("%s %d", streets[(i*3)%len(streets)], i%300+1),
		PostalCode:         city[1],
		City:               city[0],
		Country:            city[2],
		Industry:           industries[(i*13)%len(industries)],
		RegistrationNumber: fmt.Sprintf("%08d", 10000000+i*7919%89999999),
		VATNumber:          fmt.Sprintf("NL%09dB01", 100000000+i*104729%899999999),
	}
}
